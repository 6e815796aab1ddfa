//! Tests of the stream manager: limits, flow control, errors, loss handling,
//! scheduling, and a lossy loopback between a client and a server.

use super::frames::decode::{self, Frame};
use super::frames::Control;
use super::*;
use crate::error::TransportErrorCode;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn v(x: u32) -> VarInt {
    VarInt::from_u32(x)
}

fn config() -> StreamsConfig {
    StreamsConfig {
        max_concurrent_bidi: 4,
        max_concurrent_uni: 4,
        stream_receive_window: 1000,
        receive_window: 3000,
        send_window: 1 << 20,
        ..StreamsConfig::default()
    }
}

fn pair_with(c: StreamsConfig, s: StreamsConfig) -> (StreamsState, StreamsState) {
    let mut client = StreamsState::new(Side::Client, c.clone(), Instant::now());
    let mut server = StreamsState::new(Side::Server, s.clone(), Instant::now());
    client.set_peer_limits(s.local_limits());
    server.set_peer_limits(c.local_limits());
    (client, server)
}

fn pair() -> (StreamsState, StreamsState) {
    pair_with(config(), config())
}

fn apply(s: &mut StreamsState, f: Frame) -> Result<(), TransportError> {
    match f {
        Frame::Stream {
            id,
            offset,
            data,
            fin,
        } => s.on_stream_frame(id, offset, data, fin),
        Frame::Control(c) => match c {
            Control::ResetStream {
                id,
                code,
                final_size,
            } => s.on_reset_stream(id, code, final_size),
            Control::StopSending { id, code } => s.on_stop_sending(id, code),
            Control::MaxData(x) => s.on_max_data(x),
            Control::MaxStreamData { id, max } => s.on_max_stream_data(id, max),
            Control::MaxStreams { dir, count } => s.on_max_streams(dir, count),
            Control::DataBlocked(x) => s.on_data_blocked(x),
            Control::StreamDataBlocked { id, limit } => s.on_stream_data_blocked(id, limit),
            Control::StreamsBlocked { dir, limit } => s.on_streams_blocked(dir, limit),
        },
    }
}

/// Build one packet payload of at most `budget` bytes.
fn packet(s: &mut StreamsState, budget: usize) -> (Vec<u8>, SentStreamFrames) {
    let mut buf = Vec::new();
    let mut sent = SentStreamFrames::default();
    s.write_control_frames(&mut buf, budget, &mut sent);
    let used = buf.len();
    s.write_stream_frames(&mut buf, budget - used, &mut sent);
    assert!(buf.len() <= budget);
    (buf, sent)
}

fn frames_of(buf: &[u8]) -> Vec<Frame> {
    decode::all(Bytes::copy_from_slice(buf)).expect("own frames decode")
}

/// Send everything pending from `a` to `b` with no loss, acking each packet.
fn flush(a: &mut StreamsState, b: &mut StreamsState) {
    for _ in 0..1000 {
        let (buf, sent) = packet(a, 1200);
        if buf.is_empty() {
            return;
        }
        for f in frames_of(&buf) {
            apply(b, f).unwrap();
        }
        a.on_packet_acked(&sent);
    }
    panic!("flush did not converge");
}

fn events(s: &mut StreamsState) -> Vec<StreamEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn read_to_end(s: &mut StreamsState, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match s.read(id, 300) {
            Ok(Some(d)) => out.extend_from_slice(&d),
            Ok(None) => return (out, true),
            Err(ReadError::Blocked) => return (out, false),
            Err(e) => panic!("read error {e:?}"),
        }
    }
}

fn code_of(r: Result<(), TransportError>) -> TransportErrorCode {
    r.expect_err("expected a transport error").code
}

#[test]
fn simple_transfer_and_finished() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    assert_eq!(c.write(id, b"hello").unwrap(), 5);
    c.finish(id).unwrap();
    assert_eq!(c.write(id, b"x"), Err(WriteError::ClosedStream));
    flush(&mut c, &mut s);
    assert_eq!(
        events(&mut s),
        vec![
            StreamEvent::Opened { dir: Dir::Bi },
            StreamEvent::Readable { id }
        ]
    );
    assert_eq!(s.accept(Dir::Bi), Some(id));
    assert_eq!(s.accept(Dir::Bi), None);
    assert_eq!(read_to_end(&mut s, id), (b"hello".to_vec(), true));
    assert_eq!(c.is_finished_sending(id), Ok(true));
    assert_eq!(events(&mut c), vec![StreamEvent::Finished { id }]);
    assert_eq!(c.send_state(id), Some(SendState::DataRecvd));
}

#[test]
fn stream_flow_control_error() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    s.on_stream_frame(id, 0, Bytes::from(vec![0; 1000]), false)
        .unwrap();
    let r = s.on_stream_frame(id, 1000, Bytes::from_static(b"x"), false);
    assert_eq!(code_of(r), TransportErrorCode::FLOW_CONTROL_ERROR);
}

#[test]
fn connection_flow_control_error() {
    let (_, mut s) = pair();
    for i in 0..3 {
        let id = StreamId::new(Side::Client, Dir::Uni, i);
        s.on_stream_frame(id, 0, Bytes::from(vec![0; 1000]), false)
            .unwrap();
    }
    // Retransmitted data does not count twice.
    let id0 = StreamId::new(Side::Client, Dir::Uni, 0);
    s.on_stream_frame(id0, 0, Bytes::from(vec![0; 1000]), false)
        .unwrap();
    let id = StreamId::new(Side::Client, Dir::Uni, 3);
    let r = s.on_stream_frame(id, 0, Bytes::from_static(b"x"), false);
    assert_eq!(code_of(r), TransportErrorCode::FLOW_CONTROL_ERROR);
    // A reset's final size counts too.
    let (_, mut s) = pair();
    for i in 0..3 {
        let id = StreamId::new(Side::Client, Dir::Uni, i);
        s.on_reset_stream(id, v(0), 1000).unwrap();
    }
    let r = s.on_reset_stream(StreamId::new(Side::Client, Dir::Uni, 3), v(0), 1);
    assert_eq!(code_of(r), TransportErrorCode::FLOW_CONTROL_ERROR);
}

#[test]
fn connection_window_returns_after_reset() {
    let (_, mut s) = pair();
    // Fill the connection window, then a reset gives the unread bytes back.
    for i in 0..3 {
        let id = StreamId::new(Side::Client, Dir::Uni, i);
        s.on_stream_frame(id, 0, Bytes::from(vec![0; 1000]), false)
            .unwrap();
    }
    let id0 = StreamId::new(Side::Client, Dir::Uni, 0);
    let id1 = StreamId::new(Side::Client, Dir::Uni, 1);
    s.on_reset_stream(id0, v(9), 1000).unwrap();
    s.on_reset_stream(id1, v(9), 1000).unwrap();
    let (buf, _) = packet(&mut s, 1200);
    assert!(frames_of(&buf).contains(&Frame::Control(Control::MaxData(5000))));
}

#[test]
fn final_size_errors() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    s.on_stream_frame(id, 0, Bytes::from_static(b"abcd"), true)
        .unwrap();
    let r = s.on_stream_frame(id, 4, Bytes::from_static(b"e"), false);
    assert_eq!(code_of(r), TransportErrorCode::FINAL_SIZE_ERROR);
    let r = s.on_reset_stream(id, v(0), 5);
    assert_eq!(code_of(r), TransportErrorCode::FINAL_SIZE_ERROR);
    let id = StreamId::new(Side::Client, Dir::Uni, 1);
    s.on_stream_frame(id, 10, Bytes::from_static(b"abcd"), false)
        .unwrap();
    let r = s.on_stream_frame(id, 0, Bytes::from_static(b"abcd"), true);
    assert_eq!(code_of(r), TransportErrorCode::FINAL_SIZE_ERROR);
}

#[test]
fn stream_state_errors() {
    let (mut c, mut s) = pair();
    // STREAM on a stream we initiated as unidirectional (send-only).
    let uni = c.open(Dir::Uni).unwrap();
    let r = c.on_stream_frame(uni, 0, Bytes::from_static(b"x"), false);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    let r = c.on_reset_stream(uni, v(0), 0);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    // MAX_STREAM_DATA / STOP_SENDING for a receive-only stream.
    let r = s.on_max_stream_data(uni, 100);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    let r = s.on_stop_sending(uni, v(1));
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    // Frames for a locally initiated stream not yet opened.
    let not_yet = StreamId::new(Side::Client, Dir::Bi, 0);
    let r = c.on_stream_frame(not_yet, 0, Bytes::from_static(b"x"), false);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    let r = c.on_max_stream_data(not_yet, 10);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    let r = c.on_stop_sending(not_yet, v(0));
    assert_eq!(code_of(r), TransportErrorCode::STREAM_STATE_ERROR);
    // MAX_STREAMS above 2^60 is an encoding error.
    let r = c.on_max_streams(Dir::Bi, (1 << 60) + 1);
    assert_eq!(code_of(r), TransportErrorCode::FRAME_ENCODING_ERROR);
}

#[test]
fn stream_limits_and_streams_blocked() {
    let (mut c, mut s) = pair();
    let ids: Vec<_> = (0..4).map(|_| c.open(Dir::Bi).unwrap()).collect();
    assert_eq!(c.open(Dir::Bi), None);
    let (buf, _) = packet(&mut c, 1200);
    assert_eq!(
        frames_of(&buf),
        vec![Frame::Control(Control::StreamsBlocked {
            dir: Dir::Bi,
            limit: 4
        })]
    );
    // Asking again at the same limit does not repeat the signal.
    assert_eq!(c.open(Dir::Bi), None);
    assert!(!c.has_pending_control());
    // The peer opening beyond our limit is a STREAM_LIMIT_ERROR.
    let beyond = StreamId::new(Side::Client, Dir::Bi, 4);
    let r = s.on_stream_frame(beyond, 0, Bytes::new(), false);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_LIMIT_ERROR);
    let r = s.on_max_stream_data(StreamId::new(Side::Client, Dir::Bi, 7), 1);
    assert_eq!(code_of(r), TransportErrorCode::STREAM_LIMIT_ERROR);
    let _ = ids;
}

#[test]
fn implicit_open() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 2);
    s.on_stream_frame(id, 0, Bytes::from_static(b"x"), false)
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            StreamEvent::Opened { dir: Dir::Bi },
            StreamEvent::Readable { id }
        ]
    );
    let accepted: Vec<_> = std::iter::from_fn(|| s.accept(Dir::Bi)).collect();
    assert_eq!(
        accepted,
        (0..3)
            .map(|i| StreamId::new(Side::Client, Dir::Bi, i))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        s.recv_state(StreamId::new(Side::Client, Dir::Bi, 0)),
        Some(RecvState::Recv)
    );
    assert_eq!(
        s.send_state(StreamId::new(Side::Client, Dir::Bi, 1)),
        Some(SendState::Ready)
    );
    // MAX_STREAM_DATA may open a peer bidi stream too.
    s.on_max_stream_data(StreamId::new(Side::Client, Dir::Bi, 3), 5)
        .unwrap();
    assert_eq!(
        s.accept(Dir::Bi),
        Some(StreamId::new(Side::Client, Dir::Bi, 3))
    );
}

#[test]
fn max_streams_credit_after_close() {
    let mut cfg = config();
    cfg.max_concurrent_uni = 2;
    let (mut c, mut s) = pair_with(config(), cfg);
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    assert_eq!(c.open(Dir::Uni), None);
    for id in [a, b] {
        c.write(id, b"data").unwrap();
        c.finish(id).unwrap();
    }
    flush(&mut c, &mut s);
    events(&mut c);
    // Not yet read: no credit.
    let (buf, _) = packet(&mut s, 1200);
    assert!(buf.is_empty());
    assert_eq!(read_to_end(&mut s, a), (b"data".to_vec(), true));
    assert_eq!(s.stream_count(), 1);
    // The credit is only usable once MAX_STREAMS was actually sent.
    let third = StreamId::new(Side::Client, Dir::Uni, 2);
    assert_eq!(
        code_of(s.on_stream_frame(third, 0, Bytes::new(), false)),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(
        frames_of(&buf),
        vec![Frame::Control(Control::MaxStreams {
            dir: Dir::Uni,
            count: 3
        })]
    );
    for f in frames_of(&buf) {
        apply(&mut c, f).unwrap();
    }
    assert_eq!(
        events(&mut c),
        vec![StreamEvent::Available { dir: Dir::Uni }]
    );
    assert!(c.open(Dir::Uni).is_some());
    assert_eq!(c.open(Dir::Uni), None);
    // Frames for the freed stream are ignored.
    s.on_stream_frame(a, 0, Bytes::from_static(b"data"), true)
        .unwrap();
    s.on_reset_stream(a, v(1), 4).unwrap();
    assert_eq!(s.read(a, 10), Err(ReadError::ClosedStream));
}

#[test]
fn stop_sending_triggers_reset() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    c.write(id, &[7; 500]).unwrap();
    flush(&mut c, &mut s);
    s.accept(Dir::Bi).unwrap();
    s.stop_sending(id, v(42)).unwrap();
    assert_eq!(s.read(id, 10), Err(ReadError::ClosedStream));
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(
        frames_of(&buf),
        vec![Frame::Control(Control::StopSending { id, code: v(42) })]
    );
    for f in frames_of(&buf) {
        apply(&mut c, f).unwrap();
    }
    assert_eq!(
        events(&mut c),
        vec![StreamEvent::Stopped {
            id,
            error_code: v(42)
        }]
    );
    assert_eq!(c.write(id, b"more"), Err(WriteError::Stopped(v(42))));
    assert_eq!(c.send_state(id), Some(SendState::ResetSent));
    let (buf, sent) = packet(&mut c, 1200);
    assert_eq!(
        frames_of(&buf),
        vec![Frame::Control(Control::ResetStream {
            id,
            code: v(42),
            final_size: 500
        })]
    );
    // Lost RESET_STREAM is resent; its acknowledgement ends the send side.
    c.on_packet_lost(sent);
    let (buf, sent) = packet(&mut c, 1200);
    assert_eq!(frames_of(&buf).len(), 1);
    c.on_packet_acked(&sent);
    assert_eq!(c.send_state(id), Some(SendState::ResetRecvd));
    for f in frames_of(&buf) {
        apply(&mut s, f).unwrap();
    }
    // The server's receive side is done (stopped + reset); once it finishes its own
    // sending side the stream is freed and a credit returned.
    s.finish(id).unwrap();
    flush(&mut s, &mut c);
    assert_eq!(s.stream_count(), 0);
}

#[test]
/// Lost data is resent before the same stream's new data, and the stream keeps its place
/// in the scheduler's order (round robin here: `a` already had its turn this round, so
/// `b` goes first, then `a` resends its lost bytes and continues).
fn lost_data_retransmitted_before_new_data() {
    let (mut c, _) = pair();
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, &[1; 300]).unwrap();
    let (_, lost) = packet(&mut c, 1200);
    c.write(b, &[2; 300]).unwrap();
    c.write(a, &[3; 300]).unwrap();
    c.on_packet_lost(lost);
    let (buf, _) = packet(&mut c, 1200);
    let order: Vec<(StreamId, u64, usize)> = frames_of(&buf)
        .into_iter()
        .map(|f| match f {
            Frame::Stream {
                id, offset, data, ..
            } => (id, offset, data.len()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, vec![(b, 0, 300), (a, 0, 300), (a, 300, 300)]);
}

#[test]
fn lost_max_data_superseded() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    // Server → client packet whose frames are delivered, returning its record.
    let deliver = |s: &mut StreamsState, c: &mut StreamsState| {
        let (buf, sent) = packet(s, 1200);
        for f in frames_of(&buf) {
            apply(c, f).unwrap();
        }
        sent
    };
    let round = |c: &mut StreamsState, s: &mut StreamsState| {
        assert_eq!(c.write(id, &[0; 1000]), Ok(1000));
        flush(c, s);
        assert_eq!(s.read(id, 1000).unwrap().unwrap().len(), 1000);
        deliver(s, c)
    };
    // Stream window 1000, connection window 3000: MAX_STREAM_DATA after every 1000
    // read, MAX_DATA after more than 1500 were consumed since the last one.
    let p1 = round(&mut c, &mut s);
    assert_eq!(
        (p1.max_data, p1.max_stream_data.clone()),
        (None, vec![(id, 2000)])
    );
    let p2 = round(&mut c, &mut s);
    assert_eq!(
        (p2.max_data, p2.max_stream_data.clone()),
        (Some(5000), vec![(id, 3000)])
    );
    // The older MAX_STREAM_DATA was superseded: losing it queues nothing.
    s.on_packet_lost(p1);
    assert!(!s.has_pending_control());
    let p3 = round(&mut c, &mut s);
    assert_eq!(p3.max_data, None);
    let p4 = round(&mut c, &mut s);
    assert_eq!(p4.max_data, Some(7000));
    // Losing MAX_DATA 5000 after 7000 went out: superseded.
    s.on_packet_lost(p2);
    assert!(!s.has_pending_control());
    // Losing the newest one re-queues it with the same value.
    s.on_packet_lost(p4);
    let (_, p5) = packet(&mut s, 1200);
    assert_eq!(p5.max_data, Some(7000));
    assert_eq!(p5.max_stream_data, vec![(id, 5000)]);
}

#[test]
fn window_updates_after_reads() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    assert_eq!(c.write(id, &[5; 2000]), Ok(1000));
    assert_eq!(c.write(id, b"x"), Err(WriteError::Blocked));
    let (buf, _) = packet(&mut c, 1200);
    assert!(
        frames_of(&buf).contains(&Frame::Control(Control::StreamDataBlocked {
            id,
            limit: 1000
        }))
    );
    for f in frames_of(&buf) {
        apply(&mut s, f).unwrap();
    }
    flush(&mut c, &mut s);
    // Half the window read: no update yet (more than half is required).
    assert_eq!(s.read(id, 500).unwrap().unwrap().len(), 500);
    assert!(!s.has_pending_control());
    assert_eq!(s.read(id, 1).unwrap().unwrap().len(), 1);
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(
        frames_of(&buf),
        vec![Frame::Control(Control::MaxStreamData { id, max: 1501 })]
    );
    for f in frames_of(&buf) {
        apply(&mut c, f).unwrap();
    }
    assert_eq!(events(&mut c), vec![StreamEvent::Writable { id }]);
    assert_eq!(c.write(id, &[5; 2000]), Ok(501));
}

#[test]
fn connection_blocked_and_send_window() {
    let mut cfg = config();
    cfg.send_window = 1500;
    let (mut c, mut s) = pair_with(cfg, config());
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(a, &[0; 1000]), Ok(1000));
    // Local send window: 500 left.
    assert_eq!(c.write(b, &[0; 1000]), Ok(500));
    assert_eq!(c.write(b, b"x"), Err(WriteError::Blocked));
    assert!(
        !c.has_pending_control(),
        "send window is local: no BLOCKED frame"
    );
    let (buf, sent) = packet(&mut c, 1200);
    for f in frames_of(&buf) {
        apply(&mut s, f).unwrap();
    }
    c.on_packet_acked(&sent);
    assert_eq!(events(&mut c), vec![StreamEvent::Writable { id: b }]);
    // Connection-level limit 3000: 1500 written, 1500 left.
    let c_id = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(c_id, &[0; 1000]), Ok(1000));
    flush(&mut c, &mut s);
    assert_eq!(c.write(b, &[0; 1000]), Ok(500));
    assert_eq!(c.write(b, b"x"), Err(WriteError::Blocked));
    let (buf, _) = packet(&mut c, 1200);
    let frames = frames_of(&buf);
    assert_eq!(frames[0], Frame::Control(Control::DataBlocked(3000)));
    assert_eq!(
        frames[1],
        Frame::Control(Control::StreamDataBlocked { id: b, limit: 1000 })
    );
}

/// Writers blocked on the shared send window are woken oldest first and only as many
/// as the freed credit can serve, not all of them on every ACK.
#[test]
fn blocked_writers_woken_in_order_by_credit() {
    let mut cfg = config();
    cfg.max_concurrent_uni = 100;
    cfg.send_window = 4000;
    let mut peer = config();
    peer.max_concurrent_uni = 100;
    peer.stream_receive_window = 1 << 20;
    peer.receive_window = 1 << 20;
    let (mut c, mut s) = pair_with(cfg, peer);
    let first = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(first, &[1; 4000]), Ok(4000));
    let writers: Vec<StreamId> = (0..50).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &w in &writers {
        assert_eq!(c.write(w, &[2; 1000]), Err(WriteError::Blocked));
    }
    // One packet of under 1000 bytes acknowledged: room for one writer (at most).
    let (buf, sent) = packet(&mut c, 1000);
    for f in frames_of(&buf) {
        apply(&mut s, f).unwrap();
    }
    c.on_packet_acked(&sent);
    assert_eq!(
        events(&mut c),
        vec![StreamEvent::Writable { id: writers[0] }],
        "only the oldest writer is woken"
    );
    let mut left: std::collections::HashMap<StreamId, usize> =
        writers.iter().map(|&w| (w, 1000)).collect();
    let mut first_wake = vec![writers[0]];
    let n = c.write(writers[0], &[2; 1000]).unwrap();
    *left.get_mut(&writers[0]).unwrap() -= n;
    // Drive it like a runtime: after each ACK, the woken writers write.
    let mut acks = 0;
    let mut wakes = 0;
    while left.values().any(|&l| l > 0) {
        let (buf, sent) = packet(&mut c, 1200);
        for f in frames_of(&buf) {
            apply(&mut s, f).unwrap();
        }
        c.on_packet_acked(&sent);
        acks += 1;
        assert!(acks < 1000, "writers starve");
        let woken: Vec<StreamId> = events(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::Writable { id } => Some(id),
                _ => None,
            })
            .collect();
        // About 1150 bytes freed per ACK: one or two writers of 1000, plus those
        // with the small remainder of a write that was cut short. (Waking every
        // blocked writer would wake up to 49 here.)
        assert!(woken.len() <= 4, "one ACK woke {} writers", woken.len());
        wakes += woken.len();
        for id in woken {
            if !first_wake.contains(&id) {
                first_wake.push(id);
            }
            let l = left.get_mut(&id).unwrap();
            if *l > 0 {
                let n = c.write(id, &vec![2; *l]).unwrap();
                *l -= n;
            }
        }
    }
    assert_eq!(first_wake, writers, "woken oldest first");
    // A writer is woken once, or twice when its first write was cut short.
    assert!(
        wakes <= 2 * writers.len(),
        "{wakes} wake-ups for 50 writers"
    );
}

/// A writer woken for credit that finishes instead of writing hands the credit on.
#[test]
fn woken_writer_that_finishes_hands_credit_on() {
    let mut cfg = config();
    cfg.send_window = 2000;
    let mut peer = config();
    peer.stream_receive_window = 1 << 20;
    peer.receive_window = 1 << 20;
    let (mut c, mut s) = pair_with(cfg, peer);
    let first = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(first, &[1; 2000]), Ok(2000));
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(a, &[2; 1500]), Err(WriteError::Blocked));
    assert_eq!(c.write(b, &[2; 1500]), Err(WriteError::Blocked));
    let (buf, sent) = packet(&mut c, 1200);
    for f in frames_of(&buf) {
        apply(&mut s, f).unwrap();
    }
    c.on_packet_acked(&sent);
    assert_eq!(events(&mut c), vec![StreamEvent::Writable { id: a }]);
    c.finish(a).unwrap();
    assert_eq!(events(&mut c), vec![StreamEvent::Writable { id: b }]);
}

#[test]
fn round_robin_fairness() {
    let mut cfg = config();
    cfg.stream_receive_window = 1 << 20;
    cfg.receive_window = 1 << 22;
    let (mut c, _) = pair_with(cfg.clone(), cfg);
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, &[1; 20_000]).unwrap();
    c.write(b, &[2; 20_000]).unwrap();
    let mut per = BTreeMap::new();
    for _ in 0..11 {
        let (buf, _) = packet(&mut c, 700);
        for f in frames_of(&buf) {
            if let Frame::Stream { id, data, .. } = f {
                *per.entry(id).or_insert(0usize) += data.len();
            }
        }
        let (x, y) = (
            per.get(&a).copied().unwrap_or(0),
            per.get(&b).copied().unwrap_or(0),
        );
        assert!(x.abs_diff(y) <= 700, "unfair: {x} vs {y}");
    }
    // With small writes, one packet carries frames of both streams in turn.
    let (mut c, _) = pair();
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, &[1; 10]).unwrap();
    c.write(b, &[2; 10]).unwrap();
    c.finish(a).unwrap();
    let (buf, _) = packet(&mut c, 1200);
    let ids: Vec<StreamId> = frames_of(&buf)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Stream { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![a, b]);
}

#[test]
fn fin_only_frame_and_lost_fin() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, b"abc").unwrap();
    let (buf, p1) = packet(&mut c, 1200);
    c.finish(id).unwrap();
    let (buf2, p2) = packet(&mut c, 1200);
    assert_eq!(
        frames_of(&buf2),
        vec![Frame::Stream {
            id,
            offset: 3,
            data: Bytes::new(),
            fin: true
        }]
    );
    assert_eq!(c.send_state(id), Some(SendState::DataSent));
    c.on_packet_acked(&p1);
    c.on_packet_lost(p2);
    assert!(c.has_pending_data());
    let (buf3, p3) = packet(&mut c, 1200);
    assert_eq!(frames_of(&buf3), frames_of(&buf2));
    c.on_packet_acked(&p3);
    assert_eq!(events(&mut c), vec![StreamEvent::Finished { id }]);
    // A send-only stream is freed once finished.
    assert_eq!(c.stream_count(), 0);
    for f in frames_of(&buf).into_iter().chain(frames_of(&buf3)) {
        apply(&mut s, f).unwrap();
    }
    assert_eq!(read_to_end(&mut s, id), (b"abc".to_vec(), true));
}

#[test]
fn reset_by_application() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, &[9; 100]).unwrap();
    let (buf, _) = packet(&mut c, 1200);
    c.write(id, &[9; 50]).unwrap();
    c.reset(id, v(3)).unwrap();
    assert_eq!(c.unacked(), 0);
    assert_eq!(c.reset(id, v(3)), Err(ClosedStream));
    assert!(!c.has_pending_data());
    let (buf2, _) = packet(&mut c, 1200);
    assert_eq!(
        frames_of(&buf2),
        vec![Frame::Control(Control::ResetStream {
            id,
            code: v(3),
            final_size: 150
        })]
    );
    for f in frames_of(&buf).into_iter().chain(frames_of(&buf2)) {
        apply(&mut s, f).unwrap();
    }
    assert_eq!(s.read(id, 1000), Err(ReadError::Reset(v(3))));
    assert_eq!(s.read(id, 1000), Err(ReadError::ClosedStream));
    assert_eq!(s.stream_count(), 0);
}

#[test]
fn tiny_budgets_never_overflow() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Bi).unwrap();
    c.write(id, &[1; 900]).unwrap();
    c.finish(id).unwrap();
    let mut total = 0;
    let mut fin = false;
    for budget in (0..40).cycle().take(2000) {
        let mut buf = Vec::new();
        let mut sent = SentStreamFrames::default();
        c.write_stream_frames(&mut buf, budget, &mut sent);
        assert!(buf.len() <= budget);
        for f in frames_of(&buf) {
            if let Frame::Stream { data, fin: f, .. } = f {
                total += data.len();
                fin |= f;
            }
        }
        if fin {
            break;
        }
    }
    assert_eq!((total, fin), (900, true));
}

proptest! {
    #[test]
    fn budgets_respected(budgets in proptest::collection::vec(0usize..1500, 1..40),
                         sizes in proptest::collection::vec(0usize..5000, 1..5),
                         lose in proptest::collection::vec(any::<bool>(), 40)) {
        let (mut c, mut s) = pair_with(config(), config());
        let ids: Vec<_> = sizes.iter().map(|_| c.open(Dir::Bi).unwrap()).collect();
        for (id, &n) in ids.iter().zip(&sizes) {
            let _ = c.write(*id, &vec![3; n]);
            c.finish(*id).unwrap();
            s.on_stream_frame(*id, 0, Bytes::from(vec![0; 600]), false).unwrap();
            let _ = s.read(*id, 600);
        }
        for (i, &budget) in budgets.iter().enumerate() {
            for st in [&mut c, &mut s] {
                let (buf, sent) = packet(st, budget);
                prop_assert!(buf.len() <= budget);
                frames_of(&buf);
                if lose[i] { st.on_packet_lost(sent) } else { st.on_packet_acked(&sent) }
            }
        }
    }
}

/// One direction of the simulated path.
struct Wire {
    /// (delivery tick, payload)
    in_flight: Vec<(u64, Vec<u8>)>,
    /// Sent records awaiting ack or loss: (report tick, lost, record)
    reports: Vec<(u64, bool, SentStreamFrames)>,
}

impl Wire {
    fn new() -> Self {
        Self {
            in_flight: Vec::new(),
            reports: Vec::new(),
        }
    }
}

/// Per-endpoint application driving the loopback test.
#[derive(Default)]
struct App {
    /// Streams we send on: id → (data, written so far, finished)
    outgoing: BTreeMap<StreamId, (Vec<u8>, usize, bool)>,
    /// Streams we receive on: id → (received bytes, saw end)
    incoming: BTreeMap<StreamId, (Vec<u8>, bool)>,
    /// Bidi streams to open later (data to send).
    to_open: Vec<Vec<u8>>,
    finished_events: usize,
}

impl App {
    fn step(&mut self, s: &mut StreamsState, echo: bool) {
        while let Some(ev) = s.poll_event() {
            if let StreamEvent::Finished { .. } = ev {
                self.finished_events += 1;
            }
        }
        while let Some(data) = self.to_open.last() {
            let dir = if data.len() % 2 == 0 {
                Dir::Bi
            } else {
                Dir::Uni
            };
            let Some(id) = s.open(dir) else { break };
            let data = self.to_open.pop().unwrap_or_default();
            self.outgoing.insert(id, (data, 0, false));
            if dir == Dir::Bi {
                self.incoming.insert(id, (Vec::new(), false));
            }
        }
        for dir in [Dir::Bi, Dir::Uni] {
            while let Some(id) = s.accept(dir) {
                self.incoming.insert(id, (Vec::new(), false));
                if echo && dir == Dir::Bi {
                    self.outgoing.insert(id, (Vec::new(), 0, false));
                }
            }
        }
        for (&id, (got, end)) in self.incoming.iter_mut() {
            while !*end {
                match s.read(id, 777) {
                    Ok(Some(d)) => {
                        got.extend_from_slice(&d);
                        if echo {
                            if let Some(out) = self.outgoing.get_mut(&id) {
                                out.0.extend_from_slice(&d);
                            }
                        }
                    }
                    Ok(None) => *end = true,
                    Err(ReadError::Blocked) => break,
                    Err(e) => panic!("read {id}: {e:?}"),
                }
            }
        }
        for (&id, (data, pos, fin)) in self.outgoing.iter_mut() {
            if *fin {
                continue;
            }
            while *pos < data.len() {
                match s.write(id, &data[*pos..]) {
                    Ok(n) => *pos += n,
                    Err(WriteError::Blocked) => break,
                    Err(e) => panic!("write {id}: {e:?}"),
                }
            }
            // Echo streams finish once the peer's side ended and all was echoed.
            let input_done = !echo || self.incoming.get(&id).is_none_or(|(_, end)| *end);
            if *pos == data.len() && input_done {
                s.finish(id).unwrap();
                *fin = true;
            }
        }
    }
}

fn transmit(s: &mut StreamsState, wire: &mut Wire, rng: &mut SmallRng, tick: u64, loss: f64) {
    for _ in 0..4 {
        let budget = rng.gen_range(40..1300);
        let (buf, sent) = packet(s, budget);
        if buf.is_empty() {
            break;
        }
        let lost = rng.gen_bool(loss);
        let delay = rng.gen_range(1..5);
        if !lost {
            // Occasionally the network duplicates a packet.
            if rng.gen_bool(0.05) {
                wire.in_flight.push((tick + delay + 2, buf.clone()));
            }
            wire.in_flight.push((tick + delay, buf));
        }
        wire.reports.push((tick + delay + 1, lost, sent));
    }
}

fn receive(s: &mut StreamsState, wire: &mut Wire, tick: u64) {
    let mut due = Vec::new();
    wire.in_flight.retain(|(t, buf)| {
        if *t <= tick {
            due.push(buf.clone());
            false
        } else {
            true
        }
    });
    for buf in due {
        for f in frames_of(&buf) {
            apply(s, f).unwrap();
        }
    }
}

fn report(s: &mut StreamsState, wire: &mut Wire, tick: u64) {
    let mut due = Vec::new();
    let mut keep = Vec::new();
    for r in wire.reports.drain(..) {
        if r.0 <= tick {
            due.push(r);
        } else {
            keep.push(r);
        }
    }
    wire.reports = keep;
    for (_, lost, sent) in due {
        if lost {
            s.on_packet_lost(sent);
        } else {
            s.on_packet_acked(&sent);
        }
    }
}

/// `tune`: receive windows auto-tune (a 3-tick RTT, 1 ms per tick) up to 4× / 3×.
fn loopback(seed: u64, loss: f64, tune: bool) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let cfg = StreamsConfig {
        max_concurrent_bidi: 2,
        max_concurrent_uni: 2,
        stream_receive_window: 4000,
        receive_window: 10_000,
        max_stream_receive_window: if tune { 16_000 } else { 4000 },
        max_receive_window: if tune { 30_000 } else { 10_000 },
        send_window: 12_000,
        ..StreamsConfig::default()
    };
    let (mut c, mut s) = pair_with(cfg.clone(), cfg);
    let start = Instant::now();
    if tune {
        c.set_rtt(Duration::from_millis(3));
        s.set_rtt(Duration::from_millis(3));
    }
    let mut capp = App::default();
    let mut sapp = App::default();
    for i in 0..7 {
        let len = rng.gen_range(0..30_000);
        // Even length → bidi (echoed), odd → uni.
        let len = if i % 2 == 0 { len & !1 } else { len | 1 };
        capp.to_open.push((0..len).map(|_| rng.gen()).collect());
    }
    sapp.to_open.push((0..9_999).map(|_| rng.gen()).collect());
    let expected_c = capp.to_open.clone();
    let mut to_c = Wire::new();
    let mut to_s = Wire::new();
    let mut tick = 0;
    loop {
        tick += 1;
        assert!(tick < 20_000, "loopback did not converge (seed {seed})");
        let now = start + Duration::from_millis(tick);
        c.set_now(now);
        s.set_now(now);
        capp.step(&mut c, false);
        sapp.step(&mut s, true);
        transmit(&mut c, &mut to_s, &mut rng, tick, loss);
        transmit(&mut s, &mut to_c, &mut rng, tick, loss);
        receive(&mut s, &mut to_s, tick);
        receive(&mut c, &mut to_c, tick);
        report(&mut c, &mut to_s, tick);
        report(&mut s, &mut to_c, tick);
        let done = capp.to_open.is_empty()
            && sapp.to_open.is_empty()
            && c.stream_count() == 0
            && s.stream_count() == 0
            && capp.incoming.values().all(|(_, e)| *e)
            && sapp.incoming.values().all(|(_, e)| *e);
        if done {
            break;
        }
    }
    // Every client stream arrived intact at the server; bidi ones were echoed back.
    let mut sent_by_c: Vec<Vec<u8>> = capp.outgoing.values().map(|o| o.0.clone()).collect();
    let mut expect = expected_c.clone();
    sent_by_c.sort();
    expect.sort();
    assert_eq!(sent_by_c, expect);
    for (id, (data, _, _)) in &capp.outgoing {
        assert_eq!(&sapp.incoming[id].0, data, "stream {id} corrupted");
        if id.dir() == Dir::Bi {
            assert_eq!(&capp.incoming[id].0, data, "echo of {id} corrupted");
        }
    }
    capp.step(&mut c, false);
    sapp.step(&mut s, true);
    let server_uni = StreamId::new(Side::Server, Dir::Uni, 0);
    assert_eq!(capp.incoming[&server_uni].0, sapp.outgoing[&server_uni].0);
    assert_eq!(capp.finished_events, capp.outgoing.len());
    assert_eq!(sapp.finished_events, sapp.outgoing.len());
    assert_eq!(c.unacked(), 0);
    assert_eq!(s.unacked(), 0);
    for x in [&c, &s] {
        assert!(x.receive_window() <= 30_000);
        assert!(x.largest_stream_receive_window() <= 16_000);
        if !tune {
            assert_eq!(x.receive_window(), 10_000);
            assert_eq!(x.largest_stream_receive_window(), 4000);
        }
    }
}

#[test]
fn loopback_no_loss() {
    loopback(1, 0.0, false);
    loopback(1, 0.0, true);
}

#[test]
fn loopback_lossy_reordered() {
    for seed in 0..12 {
        loopback(seed, 0.2, false);
        loopback(seed, 0.2, true);
    }
}

// ------------------------------------------------------------- receive-window tuning

const RTT: Duration = Duration::from_millis(100);

/// Stream window 1000 tunable up to 8000; a connection window large enough not to
/// interfere unless `conn`/`max_conn` say otherwise.
fn tuning_pair(max_stream: u64, conn: u64, max_conn: u64) -> (StreamsState, StreamsState) {
    let cfg = StreamsConfig {
        receive_window: conn,
        max_stream_receive_window: max_stream,
        max_receive_window: max_conn,
        ..config()
    };
    let (c, mut s) = pair_with(cfg.clone(), cfg);
    s.set_rtt(RTT);
    (c, s)
}

/// One exchange at `t`: the client writes as much of `n` bytes on `id` as flow control
/// allows, the server receives and reads it all, and its window updates reach the
/// client. Returns the bytes written.
fn round(c: &mut StreamsState, s: &mut StreamsState, id: StreamId, n: usize, t: Instant) -> usize {
    c.set_now(t);
    s.set_now(t);
    let w = c.write(id, &vec![7; n]).unwrap_or(0);
    flush(c, s);
    read_to_end(s, id);
    flush(s, c);
    w
}

/// Opens a uni stream and delivers 100 bytes at `t0`: the stream's first "update"
/// time (the initial window counts as one) without a real update being due.
fn start_stream(c: &mut StreamsState, s: &mut StreamsState, t0: Instant) -> StreamId {
    let id = c.open(Dir::Uni).unwrap();
    assert_eq!(round(c, s, id, 100, t0), 100);
    assert_eq!(s.stream_receive_window(id), Some(1000));
    id
}

/// Window updates less than 2 RTT apart double the stream window, up to the maximum;
/// the larger limits are what the peer is allowed to send.
#[test]
fn stream_window_doubles_when_updates_are_fast() {
    let (mut c, mut s) = tuning_pair(8000, 1 << 20, 1 << 20);
    let t0 = Instant::now();
    let id = start_stream(&mut c, &mut s, t0);
    let mut windows = Vec::new();
    let mut total = 100;
    for k in 1..=6 {
        // 1.5 RTT between updates: the window is the bottleneck.
        total += round(&mut c, &mut s, id, 1 << 20, t0 + RTT * 3 / 2 * k);
        windows.push(s.stream_receive_window(id).unwrap());
        assert!(s.largest_stream_receive_window() <= 8000);
    }
    assert_eq!(windows, [2000, 4000, 8000, 8000, 8000, 8000]);
    // Each round's write was blocked by the limit, the update for the doubled window
    // went out once half of it was read, so the peer now holds more than half of the
    // largest window as credit, never more than it.
    let limit = s.streams[&id].recv.as_ref().unwrap().advertised;
    let credit = limit - total as u64;
    assert!(credit > 4000 && credit <= 8000, "credit {credit}");
    assert_eq!(s.largest_stream_receive_window(), 8000);
}

/// Updates 2 RTT or more apart leave the window alone.
#[test]
fn stream_window_stays_when_updates_are_slow() {
    let (mut c, mut s) = tuning_pair(8000, 1 << 20, 1 << 20);
    let t0 = Instant::now();
    let id = start_stream(&mut c, &mut s, t0);
    for k in 1..=5 {
        let w = round(&mut c, &mut s, id, 1 << 20, t0 + RTT * 2 * k);
        assert!(w > 500 && w <= 1000, "round {k}: wrote {w}");
        assert_eq!(s.stream_receive_window(id), Some(1000));
    }
    assert_eq!(s.largest_stream_receive_window(), 1000);
    assert_eq!(s.receive_window(), 1 << 20);
}

/// max == initial, or no RTT sample yet (zero RTT), disables tuning.
#[test]
fn no_tuning_without_rtt_or_headroom() {
    for (max, rtt) in [(1000, RTT), (8000, Duration::ZERO)] {
        let (mut c, mut s) = tuning_pair(max, 3000, 3000);
        s.set_rtt(rtt);
        let t0 = Instant::now();
        let id = start_stream(&mut c, &mut s, t0);
        for k in 1..=5 {
            round(&mut c, &mut s, id, 1 << 20, t0 + RTT / 10 * k);
            assert_eq!(s.stream_receive_window(id), Some(1000));
        }
        assert_eq!(s.receive_window(), 3000);
    }
}

/// The connection window follows the stream windows (≥ 1.5 × the largest, capped by
/// its own maximum) and the larger limit is advertised at once, so a single stream is
/// never held back by the connection.
#[test]
fn connection_window_follows_stream_window() {
    let (mut c, mut s) = tuning_pair(8000, 3000, 100_000);
    let t0 = Instant::now();
    let id = start_stream(&mut c, &mut s, t0);
    for k in 1..=6 {
        round(&mut c, &mut s, id, 1 << 20, t0 + RTT * 3 / 2 * k);
        let stream = s.largest_stream_receive_window();
        assert!(
            s.receive_window() >= stream * 3 / 2,
            "round {k}: connection {} < 1.5 × stream {stream}",
            s.receive_window()
        );
        assert!(s.receive_window() <= 100_000);
    }
    assert_eq!(s.largest_stream_receive_window(), 8000);
    // Connection credit never limited the stream: a write is cut short by the
    // stream's own limit with connection credit to spare.
    assert!(c.write(id, &[7; 1 << 20]).unwrap() > 4000);
    let send = c.streams[&id].send.as_ref().unwrap();
    assert_eq!(send.stream_credit(), 0);
    assert!(c.peer_max_data - c.data_sent >= 4000);
    // Capped by the connection maximum.
    let (mut c, mut s) = tuning_pair(8000, 3000, 5000);
    let id = start_stream(&mut c, &mut s, t0);
    for k in 1..=6 {
        round(&mut c, &mut s, id, 1 << 20, t0 + RTT * 3 / 2 * k);
    }
    assert_eq!(s.receive_window(), 5000);
}

/// MAX_DATA updates less than 2 RTT apart double the connection window by themselves
/// (many streams, none of whose windows grows), up to its maximum.
#[test]
fn connection_window_doubles_when_updates_are_fast() {
    let (mut c, mut s) = tuning_pair(1000, 2000, 7000);
    let t0 = Instant::now();
    let mut history = Vec::new();
    for k in 0..12u32 {
        // A fresh stream every round: each carries at most its 1000-byte window.
        let t = t0 + RTT / 2 * k;
        let a = c.open(Dir::Uni).unwrap();
        let b = c.open(Dir::Uni).unwrap();
        round(&mut c, &mut s, a, 1000, t);
        round(&mut c, &mut s, b, 1000, t);
        history.push(s.receive_window());
        // Finished streams free their credit.
        c.finish(a).unwrap();
        c.finish(b).unwrap();
        flush(&mut c, &mut s);
        read_to_end(&mut s, a);
        read_to_end(&mut s, b);
        flush(&mut s, &mut c);
    }
    assert!(history.windows(2).all(|w| w[0] <= w[1]), "{history:?}");
    assert_eq!(*history.last().unwrap(), 7000, "{history:?}");
    assert!(history.contains(&4000), "{history:?}");
    assert_eq!(s.largest_stream_receive_window(), 1000);
}

/// A grown window is not a licence to send: data beyond the limit actually advertised
/// is still a FLOW_CONTROL_ERROR (RFC 9000 §4.1).
#[test]
fn tuned_window_still_enforces_advertised_limit() {
    let (mut c, mut s) = tuning_pair(8000, 3000, 100_000);
    let t0 = Instant::now();
    let id = start_stream(&mut c, &mut s, t0);
    s.set_now(t0 + RTT);
    // The peer sends up to the advertised 1000; reading it makes an update due, and
    // the window doubles, but the new limit is only queued.
    s.on_stream_frame(id, 100, Bytes::from(vec![1; 900]), false)
        .unwrap();
    read_to_end(&mut s, id);
    assert_eq!(s.stream_receive_window(id), Some(2000));
    assert!(s.has_pending_control());
    assert_eq!(
        code_of(s.on_stream_frame(id, 1000, Bytes::from_static(b"x"), false)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

/// 0-RTT rejected (RFC 9000 §7.4.1): the client wrote under remembered limits, its 0-RTT
/// packets were discarded (handed back as lost), and the server's real limits are lower.
/// `replace_peer_limits` recomputes the credit from the new values; the data then reaches
/// a server enforcing them exactly once, without a flow-control error. Limits below what
/// was already written are refused without changing anything.
#[test]
fn replaced_peer_limits_after_rejected_0rtt() {
    let remembered = config();
    let mut client = StreamsState::new(Side::Client, config(), Instant::now());
    client.set_peer_limits(remembered.local_limits());
    let a = client.open(Dir::Bi).unwrap();
    let b = client.open(Dir::Bi).unwrap();
    assert_eq!(client.write(a, &[1; 500]), Ok(500));
    assert_eq!(client.write(b, &[2; 500]), Ok(500));
    client.finish(b).unwrap();
    let (_, sent) = packet(&mut client, 1200);
    let (_, sent2) = packet(&mut client, 1200);
    // Rejected: nothing was processed, everything is queued again.
    client.on_packet_lost(sent);
    client.on_packet_lost(sent2);

    let lower = |window: u64, conn: u64, streams: u64| StreamsConfig {
        max_concurrent_bidi: streams,
        stream_receive_window: window,
        receive_window: conn,
        ..config()
    };
    // Below what was written on a stream, on the connection, or in stream count.
    for (cfg, err) in [
        (lower(400, 3000, 4), LimitsBelowUse::Data),
        (lower(1000, 900, 4), LimitsBelowUse::Data),
        (lower(1000, 3000, 1), LimitsBelowUse::Streams),
    ] {
        assert_eq!(client.replace_peer_limits(cfg.local_limits()), Err(err));
    }
    // Refused replacements changed nothing: the remembered stream credit is intact.
    let real = lower(600, 1100, 2);
    client.replace_peer_limits(real.local_limits()).unwrap();
    // Stream credit now 600 - 500; connection credit 1100 - 1000.
    assert_eq!(client.write(a, &[1; 300]), Ok(100));
    assert_eq!(client.write(a, &[1; 10]), Err(WriteError::Blocked));
    client.finish(a).unwrap();
    assert!(client.open(Dir::Bi).is_none(), "the real stream limit is 2");

    let mut server = StreamsState::new(Side::Server, real.clone(), Instant::now());
    server.set_peer_limits(config().local_limits());
    flush(&mut client, &mut server);
    let ids: Vec<StreamId> = std::iter::from_fn(|| server.accept(Dir::Bi)).collect();
    assert_eq!(ids, vec![a, b]);
    assert_eq!(read_to_end(&mut server, a), (vec![1; 600], true));
    assert_eq!(read_to_end(&mut server, b), (vec![2; 500], true));
}

/// A peer naming a stream index far above the last one (but within our limit) opens
/// every lower stream too (RFC 9000 §3.2); they are recorded, not created, so the
/// cost does not grow with the index. Each is created when the application accepts it
/// or a frame names it.
#[test]
fn high_peer_stream_index_is_opened_lazily() {
    let huge = StreamsConfig {
        max_concurrent_bidi: 1 << 60,
        ..config()
    };
    let (_client, mut server) = pair_with(config(), huge);
    let high = (1u64 << 59) + 7;
    let id = StreamId::new(Side::Client, Dir::Bi, high);
    server
        .on_stream_frame(id, 0, Bytes::from_static(b"far"), false)
        .unwrap();
    assert_eq!(server.streams.len(), 1, "only the named stream exists");
    // A lower, implicitly opened stream comes into being when a frame names it.
    let low = StreamId::new(Side::Client, Dir::Bi, 3);
    server
        .on_stream_frame(low, 0, Bytes::from_static(b"low"), true)
        .unwrap();
    assert_eq!(server.streams.len(), 2);
    // Accepting yields every index in order; each is created as it is accepted.
    for i in 0..5u64 {
        let got = server.accept(Dir::Bi).unwrap();
        assert_eq!(got, StreamId::new(Side::Client, Dir::Bi, i));
        assert!(server.streams.contains_key(&got));
    }
    assert_eq!(server.read(low, 10).unwrap().as_deref(), Some(&b"low"[..]));
    assert_eq!(server.streams.len(), 6);
    assert_eq!(server.read(id, 10).unwrap().as_deref(), Some(&b"far"[..]));
}
