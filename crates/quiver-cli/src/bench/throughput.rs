//! `quiver bench throughput`: orchestration, statistics and output.

use super::serve::ServerProcess;
use super::stacks::{self, download, Stack, Transfer, Tuning};
use super::stats::Spread;
use super::{progress_bar, ByteSize, PairSet, ThroughputArgs};
use anyhow::{bail, Context};
use std::io::Write;
use std::time::Duration;

/// A client ← server combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    client: Stack,
    server: Stack,
}

impl Pair {
    fn label(self) -> String {
        format!("{} <- {}", self.client.name(), self.server.name())
    }
}

fn pairs(set: PairSet) -> Vec<Pair> {
    use Stack::{Quinn, Quiver};
    let mut v = vec![
        Pair {
            client: Quiver,
            server: Quiver,
        },
        Pair {
            client: Quinn,
            server: Quinn,
        },
    ];
    if set == PairSet::All {
        v.push(Pair {
            client: Quiver,
            server: Quinn,
        });
        v.push(Pair {
            client: Quinn,
            server: Quiver,
        });
    }
    v
}

/// Split `total` bytes over `k` streams: equal shares, the remainder on the first ones.
fn split(total: u64, k: u32) -> Vec<u64> {
    let k64 = u64::from(k.max(1));
    (0..k64)
        .map(|i| total / k64 + u64::from(i < total % k64))
        .collect()
}

fn mbit_per_s(bytes: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64().max(1e-9);
    bytes as f64 * 8.0 / secs / 1e6
}

/// One measurement.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    run: u32,
    client: Stack,
    server: Stack,
    bytes: u64,
    streams: u32,
    duration_s: f64,
    handshake_ms: f64,
    mbit_per_s: f64,
}

/// Statistics of one pair over all runs.
#[derive(Debug, Clone, serde::Serialize)]
struct Summary {
    client: Stack,
    server: Stack,
    min_mbit_per_s: f64,
    median_mbit_per_s: f64,
    max_mbit_per_s: f64,
    min_duration_s: f64,
    median_duration_s: f64,
    max_duration_s: f64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    cores: usize,
    bytes: u64,
    streams: u32,
    runs: u32,
    window: u64,
    mtu: u16,
    server_isolation: &'static str,
    congestion_control: &'static str,
    cipher_suite: &'static str,
    pairs: Vec<Summary>,
    /// Median throughput of quiver ← quiver over that of quinn ← quinn.
    ratio_quiver_over_quinn: f64,
    samples: Vec<Sample>,
}

fn summarize(pair: Pair, samples: &[Sample]) -> Summary {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.client == pair.client && s.server == pair.server)
        .collect();
    let rates = Spread::of(&mine.iter().map(|s| s.mbit_per_s).collect::<Vec<_>>());
    let durations = Spread::of(&mine.iter().map(|s| s.duration_s).collect::<Vec<_>>());
    Summary {
        client: pair.client,
        server: pair.server,
        min_mbit_per_s: rates.min,
        median_mbit_per_s: rates.median,
        max_mbit_per_s: rates.max,
        min_duration_s: durations.min,
        median_duration_s: durations.median,
        max_duration_s: durations.max,
    }
}

/// Run the benchmark; exit code 0 on success.
pub fn run(args: ThroughputArgs) -> anyhow::Result<i32> {
    let tuning = Tuning {
        window: args.window.0,
        mtu: args.mtu,
        idle_timeout: stacks::DEFAULT_IDLE_TIMEOUT,
    };
    let pairs = pairs(args.pairs);
    let sizes = split(args.size.0, args.streams);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let quiver_server = ServerProcess::spawn(Stack::Quiver, tuning)?;
    let quinn_server = ServerProcess::spawn(Stack::Quinn, tuning)?;
    let server_of = |s: Stack| match s {
        Stack::Quiver => &quiver_server,
        Stack::Quinn => &quinn_server,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let bar = progress_bar(u64::from(args.runs) * pairs.len() as u64);
    let timeout = Duration::from_secs(args.timeout);
    let mut samples = Vec::new();
    for run in 1..=args.runs {
        // Rotate the order each run so that no pair always goes first (warm caches,
        // frequency scaling, neighbours' load).
        let offset = (run as usize - 1) % pairs.len();
        for pair in pairs.iter().cycle().skip(offset).take(pairs.len()) {
            bar.set_message(format!("run {run}: {}", pair.label()));
            let server = server_of(pair.server);
            let result = runtime.block_on(async {
                tokio::time::timeout(
                    timeout,
                    download(pair.client, tuning, &server.cert, server.addr, &sizes),
                )
                .await
            });
            let t: Transfer = match result {
                Ok(r) => r.with_context(|| format!("run {run}, {}", pair.label()))?,
                Err(_) => bail!(
                    "run {run}, {}: no completion within {} s",
                    pair.label(),
                    args.timeout
                ),
            };
            if t.bytes != args.size.0 {
                bail!(
                    "run {run}, {}: received {} bytes, expected {}",
                    pair.label(),
                    t.bytes,
                    args.size.0
                );
            }
            samples.push(Sample {
                run,
                client: pair.client,
                server: pair.server,
                bytes: t.bytes,
                streams: args.streams,
                duration_s: t.duration.as_secs_f64(),
                handshake_ms: t.handshake.as_secs_f64() * 1e3,
                mbit_per_s: mbit_per_s(t.bytes, t.duration),
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(runtime);
    drop(quiver_server);
    drop(quinn_server);

    let summaries: Vec<Summary> = pairs.iter().map(|&p| summarize(p, &samples)).collect();
    let ratio = summaries[0].median_mbit_per_s / summaries[1].median_mbit_per_s;
    let report = Report {
        cores,
        bytes: args.size.0,
        streams: args.streams,
        runs: args.runs,
        window: args.window.0,
        mtu: args.mtu,
        server_isolation: "child process per stack",
        congestion_control: "NewReno",
        cipher_suite: "TLS13_AES_128_GCM_SHA256",
        pairs: summaries,
        ratio_quiver_over_quinn: ratio,
        samples,
    };
    if let Some(path) = &args.csv {
        write_csv(path, &report.samples).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &report)?;
    }
    Ok(0)
}

fn write_csv(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "run,client,server,bytes,streams,duration_s,handshake_ms,mbit_per_s"
    )?;
    for s in samples {
        writeln!(
            f,
            "{},{},{},{},{},{:.6},{:.3},{:.2}",
            s.run,
            s.client.name(),
            s.server.name(),
            s.bytes,
            s.streams,
            s.duration_s,
            s.handshake_ms,
            s.mbit_per_s
        )?;
    }
    f.flush()
}

fn print_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "quiver bench throughput: {} per run over {} stream{}, {} run{}, 127.0.0.1, {} cores",
        ByteSize(r.bytes),
        r.streams,
        if r.streams == 1 { "" } else { "s" },
        r.runs,
        if r.runs == 1 { "" } else { "s" },
        r.cores
    )?;
    writeln!(
        out,
        "both stacks: {} windows, {}-byte UDP payloads (no PMTUD), {}, {}, no key log; \
         servers in a {}",
        ByteSize(r.window),
        r.mtu,
        r.cipher_suite,
        r.congestion_control,
        r.server_isolation
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<17} {:>10} {:>10} {:>10}   {:>9} {:>9} {:>9}",
        "client <- server", "min Mb/s", "median", "max", "min s", "median s", "max s"
    )?;
    for s in &r.pairs {
        writeln!(
            out,
            "{:<17} {:>10.1} {:>10.1} {:>10.1}   {:>9.3} {:>9.3} {:>9.3}",
            format!("{} <- {}", s.client.name(), s.server.name()),
            s.min_mbit_per_s,
            s.median_mbit_per_s,
            s.max_mbit_per_s,
            s.min_duration_s,
            s.median_duration_s,
            s.max_duration_s
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "ratio quiver/quinn (median throughput, same-stack pairs): {:.2}x",
        r.ratio_quiver_over_quinn
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_total() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(100, 1), vec![100]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(1 << 20, 7).iter().sum::<u64>(), 1 << 20);
    }

    #[test]
    fn throughput_units() {
        assert_eq!(mbit_per_s(1_000_000, Duration::from_secs(1)), 8.0);
    }
}
