use super::*;
use crate::frame::{self, Frame};
use crate::VarInt;
use bytes::Bytes;
use serde_json::Value;

fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap()
}

fn records(out: &[u8]) -> Vec<Value> {
    assert_eq!(out.first(), Some(&0x1e), "a JSON-SEQ file starts with RS");
    out.split(|b| *b == 0x1e)
        .skip(1)
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'));
            serde_json::from_slice(r).unwrap()
        })
        .collect()
}

#[test]
fn header_record_follows_the_main_schema() {
    let t0 = Instant::now();
    let info = ConnectionInfo {
        side: Side::Server,
        odcid: cid(&[0xab, 0x01, 0x02, 0x03]),
        created: t0,
    };
    let mut w = JsonSeqWriter::new(Vec::new(), &info, 1_700_000_000_123.5, "t").unwrap();
    let ev = Event::ConnectionStateUpdated {
        old: None,
        new: ConnectionState::Attempted,
    };
    w.on_event(t0 + Duration::from_micros(1500), &ev);
    let r = records(&w.into_inner().unwrap());
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["qlog_version"], "0.3");
    assert_eq!(r[0]["qlog_format"], "JSON-SEQ");
    let common = &r[0]["trace"]["common_fields"];
    assert_eq!(common["ODCID"], "ab010203");
    assert_eq!(common["time_format"], "relative");
    assert_eq!(common["reference_time"], 1_700_000_000_123.5);
    assert_eq!(r[0]["trace"]["vantage_point"]["type"], "server");
    assert_eq!(r[1]["time"], 1.5);
    assert_eq!(r[1]["name"], "connectivity:connection_state_updated");
    assert_eq!(r[1]["data"], serde_json::json!({"new": "attempted"}));
}

#[test]
fn frames_are_summarised_with_qlog_names() {
    let mut payload = Vec::new();
    let frames = [
        Frame::Ping,
        Frame::Ack(frame::Ack {
            largest: 10,
            delay: 100,
            ranges: vec![8..11, 2..3],
            ecn: None,
        }),
        Frame::Crypto(frame::Crypto {
            offset: 5,
            data: Bytes::from_static(b"abc"),
        }),
        Frame::Stream(frame::Stream {
            id: crate::StreamId(4),
            offset: 7,
            fin: true,
            data: Bytes::from_static(b"hello"),
        }),
        Frame::MaxData(VarInt::from_u32(1000)),
        Frame::MaxStreams {
            dir: Dir::Uni,
            count: 3,
        },
        Frame::ConnectionClose(frame::ConnectionClose {
            error_code: TransportErrorCode::PROTOCOL_VIOLATION,
            frame_type: Some(0x08),
            reason: Bytes::from_static(b"bad"),
        }),
        Frame::Padding(4),
    ];
    for f in &frames {
        f.encode(&mut payload);
    }
    let infos = FrameInfo::from_payload(Bytes::from(payload), 3);
    assert_eq!(infos.len(), frames.len());
    assert_eq!(
        infos[1],
        FrameInfo::Ack {
            ack_delay: Duration::from_micros(800),
            acked_ranges: vec![(8, 10), (2, 2)],
            ecn: None
        }
    );
    let ev = Event::PacketSent(PacketEvent {
        header: PacketHeader {
            packet_type: PacketType::OneRtt,
            packet_number: Some(9),
            version: None,
            scid: None,
            dcid: Some(cid(&[1, 2])),
        },
        raw_length: 100,
        frames: infos,
    });
    let info = ConnectionInfo {
        side: Side::Client,
        odcid: cid(&[1; 8]),
        created: Instant::now(),
    };
    let mut w = JsonSeqWriter::new(Vec::new(), &info, 0.0, "t").unwrap();
    w.on_event(info.created, &ev);
    let r = records(&w.into_inner().unwrap());
    let data = &r[1]["data"];
    assert_eq!(r[1]["name"], "transport:packet_sent");
    assert_eq!(data["header"]["packet_type"], "1RTT");
    assert_eq!(data["header"]["packet_number"], 9);
    assert_eq!(data["header"]["dcid"], "0102");
    assert_eq!(data["raw"]["length"], 100);
    let f = data["frames"].as_array().unwrap();
    let types: Vec<&str> = f
        .iter()
        .map(|f| f["frame_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ping",
            "ack",
            "crypto",
            "stream",
            "max_data",
            "max_streams",
            "connection_close",
            "padding"
        ]
    );
    assert_eq!(f[1]["ack_delay"], 0.8);
    assert_eq!(f[1]["acked_ranges"], serde_json::json!([[8, 10], [2]]));
    assert_eq!(f[2]["offset"], 5);
    assert_eq!(f[2]["length"], 3);
    assert_eq!(
        (
            &f[3]["stream_id"],
            &f[3]["offset"],
            &f[3]["length"],
            &f[3]["fin"]
        ),
        (&4.into(), &7.into(), &5.into(), &true.into())
    );
    assert_eq!(f[5]["stream_type"], "unidirectional");
    assert_eq!(f[6]["error_space"], "transport");
    assert_eq!(f[6]["error_code"], "protocol_violation");
    assert_eq!(f[6]["trigger_frame_type"], 8);
    assert_eq!(f[7]["payload_length"], 4);
}

#[test]
fn crypto_and_unknown_transport_codes() {
    let ev = Event::ConnectionClosed(ConnectionClosed {
        owner: Some(Owner::Local),
        connection_code: Some(TransportErrorCode(0x12a)),
        application_code: None,
        reason: "alert".into(),
        trigger: CloseTrigger::Error,
    });
    let info = ConnectionInfo {
        side: Side::Client,
        odcid: cid(&[1; 8]),
        created: Instant::now(),
    };
    let mut w = JsonSeqWriter::new(Vec::new(), &info, 0.0, "t").unwrap();
    w.on_event(info.created, &ev);
    let r = records(&w.into_inner().unwrap());
    assert_eq!(r[1]["data"]["connection_code"], "crypto_error_0x12a");
    assert_eq!(r[1]["data"]["owner"], "local");
    assert_eq!(r[1]["data"]["trigger"], "error");
}

#[test]
fn a_failing_writer_stops_the_trace_without_panicking() {
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let info = ConnectionInfo {
        side: Side::Client,
        odcid: cid(&[1; 8]),
        created: Instant::now(),
    };
    let mut w = JsonSeqWriter::new(Full(400), &info, 0.0, "t").unwrap();
    for _ in 0..20 {
        w.on_event(info.created, &Event::MetricsUpdated(Metrics::default()));
    }
    assert!(w.error().is_some());
}
