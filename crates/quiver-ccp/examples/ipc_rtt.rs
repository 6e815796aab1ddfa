//! IPC round trip over the Unix datagram transport: a datapath sends a MEASURE, an agent
//! thread decodes it and answers with an UPDATE_FIELDS setting Cwnd, the datapath polls
//! until it has the answer. Prints min / p50 / p95 / p99 / max in microseconds.
//!
//! `cargo run --release -p quiver-ccp --example ipc_rtt [ROUNDS]`

use quiver_ccp::ipc::{
    AgentTransport, DatapathTransport, UnixAgentSocket, UnixDatapathSocket, MAX_DATAGRAM,
};
use quiver_ccp::wire::{Body, Measure, Message, Update, UpdateFields};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let path = std::env::temp_dir().join(format!("quiver-ccp-rtt-{}", std::process::id()));
    let mut agent = UnixAgentSocket::bind(&path)?;
    let mut dp = UnixDatapathSocket::connect(&path)?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let Some((n, peer)) = agent.recv(&mut buf, Some(Duration::from_secs(2)))? else {
                return Ok(());
            };
            let Ok(m) = Message::decode(&buf[..n]) else {
                continue;
            };
            let Body::Measure(r) = m.body else {
                return Ok(());
            };
            let cwnd = r.fields.first().copied().unwrap_or(0);
            let reply = Message::new(
                m.sid,
                Body::UpdateFields(UpdateFields {
                    updates: vec![Update::cwnd(cwnd)],
                }),
            );
            agent.send(&peer, &reply.to_bytes().expect("encodable"))?;
        }
    });
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let msg = Message::new(
            1,
            Body::Measure(Measure {
                program_uid: 1,
                fields: vec![i as u64, 2, 3, 4, 5, 6],
            }),
        );
        let bytes = msg.to_bytes().expect("encodable");
        let t = Instant::now();
        dp.send(&bytes)?;
        loop {
            if let Some(n) = dp.try_recv(&mut buf)? {
                let _ = Message::decode(&buf[..n]);
                break;
            }
            std::hint::spin_loop();
        }
        samples.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    dp.send(
        &Message::new(0, Body::Ready(Default::default()))
            .to_bytes()
            .expect("encodable"),
    )?;
    let _ = server.join();
    samples.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "ipc round trip over {rounds} rounds (µs): min {:.1} p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}",
        p(0.0), p(0.5), p(0.95), p(0.99), p(1.0)
    );
    Ok(())
}
