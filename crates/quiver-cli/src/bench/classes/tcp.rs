//! The TLS/TCP baselines (smoltcp + rustls on the simulator) on the same workload.

use anyhow::Context;
use quiver_netem::sim::{LinkConfig, Sim};
use quiver_tcp_baseline::sim::{TcpClientNode, TcpEchoServerNode};
use quiver_tcp_baseline::tls::TlsPair;
use quiver_tcp_baseline::{Mode, Request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::arrival::Job;
use super::{Failure, RequestResult};

const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 2], 40000);
const SERVER: ([u8; 4], u16) = ([10, 0, 0, 1], 443);

/// Runs `jobs` over TLS/TCP in `mode` on `link` (both directions).
pub fn run(
    mode: Mode,
    jobs: &[Job],
    link: &LinkConfig,
    seed: u64,
    budget: Duration,
) -> anyhow::Result<Vec<RequestResult>> {
    let client_addr = SocketAddr::from(CLIENT);
    let server_addr = SocketAddr::from(SERVER);
    let tls = TlsPair::self_signed(&["echo.test"]).context("TLS certificate")?;
    let start = Instant::now();
    let mut sim = Sim::new(seed, start);
    let requests = jobs
        .iter()
        .map(|j| Request::new(j.id, j.size, j.at))
        .collect();
    let client = TcpClientNode::new(
        client_addr,
        server_addr,
        "echo.test",
        tls.client.clone(),
        requests,
        mode,
    )?
    .start_at(start);
    let server = TcpEchoServerNode::new(server_addr, tls.server.clone())?;
    let c = sim.add_node(client, [client_addr])?;
    let s = sim.add_node(server, [server_addr])?;
    sim.set_link_pair(c, s, link.clone())?;
    let _ = sim.run_while(
        |sim| sim.node::<TcpClientNode>(c).is_some_and(|n| !n.is_done()),
        budget,
    );
    let outcomes = sim
        .node::<TcpClientNode>(c)
        .context("client node")?
        .finish();
    Ok(results(jobs, outcomes, start))
}

/// Per-request results of a baseline run started at `start` (job `j` arrives at
/// `start + j.at`); `outcomes` are in job order.
pub(super) fn results(
    jobs: &[Job],
    outcomes: Vec<quiver_tcp_baseline::Outcome>,
    start: Instant,
) -> Vec<RequestResult> {
    jobs.iter()
        .zip(outcomes)
        .map(|(job, o)| {
            let mut r = RequestResult::new(*job);
            r.finished = true;
            match (o.completed, o.failure) {
                (Some(done), _) => {
                    r.latency = Some(done.saturating_duration_since(start + job.at));
                }
                (None, Some(quiver_tcp_baseline::Failure::TimedOut)) | (None, None) => {
                    r.failure = Some(Failure::TimedOut);
                }
                (None, Some(f)) => r.failure = Some(Failure::Tcp(f.to_string())),
            }
            r
        })
        .collect()
}
