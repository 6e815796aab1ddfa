//! `quiver bench throughput`: orchestration, statistics and output.
//!
//! A run measures one or more [`Scenario`]s (streams, MTU, path MTU discovery); for each,
//! every client ← server pair once per run. Each sample records the transfer's duration
//! and the CPU time the server child process and this process (the client) used over it;
//! after the transfers, one core's AEAD packet rate at each scenario's MTU gives the
//! ceiling the throughputs are set against.

use super::aead::{self, Ceiling, Cipher};
use super::serve::ServerProcess;
use super::stacks::{self, download, Stack, Transfer, Tuning};
use super::stats::{self, Spread};
use super::{progress_bar, ByteSize, PairSet, ThroughputArgs};
use anyhow::{bail, Context};
use std::collections::hash_map::{Entry, HashMap};
use std::io::Write;
use std::time::Duration;

/// UDP payload size of the default scenarios (and of a single one without `--mtu`): a
/// 1500-byte Ethernet MTU minus IPv6 and UDP headers.
const DEFAULT_MTU: u16 = 1452;

/// Bytes per GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// Runs the AEAD ceiling's measuring time is split into (median over them).
const CEILING_RUNS: u32 = 5;

/// One setting measured for every pair: stream count and MTU handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
struct Scenario {
    /// Concurrent streams the size is split over.
    streams: u32,
    /// Fixed UDP payload size, or the upper bound of path MTU discovery.
    mtu: u16,
    /// Path MTU discovery on (start at 1200, discover up to `mtu`).
    pmtud: bool,
}

/// What `quiver bench throughput` measures without `--streams`, `--mtu` and `--pmtud`.
const DEFAULT_SCENARIOS: [Scenario; 3] = [
    Scenario {
        streams: 1,
        mtu: DEFAULT_MTU,
        pmtud: false,
    },
    Scenario {
        streams: 1,
        mtu: DEFAULT_MTU,
        pmtud: true,
    },
    Scenario {
        streams: 100,
        mtu: DEFAULT_MTU,
        pmtud: false,
    },
];

impl Scenario {
    /// Short identifier for CSV and JSON rows, e.g. `1s-1452`, `1s-pmtud1452`.
    fn id(self) -> String {
        if self.pmtud {
            format!("{}s-pmtud{}", self.streams, self.mtu)
        } else {
            format!("{}s-{}", self.streams, self.mtu)
        }
    }

    /// Heading of the scenario's block in the table.
    fn title(self) -> String {
        let streams = format!(
            "{} stream{}",
            self.streams,
            if self.streams == 1 { "" } else { "s" }
        );
        if self.pmtud {
            format!(
                "{streams}, PMTUD on: UDP payloads start at 1200 bytes, discovered up to {}",
                self.mtu
            )
        } else {
            format!("{streams}, {}-byte UDP payloads (no PMTUD)", self.mtu)
        }
    }

    fn tuning(self, window: u64) -> Tuning {
        Tuning {
            window,
            mtu: self.mtu,
            pmtud: self.pmtud,
            idle_timeout: stacks::DEFAULT_IDLE_TIMEOUT,
            // One connection: a single shard (shards spread connections, not packets).
            shards: 1,
            client_shards: 1,
        }
    }
}

/// The scenarios to measure: the one the flags describe if any of them is given, else
/// [`DEFAULT_SCENARIOS`].
fn scenarios(streams: Option<u32>, mtu: Option<u16>, pmtud: bool) -> Vec<Scenario> {
    if streams.is_none() && mtu.is_none() && !pmtud {
        return DEFAULT_SCENARIOS.to_vec();
    }
    vec![Scenario {
        streams: streams.unwrap_or(1),
        mtu: mtu.unwrap_or(DEFAULT_MTU),
        pmtud,
    }]
}

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

/// CPU seconds per GiB of `bytes` (`None` for no bytes).
fn cpu_s_per_gib(cpu: Duration, bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| cpu.as_secs_f64() / (bytes as f64 / GIB))
}

/// Median of the values that are present; `None` when none is.
fn median_of_present(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(stats::median(&v))
}

/// One measurement.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    run: u32,
    /// [`Scenario::id`].
    scenario: String,
    client: Stack,
    server: Stack,
    bytes: u64,
    streams: u32,
    mtu: u16,
    pmtud: bool,
    duration_s: f64,
    handshake_ms: f64,
    mbit_per_s: f64,
    /// CPU seconds of the server process over the transfer.
    server_cpu_s: Option<f64>,
    /// CPU seconds of this process (the client) over the transfer.
    client_cpu_s: Option<f64>,
    server_cpu_s_per_gib: Option<f64>,
    client_cpu_s_per_gib: Option<f64>,
    /// Both CPU times from per-thread nanosecond counters (else 10 ms ticks).
    cpu_precise: bool,
    /// Mean UDP payload the client received, in bytes (what PMTUD reached).
    mean_rx_datagram_bytes: Option<f64>,
}

/// Statistics of one pair in one scenario over all runs.
#[derive(Debug, Clone, serde::Serialize)]
struct Summary {
    /// [`Scenario::id`].
    scenario: String,
    client: Stack,
    server: Stack,
    min_mbit_per_s: f64,
    median_mbit_per_s: f64,
    max_mbit_per_s: f64,
    min_duration_s: f64,
    median_duration_s: f64,
    max_duration_s: f64,
    median_server_cpu_s_per_gib: Option<f64>,
    median_client_cpu_s_per_gib: Option<f64>,
    /// Median throughput over the scenario's AEAD ceiling.
    fraction_of_ceiling: Option<f64>,
}

/// One scenario's setting and headline numbers.
#[derive(Debug, Clone, serde::Serialize)]
struct ScenarioReport {
    id: String,
    title: String,
    streams: u32,
    mtu: u16,
    pmtud: bool,
    /// One core's AES-128-GCM packet rate at `mtu` (whole packets), if measured.
    ceiling_mbit_per_s: Option<f64>,
    /// Median throughput of quiver ← quiver over that of quinn ← quinn.
    ratio_quiver_over_quinn: f64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    cores: usize,
    bytes: u64,
    runs: u32,
    window: u64,
    server_isolation: &'static str,
    congestion_control: &'static str,
    cipher_suite: &'static str,
    cpu_time: &'static str,
    /// Whether every sample's CPU times came from per-thread nanosecond counters.
    cpu_precise: bool,
    ceilings: Vec<Ceiling>,
    scenarios: Vec<ScenarioReport>,
    pairs: Vec<Summary>,
    samples: Vec<Sample>,
}

fn summarize(scenario: &str, pair: Pair, samples: &[Sample], ceiling: Option<f64>) -> Summary {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.scenario == scenario && s.client == pair.client && s.server == pair.server)
        .collect();
    let rates = Spread::of(&mine.iter().map(|s| s.mbit_per_s).collect::<Vec<_>>());
    let durations = Spread::of(&mine.iter().map(|s| s.duration_s).collect::<Vec<_>>());
    Summary {
        scenario: scenario.to_owned(),
        client: pair.client,
        server: pair.server,
        min_mbit_per_s: rates.min,
        median_mbit_per_s: rates.median,
        max_mbit_per_s: rates.max,
        min_duration_s: durations.min,
        median_duration_s: durations.median,
        max_duration_s: durations.max,
        median_server_cpu_s_per_gib: median_of_present(mine.iter().map(|s| s.server_cpu_s_per_gib)),
        median_client_cpu_s_per_gib: median_of_present(mine.iter().map(|s| s.client_cpu_s_per_gib)),
        fraction_of_ceiling: ceiling.filter(|c| *c > 0.0).map(|c| rates.median / c),
    }
}

/// Median throughput of quiver ← quiver over quinn ← quinn among `summaries` (NaN when
/// either is missing).
fn same_stack_ratio(summaries: &[&Summary]) -> f64 {
    let median_of = |stack: Stack| {
        summaries
            .iter()
            .find(|s| s.client == stack && s.server == stack)
            .map_or(f64::NAN, |s| s.median_mbit_per_s)
    };
    median_of(Stack::Quiver) / median_of(Stack::Quinn)
}

/// The server for `stack` with `tuning`, started on first use.
fn server_for(
    servers: &mut HashMap<(Stack, Tuning), ServerProcess>,
    stack: Stack,
    tuning: Tuning,
) -> anyhow::Result<&ServerProcess> {
    Ok(match servers.entry((stack, tuning)) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(ServerProcess::spawn(stack, tuning)?),
    })
}

/// Run the benchmark; exit code 0 on success.
pub fn run(args: ThroughputArgs) -> anyhow::Result<i32> {
    let scenarios = scenarios(args.streams, args.mtu, args.pmtud);
    let pairs = pairs(args.pairs);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut servers: HashMap<(Stack, Tuning), ServerProcess> = HashMap::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let bar = progress_bar(u64::from(args.runs) * (scenarios.len() * pairs.len()) as u64);
    let timeout = Duration::from_secs(args.timeout);
    let mut samples = Vec::new();
    for run in 1..=args.runs {
        for &scenario in &scenarios {
            let tuning = scenario.tuning(args.window.0);
            let sizes = split(args.size.0, scenario.streams);
            let id = scenario.id();
            // Rotate the order each run so that no pair always goes first (warm caches,
            // frequency scaling, neighbours' load).
            let offset = (run as usize - 1) % pairs.len();
            for pair in pairs.iter().cycle().skip(offset).take(pairs.len()) {
                let what = format!("run {run}, {id}, {}", pair.label());
                bar.set_message(what.clone());
                let server = server_for(&mut servers, pair.server, tuning)?;
                let result = runtime.block_on(async {
                    tokio::time::timeout(
                        timeout,
                        download(
                            pair.client,
                            tuning,
                            &server.cert,
                            server.addr,
                            server.pid(),
                            &sizes,
                        ),
                    )
                    .await
                });
                let t: Transfer = match result {
                    Ok(r) => r.with_context(|| what.clone())?,
                    Err(_) => bail!("{what}: no completion within {} s", args.timeout),
                };
                if t.bytes != args.size.0 {
                    bail!(
                        "{what}: received {} bytes, expected {}",
                        t.bytes,
                        args.size.0
                    );
                }
                let secs = |c: Option<super::procfs::CpuUse>| c.map(|c| c.time.as_secs_f64());
                let per_gib = |c: Option<super::procfs::CpuUse>| {
                    c.and_then(|c| cpu_s_per_gib(c.time, t.bytes))
                };
                samples.push(Sample {
                    run,
                    scenario: id.clone(),
                    client: pair.client,
                    server: pair.server,
                    bytes: t.bytes,
                    streams: scenario.streams,
                    mtu: scenario.mtu,
                    pmtud: scenario.pmtud,
                    duration_s: t.duration.as_secs_f64(),
                    handshake_ms: t.handshake.as_secs_f64() * 1e3,
                    mbit_per_s: mbit_per_s(t.bytes, t.duration),
                    server_cpu_s: secs(t.server_cpu),
                    client_cpu_s: secs(t.client_cpu),
                    server_cpu_s_per_gib: per_gib(t.server_cpu),
                    client_cpu_s_per_gib: per_gib(t.client_cpu),
                    cpu_precise: [t.server_cpu, t.client_cpu]
                        .iter()
                        .all(|c| c.is_some_and(|c| c.precise)),
                    mean_rx_datagram_bytes: t.mean_rx_datagram,
                });
                bar.inc(1);
            }
        }
    }
    drop(runtime);
    drop(servers);

    // The ceiling: one core protecting packets of each scenario's MTU, measured with
    // nothing else of this benchmark running.
    let mut ceilings: Vec<Ceiling> = Vec::new();
    if !args.ceiling_time.is_zero() {
        for s in &scenarios {
            if ceilings.iter().all(|c| c.size != s.mtu) {
                bar.set_message(format!("AEAD ceiling at {} bytes", s.mtu));
                ceilings.push(aead::packet_ceiling(
                    Cipher::Aes128Gcm,
                    s.mtu,
                    args.ceiling_time,
                    CEILING_RUNS,
                )?);
            }
        }
    }
    bar.finish_and_clear();
    let ceiling_at = |mtu: u16| {
        ceilings
            .iter()
            .find(|c| c.size == mtu)
            .map(|c| c.mbit_per_s)
    };

    let mut summaries = Vec::new();
    let mut scenario_reports = Vec::new();
    for s in &scenarios {
        let id = s.id();
        let ceiling = ceiling_at(s.mtu);
        let mine: Vec<Summary> = pairs
            .iter()
            .map(|&p| summarize(&id, p, &samples, ceiling))
            .collect();
        scenario_reports.push(ScenarioReport {
            ratio_quiver_over_quinn: same_stack_ratio(&mine.iter().collect::<Vec<_>>()),
            id,
            title: s.title(),
            streams: s.streams,
            mtu: s.mtu,
            pmtud: s.pmtud,
            ceiling_mbit_per_s: ceiling,
        });
        summaries.extend(mine);
    }
    let report = Report {
        cores,
        bytes: args.size.0,
        runs: args.runs,
        window: args.window.0,
        server_isolation: "child process per stack and setting",
        congestion_control: "NewReno",
        cipher_suite: "TLS13_AES_128_GCM_SHA256",
        cpu_time: "user + system, all threads, from opening the streams to the last FIN; \
                   server = its child process, client = this process",
        cpu_precise: samples.iter().all(|s| s.cpu_precise),
        ceilings,
        scenarios: scenario_reports,
        pairs: summaries,
        samples,
    };
    super::emit(
        &report,
        args.csv.as_deref(),
        args.json,
        |path| write_csv(path, &report.samples),
        print_table,
    )
}

/// `value` with `decimals` decimals, or empty when absent.
fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(String::new, |v| format!("{v:.decimals$}"))
}

fn write_csv(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "run,client,server,bytes,streams,duration_s,handshake_ms,mbit_per_s,\
         scenario,mtu,pmtud,server_cpu_s,client_cpu_s,server_cpu_s_per_gib,\
         client_cpu_s_per_gib,cpu_precise,mean_rx_datagram_bytes"
    )?;
    for s in samples {
        writeln!(
            f,
            "{},{},{},{},{},{:.6},{:.3},{:.2},{},{},{},{},{},{},{},{},{}",
            s.run,
            s.client.name(),
            s.server.name(),
            s.bytes,
            s.streams,
            s.duration_s,
            s.handshake_ms,
            s.mbit_per_s,
            s.scenario,
            s.mtu,
            s.pmtud,
            opt(s.server_cpu_s, 6),
            opt(s.client_cpu_s, 6),
            opt(s.server_cpu_s_per_gib, 4),
            opt(s.client_cpu_s_per_gib, 4),
            s.cpu_precise,
            opt(s.mean_rx_datagram_bytes, 1)
        )?;
    }
    f.flush()
}

/// `value` right-aligned in `width` columns with `decimals` decimals, `-` when absent.
fn cell(value: Option<f64>, width: usize, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:>width$.decimals$}"),
        _ => format!("{:>width$}", "-"),
    }
}

fn print_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "quiver bench throughput: {} per run, {} run{}, 127.0.0.1, {} cores",
        ByteSize(r.bytes),
        r.runs,
        if r.runs == 1 { "" } else { "s" },
        r.cores
    )?;
    writeln!(
        out,
        "both stacks: {} windows, {}, {}, no key log; servers in a {}",
        ByteSize(r.window),
        r.cipher_suite,
        r.congestion_control,
        r.server_isolation
    )?;
    writeln!(
        out,
        "srv/cli s/GiB: median CPU seconds (user + system, all threads{}) per GiB \
         downloaded, during the transfer, of the server process / this client process",
        if r.cpu_precise {
            ""
        } else {
            "; some samples at 10 ms resolution"
        }
    )?;
    if !r.ceilings.is_empty() {
        let list: Vec<String> = r
            .ceilings
            .iter()
            .map(|c| format!("{:.0} Mb/s at {} bytes", c.mbit_per_s, c.size))
            .collect();
        writeln!(
            out,
            "of ceiling: median throughput / one core protecting {} packets \
             (seal + header protection, whole packets): {}",
            Cipher::Aes128Gcm.name(),
            list.join(", ")
        )?;
    }
    for s in &r.scenarios {
        writeln!(out)?;
        writeln!(out, "{}", s.title)?;
        writeln!(
            out,
            "{:<17} {:>10} {:>10} {:>10}   {:>9} {:>9} {:>9}   {:>9} {:>9}  {:>10}",
            "client <- server",
            "min Mb/s",
            "median",
            "max",
            "min s",
            "median s",
            "max s",
            "srv s/GiB",
            "cli s/GiB",
            "of ceiling"
        )?;
        for p in r.pairs.iter().filter(|p| p.scenario == s.id) {
            writeln!(
                out,
                "{:<17} {:>10.1} {:>10.1} {:>10.1}   {:>9.3} {:>9.3} {:>9.3}   {} {}  {}",
                format!("{} <- {}", p.client.name(), p.server.name()),
                p.min_mbit_per_s,
                p.median_mbit_per_s,
                p.max_mbit_per_s,
                p.min_duration_s,
                p.median_duration_s,
                p.max_duration_s,
                cell(p.median_server_cpu_s_per_gib, 9, 2),
                cell(p.median_client_cpu_s_per_gib, 9, 2),
                match p.fraction_of_ceiling {
                    Some(f) if f.is_finite() => format!("{:>9.1}%", f * 100.0),
                    _ => format!("{:>10}", "-"),
                }
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "ratio quiver/quinn (median throughput, same-stack pairs): {:.2}x",
            s.ratio_quiver_over_quinn
        )?;
    }
    Ok(())
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

    #[test]
    fn cpu_per_gib() {
        assert_eq!(cpu_s_per_gib(Duration::from_secs(2), 1 << 30), Some(2.0));
        assert_eq!(
            cpu_s_per_gib(Duration::from_millis(250), 1 << 28),
            Some(1.0)
        );
        assert_eq!(cpu_s_per_gib(Duration::from_secs(1), 0), None);
    }

    #[test]
    fn medians_skip_missing() {
        assert_eq!(median_of_present([Some(3.0), None, Some(1.0)]), Some(2.0));
        assert_eq!(median_of_present([None, Some(5.0)]), Some(5.0));
        assert_eq!(median_of_present([None::<f64>, None]), None);
    }

    #[test]
    fn flags_select_scenarios() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ThroughputArgs,
        }
        let of = |argv: &[&str]| {
            let a = Cli::try_parse_from(argv).unwrap().args;
            scenarios(a.streams, a.mtu, a.pmtud)
        };
        assert_eq!(of(&["x"]), DEFAULT_SCENARIOS.to_vec());
        assert_eq!(of(&["x", "--runs", "2", "--size", "1MiB"]).len(), 3);
        assert_eq!(of(&["x", "--streams", "1"]).len(), 1);
        assert_eq!(
            of(&["x", "--pmtud", "--mtu", "1400"]),
            vec![Scenario {
                streams: 1,
                mtu: 1400,
                pmtud: true
            }]
        );
        assert!(Cli::try_parse_from(["x", "--mtu", "1000"]).is_err());
        assert!(Cli::try_parse_from(["x", "--streams", "0"]).is_err());
        let a = Cli::try_parse_from(["x", "--ceiling-time", "0"])
            .unwrap()
            .args;
        assert!(a.ceiling_time.is_zero());
        let a = Cli::try_parse_from(["x"]).unwrap().args;
        assert_eq!(a.ceiling_time, Duration::from_millis(500));
    }

    #[test]
    fn scenario_selection() {
        assert_eq!(scenarios(None, None, false), DEFAULT_SCENARIOS.to_vec());
        let one = |streams, mtu, pmtud| {
            vec![Scenario {
                streams,
                mtu,
                pmtud,
            }]
        };
        assert_eq!(scenarios(Some(4), None, false), one(4, 1452, false));
        assert_eq!(scenarios(None, Some(1300), false), one(1, 1300, false));
        assert_eq!(scenarios(None, None, true), one(1, 1452, true));
        assert_eq!(scenarios(Some(100), Some(1400), true), one(100, 1400, true));
    }

    #[test]
    fn scenario_names_and_tunings() {
        let [fixed, pmtud, many] = DEFAULT_SCENARIOS;
        assert_eq!(fixed.id(), "1s-1452");
        assert_eq!(pmtud.id(), "1s-pmtud1452");
        assert_eq!(many.id(), "100s-1452");
        assert_eq!(fixed.title(), "1 stream, 1452-byte UDP payloads (no PMTUD)");
        assert!(pmtud
            .title()
            .contains("start at 1200 bytes, discovered up to 1452"));
        assert!(many.title().starts_with("100 streams,"));
        let t = pmtud.tuning(1 << 20);
        assert_eq!((t.window, t.mtu, t.pmtud), (1 << 20, 1452, true));
        // Fixed and discovering servers differ: they are separate child processes.
        assert_ne!(fixed.tuning(1 << 20), t);
        assert_eq!(fixed.tuning(1 << 20), many.tuning(1 << 20));
    }

    fn sample(scenario: &str, client: Stack, mbit: f64, srv: Option<f64>) -> Sample {
        Sample {
            run: 1,
            scenario: scenario.to_owned(),
            client,
            server: client,
            bytes: 1 << 30,
            streams: 1,
            mtu: 1452,
            pmtud: false,
            duration_s: 8.0 * GIB / mbit / 1e6,
            handshake_ms: 1.0,
            mbit_per_s: mbit,
            server_cpu_s: srv,
            client_cpu_s: None,
            server_cpu_s_per_gib: srv,
            client_cpu_s_per_gib: None,
            cpu_precise: srv.is_some(),
            mean_rx_datagram_bytes: Some(1400.0),
        }
    }

    #[test]
    fn summaries_per_scenario_and_ratio() {
        let quiver = Pair {
            client: Stack::Quiver,
            server: Stack::Quiver,
        };
        let quinn = Pair {
            client: Stack::Quinn,
            server: Stack::Quinn,
        };
        let samples = vec![
            sample("a", Stack::Quiver, 1000.0, Some(1.0)),
            sample("a", Stack::Quiver, 3000.0, Some(3.0)),
            sample("a", Stack::Quiver, 2000.0, None),
            sample("a", Stack::Quinn, 1000.0, Some(4.0)),
            sample("b", Stack::Quiver, 9000.0, Some(9.0)),
        ];
        let s = summarize("a", quiver, &samples, Some(4000.0));
        assert_eq!(
            (s.min_mbit_per_s, s.median_mbit_per_s, s.max_mbit_per_s),
            (1000.0, 2000.0, 3000.0)
        );
        assert_eq!(s.median_server_cpu_s_per_gib, Some(2.0));
        assert_eq!(s.median_client_cpu_s_per_gib, None);
        assert_eq!(s.fraction_of_ceiling, Some(0.5));
        let q = summarize("a", quinn, &samples, None);
        assert_eq!(q.fraction_of_ceiling, None);
        assert_eq!(same_stack_ratio(&[&s, &q]), 2.0);
        assert!(same_stack_ratio(&[&s]).is_nan());
    }

    #[test]
    fn table_has_a_block_per_scenario() {
        let samples = vec![
            sample("1s-1452", Stack::Quiver, 2000.0, Some(1.5)),
            sample("1s-1452", Stack::Quinn, 1000.0, Some(2.5)),
        ];
        let pairs = pairs(PairSet::Same);
        let summaries: Vec<Summary> = pairs
            .iter()
            .map(|&p| summarize("1s-1452", p, &samples, Some(8000.0)))
            .collect();
        let report = Report {
            cores: 2,
            bytes: 1 << 30,
            runs: 1,
            window: 1 << 24,
            server_isolation: "x",
            congestion_control: "NewReno",
            cipher_suite: "y",
            cpu_time: "z",
            cpu_precise: true,
            ceilings: Vec::new(),
            scenarios: vec![ScenarioReport {
                id: "1s-1452".into(),
                title: DEFAULT_SCENARIOS[0].title(),
                streams: 1,
                mtu: 1452,
                pmtud: false,
                ceiling_mbit_per_s: Some(8000.0),
                ratio_quiver_over_quinn: same_stack_ratio(&summaries.iter().collect::<Vec<_>>()),
            }],
            pairs: summaries,
            samples,
        };
        let mut out = Vec::new();
        print_table(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("1 stream, 1452-byte UDP payloads (no PMTUD)\n"),
            "{text}"
        );
        assert!(
            text.contains("ratio quiver/quinn (median throughput, same-stack pairs): 2.00x"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("quiver <- quiver"))
            .unwrap();
        assert!(row.ends_with("1.50         -       25.0%"), "{row:?}");
    }
}
