//! Key update (RFC 9001 §6) and the AEAD limits (RFC 9001 §6.6).

use super::*;
use crate::connection::{ReadError, WriteError};

/// Client → server transfer of `total` bytes on one stream, delivering datagrams at
/// once and advancing the virtual clock by at most 5 ms per round, in which the client
/// writes at most 16 KB; `each_round` runs before every round. Checks the bytes the
/// server read.
fn transfer_with(p: &mut Pair, total: usize, mut each_round: impl FnMut(&mut Pair, usize)) {
    let id = p.client_conn().open(Dir::Bi).unwrap();
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let (mut written, mut finished) = (0, false);
    let mut got = Vec::with_capacity(total);
    let mut sid = None;
    for round in 0..200_000 {
        if written < total {
            let end = total.min(written + 16_000);
            match p.client_conn().write(id, &data[written..end]) {
                Ok(n) => written += n,
                Err(WriteError::Blocked) => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        if written == total && !finished {
            p.client_conn().finish(id).unwrap();
            finished = true;
        }
        each_round(p, round);
        p.flush();
        if sid.is_none() {
            sid = p.server_conn().accept(Dir::Bi);
        }
        if let Some(s) = sid {
            loop {
                match p.server_conn().read(s, usize::MAX) {
                    Ok(Some(c)) => got.extend_from_slice(&c),
                    Ok(None) => {
                        assert_eq!(got.len(), total);
                        assert!(got == data, "data corrupted");
                        p.run(Duration::from_millis(100));
                        return;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        p.flush();
        let cap = p.now + Duration::from_millis(5);
        let next = [p.client.poll_timeout(), p.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(cap, |t| t.min(cap));
        p.now = p.now.max(next);
        let now = p.now;
        p.client.handle_timeout(now);
        p.server.handle_timeout(now);
        p.drain_events();
    }
    panic!("transfer did not finish: {} of {total} bytes", got.len());
}

fn assert_open(p: &mut Pair) {
    for side in [Side::Client, Side::Server] {
        assert_eq!(p.conn(side).close_reason(), None, "{side:?}");
    }
}

#[test]
fn repeated_initiated_key_updates_during_a_transfer() {
    let mut p = Pair::established(bulk_transport(), bulk_transport());
    let mut accepted = [0u64; 2];
    transfer_with(&mut p, 2_000_000, |p, round| {
        {
            // Alternate sides; a request made before the previous update was
            // acknowledged waits (and is performed later).
            let side = if round % 2 == 0 {
                Side::Client
            } else {
                Side::Server
            };
            if p.conn(side).initiate_key_update() {
                accepted[(side == Side::Server) as usize] += 1;
            }
        }
    });
    assert_open(&mut p);
    let c = p.client_conn().stats();
    let s = p.server_conn().stats();
    assert!(
        c.key_updates_initiated >= 4 && s.key_updates_initiated >= 4,
        "client {c:?} server {s:?}"
    );
    assert!(accepted[0] >= 2 && accepted[1] >= 2, "{accepted:?}");
    assert_eq!(c.key_updates_initiated, s.key_updates_followed);
    assert_eq!(s.key_updates_initiated, c.key_updates_followed);
    assert_eq!(
        c.key_updates,
        c.key_updates_initiated + c.key_updates_followed
    );
    assert_eq!((c.auth_failures, s.auth_failures), (0, 0));
    // Both sides ended in the same phase.
    let phase = p.client_conn().key_update.phase;
    assert_eq!(p.server_conn().key_update.phase, phase);
}

/// RFC 9001 §6.1: no new update before a packet of the current phase is acknowledged;
/// the second request waits for that ACK and then happens by itself.
#[test]
fn second_key_update_waits_for_an_ack_of_the_current_phase() {
    let mut p = Pair::default_established();
    assert!(p.client_conn().initiate_key_update());
    assert!(p.client_conn().key_update.phase);
    assert!(
        !p.client_conn().initiate_key_update(),
        "not acknowledged yet"
    );
    assert!(p.client_conn().key_update.phase, "phase must not change");
    assert_eq!(p.client_conn().stats().key_updates_initiated, 1);
    // Data in the new phase; the server follows and acknowledges it.
    let id = p.client_conn().open(Dir::Bi).unwrap();
    p.client_conn().write(id, b"phase one").unwrap();
    p.run(Duration::from_millis(200));
    // The ACK arrived: the queued update was performed; the server sees it with the
    // next packet.
    assert_eq!(p.client_conn().stats().key_updates_initiated, 2);
    p.client_conn().write(id, b"phase two").unwrap();
    p.run(Duration::from_millis(200));
    assert_eq!(p.server_conn().stats().key_updates_followed, 2);
    assert_eq!(p.client_conn().stats().key_updates_initiated, 2);
    assert!(!p.client_conn().key_update.phase);
    assert!(!p.server_conn().key_update.phase);
    assert_open(&mut p);
}

/// Before the handshake is confirmed an update is only queued (RFC 9001 §6.1).
#[test]
fn key_update_before_confirmation_is_deferred() {
    let mut p = Pair::start(transport(), transport());
    assert!(!p.client_conn().initiate_key_update());
    assert_eq!(p.client_conn().stats().key_updates, 0);
    p.run(Duration::from_secs(1));
    // Once confirmed and acknowledged, the queued update happened.
    assert_eq!(p.client_conn().stats().key_updates_initiated, 1);
    assert_eq!(p.server_conn().stats().key_updates_followed, 1);
    assert_open(&mut p);
}

/// Packets the peer sent in the old phase and that arrive after our update still open
/// with the previous receive key (RFC 9001 §6.5), and are not authentication failures.
#[test]
fn reordered_old_phase_packets_open_after_a_local_update() {
    let mut p = Pair::default_established();
    let id = p.client_conn().open(Dir::Bi).unwrap();
    p.client_conn().write(id, b"request").unwrap();
    p.flush();
    let sid = p.server_conn().accept(Dir::Bi).unwrap();
    p.server_conn().write(sid, b"old phase").unwrap();
    let held = p.take_transmits(Side::Server);
    assert!(!held.is_empty());
    assert!(p.client_conn().initiate_key_update());
    p.client_conn().write(id, b" more").unwrap();
    p.flush();
    assert_eq!(p.server_conn().stats().key_updates_followed, 1);
    for d in &held {
        p.deliver(Side::Client, d);
    }
    assert_eq!(p.client_conn().stats().auth_failures, 0);
    assert_eq!(
        p.client_conn().read(id, 100).unwrap().as_deref(),
        Some(&b"old phase"[..])
    );
    // Three PTOs after the server's first new-phase packet the old key is gone.
    assert!(p.client_conn().key_update.prev_remote.is_some());
    p.run(Duration::from_secs(3));
    assert!(p.client_conn().key_update.prev_remote.is_none());
    assert_open(&mut p);
}

/// A small confidentiality limit makes the sender update its keys by itself, every
/// 3/4 of the limit, during a transfer; the peer follows each time.
#[test]
fn confidentiality_limit_triggers_automatic_key_updates() {
    let limited = TransportConfig {
        confidentiality_limit: Some(200),
        ..bulk_transport()
    };
    let mut p = Pair::established(bulk_transport(), limited);
    transfer_with(&mut p, 1_000_000, |_, _| {});
    assert_open(&mut p);
    let c = p.client_conn().stats();
    let s = p.server_conn().stats();
    // About 850 packets at one update per 150 packets.
    assert!(c.key_updates_initiated >= 4, "{c:?}");
    assert_eq!(s.key_updates_followed, c.key_updates_initiated);
    assert!(p.client_conn().key_update.sent_in_phase < 200);
    // The server's own key stays below its (default) limit: it never initiated.
    assert_eq!(s.key_updates_initiated, 0);
}

/// A send key that reached the confidentiality limit while no update was possible is
/// not used again: the connection closes with AEAD_LIMIT_REACHED.
#[test]
fn confidentiality_limit_without_possible_update_closes() {
    let limited = TransportConfig {
        confidentiality_limit: Some(64),
        ..transport()
    };
    let mut p = Pair::established(transport(), limited);
    // The update at 3/4 of the limit happened; its phase was never acknowledged and
    // the key has now protected the whole limit.
    assert!(p.client_conn().initiate_key_update());
    p.client_conn().key_update.sent_in_phase = 64;
    let id = p.client_conn().open(Dir::Bi).unwrap();
    p.client_conn().write(id, b"one more").unwrap();
    let _ = p.take_transmits(Side::Client);
    match p.client_conn().close_reason() {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, Code::AEAD_LIMIT_REACHED, "{e}")
        }
        other => panic!("not closed with AEAD_LIMIT_REACHED: {other:?}"),
    }
}

/// Packets that fail authentication are counted across keys; one beyond the
/// integrity limit closes the connection with AEAD_LIMIT_REACHED (RFC 9001 §6.6).
#[test]
fn integrity_limit_closes_with_aead_limit_reached() {
    let limited = TransportConfig {
        integrity_limit: Some(3),
        ..transport()
    };
    let mut p = Pair::established(limited, transport());
    let forge = |p: &mut Pair| {
        let now = p.now;
        let ping = [frame::frame_type::PING as u8; 20];
        let mut packet = craft_1rtt(p.client_conn(), now, &ping);
        let last = packet.len() - 1;
        packet[last] ^= 0x55; // break the AEAD tag
        p.deliver(Side::Server, &packet);
    };
    for _ in 0..3 {
        forge(&mut p);
    }
    assert_eq!(p.server_conn().stats().auth_failures, 3);
    assert_eq!(p.server_conn().close_reason(), None);
    // A packet that authenticates does not reset the count.
    p.inject(Side::Client, &[frame::frame_type::PING as u8; 20]);
    forge(&mut p);
    p.expect_close(Side::Server, Code::AEAD_LIMIT_REACHED, None);
}

/// RFC 9001 §6.1/§6.2: a peer that updates keys a second time before we acknowledged
/// any packet it sent in the current phase is closed with KEY_UPDATE_ERROR.
#[test]
fn consecutive_peer_updates_without_ack_are_key_update_error() {
    let mut p = Pair::default_established();
    let id = p.client_conn().open(Dir::Bi).unwrap();
    // First update: the server follows but has not answered (nothing polled).
    assert!(p.client_conn().initiate_key_update());
    p.client_conn().write(id, b"phase one").unwrap();
    for d in p.take_transmits(Side::Client) {
        p.deliver(Side::Server, &d);
    }
    assert_eq!(p.server_conn().stats().key_updates_followed, 1);
    assert!(p.server_conn().close_reason().is_none());
    // A misbehaving client updates again without waiting for the ACK.
    p.client_conn().key_update.current_acked = true;
    assert!(p.client_conn().initiate_key_update());
    p.client_conn().write(id, b"phase two").unwrap();
    for d in p.take_transmits(Side::Client) {
        p.deliver(Side::Server, &d);
    }
    p.expect_close(Side::Server, Code::KEY_UPDATE_ERROR, None);
}

/// A key phase flip on the first 1-RTT packets a client receives, before its handshake
/// is confirmed and before it acknowledged any 1-RTT packet, is KEY_UPDATE_ERROR too.
#[test]
fn key_phase_flip_before_confirmation_is_key_update_error() {
    let mut p = Pair::start(transport(), transport());
    for (from, to) in [
        (Side::Client, Side::Server),
        (Side::Server, Side::Client),
        (Side::Client, Side::Server),
    ] {
        for d in p.take_transmits(from) {
            p.deliver(to, &d);
        }
    }
    assert!(!p.client_conn().handshake_confirmed);
    assert!(!p.client_conn().key_update.peer_phase_acked);
    // A server that flips the key phase at once (its own guard forced open).
    p.server_conn().key_update.current_acked = true;
    assert!(p.server_conn().initiate_key_update());
    for d in p.take_transmits(Side::Server) {
        p.deliver(Side::Client, &d);
    }
    p.expect_close(Side::Client, Code::KEY_UPDATE_ERROR, None);
}
