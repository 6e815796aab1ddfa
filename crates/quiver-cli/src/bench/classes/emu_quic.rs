//! The QUIC side of `--emulated`: the `quiver` tokio runtime on real UDP sockets, with
//! the same classes, payloads and scheduler configuration as the simulator nodes
//! ([`super::quic`]).

use anyhow::Context;
use bytes::Bytes;
use quiver::{Connection, Endpoint, EndpointConfig, ReadError, RecvStream, SendStream, WriteError};
use quiver_proto::sched::{Deadline, SchedulerKind, DEADLINE_EXCEEDED_CODE};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::arrival::Job;
use super::emu::cancelled;
use super::mix::ClassSpec;
use super::quic::{class_of, client_config, payload, server_config};
use super::{Cc, Failure, RequestResult};

/// How long the client waits for its connection's close to reach the server.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

fn endpoint_config(seed: u64) -> EndpointConfig {
    EndpointConfig {
        rng_seed: Some(seed),
        ..EndpointConfig::default()
    }
}

/// A server endpoint on `addr` whose connections use scheduler `kind`. Must be called
/// inside a tokio runtime.
pub(super) fn server_endpoint(
    kind: SchedulerKind,
    cc: Cc,
    addr: SocketAddr,
    seed: u64,
) -> anyhow::Result<Endpoint> {
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("bind UDP {addr}"))?;
    Endpoint::new(
        endpoint_config(seed ^ 1),
        Some(server_config(kind, cc)?),
        socket,
    )
    .context("QUIC server endpoint")
}

/// Accepts connections and echoes every bidi stream on them, until the endpoint closes.
pub(super) async fn serve(ep: Endpoint, mix: Arc<[ClassSpec]>) {
    let mut conns = JoinSet::new();
    while let Some(conn) = ep.accept().await {
        let mix = mix.clone();
        conns.spawn(async move {
            let mut streams = JoinSet::new();
            while let Ok((send, recv)) = conn.accept_bi().await {
                streams.spawn(echo(mix.clone(), send, recv));
                while streams.try_join_next().is_some() {}
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Echoes one request. The first byte is the class tag: the response stream gets that
/// class, its deadline counted from when the tag arrived (classes are local to each
/// endpoint, as on the simulator). A reset request or a stopped response gives up both
/// directions with [`DEADLINE_EXCEEDED_CODE`].
async fn echo(mix: Arc<[ClassSpec]>, mut send: SendStream, mut recv: RecvStream) {
    let mut classed = false;
    loop {
        match recv.read_chunk(usize::MAX).await {
            Ok(Some(chunk)) => {
                if !classed && !chunk.is_empty() {
                    classed = true;
                    if let Some(spec) = chunk.first().and_then(|&t| mix.get(usize::from(t))) {
                        let class = class_of(spec, Deadline::At(Instant::now() + spec.deadline));
                        let _ = send.set_class(&class);
                    }
                }
                if send.write_all(&chunk).await.is_err() {
                    // Our scheduler dropped the response, or the client stopped it.
                    let _ = recv.stop(DEADLINE_EXCEEDED_CODE);
                    return;
                }
            }
            Ok(None) => {
                let _ = send.finish();
                return;
            }
            Err(_) => {
                // The client gave up (its deadline passed): give up too.
                let _ = send.reset(DEADLINE_EXCEEDED_CODE);
                return;
            }
        }
    }
}

/// Runs the workload over one QUIC connection to `server` with scheduler `kind` and
/// congestion controller `cc` on both ends: job `j`
/// opens its stream at `start + j.at` (start = when the connection attempt begins, as on
/// the simulator). Gives up on what has not finished at the last arrival + `drain`.
pub(super) async fn client(
    (kind, cc): (SchedulerKind, Cc),
    mix: &[ClassSpec],
    jobs: &[Job],
    server: SocketAddr,
    seed: u64,
    drain: Duration,
    mut cancel: watch::Receiver<bool>,
) -> anyhow::Result<Vec<RequestResult>> {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let socket = std::net::UdpSocket::bind(any).context("bind UDP")?;
    let ep = Endpoint::new(endpoint_config(seed ^ 2), None, socket).context("QUIC client")?;
    let mut results: Vec<RequestResult> = jobs.iter().map(|j| RequestResult::new(*j)).collect();
    let start = Instant::now();
    let end = tokio::time::Instant::from_std(
        start + jobs.last().map_or(Duration::ZERO, |j| j.at) + drain,
    );
    let connecting = ep
        .connect_with(client_config(kind, cc)?, server, "localhost")
        .context("QUIC connect")?;
    let conn = tokio::select! {
        c = tokio::time::timeout_at(end, connecting) => c,
        () = cancelled(&mut cancel) => return Ok(results),
    };
    let conn = match conn {
        Ok(Ok(conn)) => conn,
        Ok(Err(_)) | Err(_) => {
            let failure = match conn {
                Ok(Err(_)) => Failure::ConnectionLost,
                _ => Failure::TimedOut,
            };
            for r in &mut results {
                r.failure = Some(failure.clone());
            }
            return Ok(results);
        }
    };

    let mut tasks = JoinSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let Some(spec) = mix.get(usize::from(job.class)).cloned() else {
            continue;
        };
        let conn = conn.clone();
        let body = payload(job);
        let arrival = start + job.at;
        tasks.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(arrival)).await;
            (i, exchange(&conn, &spec, body, arrival).await)
        });
    }
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((i, outcome))) => {
                    if let Some(r) = results.get_mut(i) {
                        r.finished = true;
                        match outcome {
                            Ok(latency) => r.latency = Some(latency),
                            Err(f) => r.failure = Some(f),
                        }
                    }
                }
                Some(Err(e)) => return Err(anyhow::anyhow!("request task failed: {e}")),
            },
            () = tokio::time::sleep_until(end) => break,
            () = cancelled(&mut cancel) => break,
        }
    }
    drop(tasks);
    let lost = conn.close_reason().is_some();
    for r in results.iter_mut().filter(|r| !r.finished) {
        r.failure = Some(if lost {
            Failure::ConnectionLost
        } else {
            Failure::TimedOut
        });
    }
    conn.close(0u32.into(), b"done");
    drop(conn);
    let _ = tokio::time::timeout(CLOSE_GRACE, ep.wait_idle()).await;
    Ok(results)
}

/// One request: opens a stream with the job's class (absolute deadline = arrival +
/// class deadline), writes the payload and FIN while reading the echo, and checks it.
/// Returns the latency from `arrival` to the end of the echo.
async fn exchange(
    conn: &Connection,
    spec: &ClassSpec,
    body: Bytes,
    arrival: Instant,
) -> Result<Duration, Failure> {
    let class = class_of(spec, Deadline::At(arrival + spec.deadline));
    let (mut send, mut recv) = conn
        .open_bi_with(class)
        .await
        .map_err(|_| Failure::ConnectionLost)?;
    let outcome = {
        let write = async {
            send.write_all(&body).await.map_err(write_failure)?;
            // Fails only if our scheduler already dropped the stream.
            send.finish().map_err(|_| Failure::Dropped)
        };
        let read = read_echo(&mut recv, &body);
        tokio::pin!(write, read);
        let mut written = false;
        loop {
            tokio::select! {
                w = &mut write, if !written => match w {
                    Ok(()) => written = true,
                    Err(f) => break Err(f),
                },
                r = &mut read => break r,
            }
        }
    };
    match outcome {
        Ok(done) => Ok(done.saturating_duration_since(arrival)),
        Err(f) => {
            if f == Failure::Dropped {
                // Abandon both directions, as the simulator client does on expiry.
                let _ = recv.stop(DEADLINE_EXCEEDED_CODE);
                let _ = send.reset(DEADLINE_EXCEEDED_CODE);
            }
            Err(f)
        }
    }
}

/// Reads the echo to its end, comparing it with `expect`; returns when the end arrived.
async fn read_echo(recv: &mut RecvStream, expect: &[u8]) -> Result<Instant, Failure> {
    let mut received = 0usize;
    let mut mismatch = false;
    loop {
        match recv.read_chunk(usize::MAX).await {
            Ok(Some(chunk)) => {
                let end = received.saturating_add(chunk.len());
                if expect.get(received..end) != Some(&chunk[..]) {
                    mismatch = true;
                }
                received = end;
            }
            Ok(None) if mismatch || received != expect.len() => return Err(Failure::Corrupt),
            Ok(None) => return Ok(Instant::now()),
            Err(ReadError::ConnectionLost(_)) => return Err(Failure::ConnectionLost),
            // Reset by the server (its scheduler dropped the response, or it saw ours).
            Err(_) => return Err(Failure::Dropped),
        }
    }
}

fn write_failure(e: WriteError) -> Failure {
    match e {
        WriteError::ConnectionLost(_) => Failure::ConnectionLost,
        // Stopped by the server, or reset by our own scheduler (deadline passed).
        _ => Failure::Dropped,
    }
}
