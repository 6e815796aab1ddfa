//! `quiver bench instructions`: instruction counts of the transport's hot paths under
//! callgrind, so that a regression shows as a stable number rather than timing noise.
//!
//! Each workload ([`workloads::Workload`]) is run by this same binary (the hidden
//! `quiver bench icount-worker` sub-command) under `valgrind --tool=callgrind`, once with
//! `N` operations and once with `2N`; the count per operation is
//! `(I(2N) − I(N)) / N`, which removes process start-up and the workload's setup
//! (handshakes, key schedules, warm-up). Instruction counts are repeatable from run to
//! run where wall-clock time is not; they do depend on the build (use `--release`), the
//! compiler and the CPU features valgrind reports (ring picks its AES/ChaCha code from
//! them), so compare numbers from the same machine and toolchain.
//!
//! For the transfer workloads the profile is also split by side and path, from the
//! inclusive cost of the `icount_*` functions that wrap every call into an endpoint (see
//! [`transfer`]). `--profile-dir` keeps the callgrind files for `callgrind_annotate`. To
//! profile one side of a transfer only, collect inside its wrappers:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*icount_tx_*' \
//!     quiver bench icount-worker --workload transfer-100 --iters 4
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Repeatability: the packet and ACK workloads give the same count to a few
//! instructions; the transfers vary by about 0.1 % from run to run (randomly keyed
//! hash maps in the endpoints).
//!
//! Why not `iai-callgrind`/`gungraun`: they need a runner binary of the exact library
//! version installed with `cargo install`, run as `cargo bench` targets outside the
//! `quiver` command, and isolate single calls with client requests; the N/2N difference
//! gives the same setup-free per-operation count with valgrind alone, for workloads
//! (whole transfers) that are not a single call.

mod callgrind;
mod transfer;
mod workloads;

use anyhow::{bail, Context};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use workloads::Workload;

/// Arguments of `quiver bench instructions`.
#[derive(Args, Debug)]
pub struct InstructionsArgs {
    /// Comma-separated workloads (default: all; `--list` describes them).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub workloads: Vec<Workload>,
    /// Operations N of the first run (the second runs 2N); default per workload
    /// (10000 packets, 500 ACK frames, 4 MiB).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iters: Option<u64>,
    /// List the workloads and exit.
    #[arg(long)]
    pub list: bool,
    /// Write the results as CSV to this file (one row per workload, and per side and
    /// path of the transfer workloads).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Keep the callgrind profiles in this directory (`<workload>.<iters>.callgrind`),
    /// for `callgrind_annotate`.
    #[arg(long, value_name = "DIR")]
    pub profile_dir: Option<PathBuf>,
    /// The valgrind executable.
    #[arg(long, default_value = "valgrind", value_name = "PATH")]
    pub valgrind: PathBuf,
}

/// Arguments of the hidden `quiver bench icount-worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The workload.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Operations after setup.
    #[arg(long)]
    pub iters: u64,
}

/// The worker: run one workload and print its checksum.
pub fn run_worker(args: WorkerArgs) -> anyhow::Result<i32> {
    let sum = workloads::run(args.workload, args.iters)?;
    println!("{} {} {sum}", args.workload.name(), args.iters);
    Ok(0)
}

/// The measurement of one workload.
#[derive(Debug, Clone)]
struct Measured {
    workload: Workload,
    iters: u64,
    ir_n: u64,
    ir_2n: u64,
    /// (part, instructions at N, instructions at 2N) for the transfer workloads.
    parts: Vec<(String, u64, u64)>,
}

impl Measured {
    /// Instructions per unit of the workload.
    fn per_op(&self) -> f64 {
        per_op(self.ir_n, self.ir_2n, self.iters) * self.workload.unit_scale()
    }

    fn part_per_op(&self, name: &str) -> Option<f64> {
        self.parts
            .iter()
            .find(|(p, _, _)| p == name)
            .map(|&(_, a, b)| per_op(a, b, self.iters) * self.workload.unit_scale())
    }
}

fn per_op(ir_n: u64, ir_2n: u64, n: u64) -> f64 {
    (ir_2n as f64 - ir_n as f64) / n as f64
}

/// The valgrind version, or a clear error when it cannot be run.
fn valgrind_version(valgrind: &Path) -> anyhow::Result<String> {
    let out = Command::new(valgrind).arg("--version").output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        _ => bail!(
            "`{} --version` failed: quiver bench instructions needs valgrind (callgrind); \
             install it with `apt-get install valgrind` or `bash scripts/install-deps.sh`, \
             or give its path with --valgrind",
            valgrind.display()
        ),
    }
}

/// Run the worker for `w` with `iters` operations under callgrind, writing the profile
/// to `out`; return the parsed counts.
fn measure_once(
    valgrind: &Path,
    exe: &Path,
    w: Workload,
    iters: u64,
    out: &Path,
) -> anyhow::Result<callgrind::Profile> {
    let output = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--dump-instr=no")
        .arg("--quiet")
        .arg(exe)
        .args(["bench", "icount-worker", "--workload", w.name(), "--iters"])
        .arg(iters.to_string())
        // Logging filters change what the hot paths execute.
        .env_remove("RUST_LOG")
        .output()
        .with_context(|| format!("running {}", valgrind.display()))?;
    if !output.status.success() {
        bail!(
            "{} with {iters} operations failed under valgrind ({}):\n{}",
            w.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(out)
        .with_context(|| format!("reading the callgrind profile {}", out.display()))?;
    let functions: Vec<&str> = transfer::PARTS.iter().map(|&(_, _, f)| f).collect();
    callgrind::parse(&text, &functions)
        .with_context(|| format!("parsing the callgrind profile {}", out.display()))
}

/// Group the wrapped functions' counts into `side.path` parts, plus `harness` (what is
/// outside every wrapper: the simulator and the benchmark's own code).
fn parts(p: &callgrind::Profile) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut wrapped = 0;
    for &(side, path, f) in &transfer::PARTS {
        let n = p.inclusive.get(f).copied().unwrap_or(0);
        wrapped += n;
        let name = format!("{side}.{path}");
        match out.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v += n,
            None => out.push((name, n)),
        }
    }
    out.push(("harness".to_owned(), p.total.saturating_sub(wrapped)));
    out
}

fn measure(
    valgrind: &Path,
    exe: &Path,
    dir: &Path,
    w: Workload,
    iters: u64,
) -> anyhow::Result<Measured> {
    let file = |n: u64| dir.join(format!("{}.{n}.callgrind", w.name()));
    let a = measure_once(valgrind, exe, w, iters, &file(iters))?;
    let b = measure_once(valgrind, exe, w, 2 * iters, &file(2 * iters))?;
    let parts = if w.is_transfer() {
        parts(&a)
            .into_iter()
            .zip(parts(&b))
            .map(|((name, x), (_, y))| (name, x, y))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Measured {
        workload: w,
        iters,
        ir_n: a.total,
        ir_2n: b.total,
        parts,
    })
}

/// Runs `quiver bench instructions`; returns the exit code.
pub fn run(args: InstructionsArgs) -> anyhow::Result<i32> {
    let selected: Vec<Workload> = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    if args.list {
        for w in Workload::ALL {
            let help = clap::ValueEnum::to_possible_value(&w)
                .and_then(|v| v.get_help().map(ToString::to_string))
                .unwrap_or_default();
            println!("{:<15} per {:<12} {help}", w.name(), w.unit());
        }
        return Ok(0);
    }
    let version = valgrind_version(&args.valgrind)?;
    let exe = std::env::current_exe().context("locating the quiver binary")?;
    let build = if cfg!(debug_assertions) {
        eprintln!("quiver: warning: this is a debug build; measure a --release build");
        "debug"
    } else {
        "release"
    };
    let (dir, keep) = match &args.profile_dir {
        Some(d) => (d.clone(), true),
        None => (
            std::env::temp_dir().join(format!("quiver-icount-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut results = Vec::new();
    let mut failure = None;
    for &w in &selected {
        let iters = args.iters.unwrap_or_else(|| w.default_iters());
        if !args.json {
            eprintln!(
                "measuring {} ({iters} and {} operations)",
                w.name(),
                2 * iters
            );
        }
        match measure(&args.valgrind, &exe, &dir, w, iters) {
            Ok(m) => results.push(m),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&results, &version, build))?
        );
    } else {
        print!("{}", table(&results, &version, build));
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&results))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// `n` with thousands separators.
fn group(n: f64) -> String {
    let neg = n < 0.0;
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn baseline_of<'a>(results: &'a [Measured], m: &Measured) -> Option<&'a Measured> {
    let b = m.workload.baseline()?;
    results.iter().find(|r| r.workload == b)
}

/// The tables printed on stdout.
fn table(results: &[Measured], version: &str, build: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# instructions per operation = (I(2N) - I(N)) / N under callgrind ({version}, {build} build)"
    );
    let _ = writeln!(
        s,
        "{:<15} {:<12} {:>6} {:>16} {:>16} {:>14}",
        "workload", "per", "N", "I(N)", "I(2N)", "instr/op"
    );
    for m in results {
        let _ = write!(
            s,
            "{:<15} {:<12} {:>6} {:>16} {:>16} {:>14}",
            m.workload.name(),
            m.workload.unit(),
            m.iters,
            group(m.ir_n as f64),
            group(m.ir_2n as f64),
            group(m.per_op())
        );
        if let Some(b) = baseline_of(results, m) {
            let _ = write!(
                s,
                "   ({} without {})",
                group(m.per_op() - b.per_op()),
                b.workload.name()
            );
        }
        s.push('\n');
    }
    let transfers: Vec<&Measured> = results.iter().filter(|m| !m.parts.is_empty()).collect();
    if !transfers.is_empty() {
        let _ = writeln!(
            s,
            "\n# transfer workloads by side (tx = sending server, rx = receiving client) and path, instructions per MiB"
        );
        let cols = ["app", "handle", "poll_transmit", "timeout"];
        let _ = write!(s, "{:<15} {:<7}", "workload", "side");
        for c in cols {
            let _ = write!(s, " {c:>14}");
        }
        let _ = writeln!(s, " {:>14}", "total");
        for m in transfers {
            for side in ["tx", "rx"] {
                let _ = write!(s, "{:<15} {:<7}", m.workload.name(), side);
                let mut total = 0.0;
                for c in cols {
                    let v = m.part_per_op(&format!("{side}.{c}")).unwrap_or(0.0);
                    total += v;
                    let _ = write!(s, " {:>14}", group(v));
                }
                let _ = writeln!(s, " {:>14}", group(total));
            }
            let h = m.part_per_op("harness").unwrap_or(0.0);
            let _ = writeln!(
                s,
                "{:<15} {:<7} {:>14}   (simulator, datagram copies, benchmark code)",
                m.workload.name(),
                "harness",
                group(h)
            );
        }
    }
    s
}

fn csv(results: &[Measured]) -> String {
    let mut s = String::from("workload,part,unit,iters,ir_n,ir_2n,ir_per_op\n");
    for m in results {
        let _ = writeln!(
            s,
            "{},total,{},{},{},{},{:.1}",
            m.workload.name(),
            m.workload.unit(),
            m.iters,
            m.ir_n,
            m.ir_2n,
            m.per_op()
        );
        for (p, a, b) in &m.parts {
            let _ = writeln!(
                s,
                "{},{p},{},{},{a},{b},{:.1}",
                m.workload.name(),
                m.workload.unit(),
                m.iters,
                per_op(*a, *b, m.iters) * m.workload.unit_scale()
            );
        }
    }
    s
}

fn json(results: &[Measured], version: &str, build: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|m| {
            let parts: serde_json::Map<String, serde_json::Value> = m
                .parts
                .iter()
                .map(|(p, _, _)| (p.clone(), serde_json::json!(m.part_per_op(p))))
                .collect();
            serde_json::json!({
                "workload": m.workload.name(),
                "unit": m.workload.unit(),
                "iters": m.iters,
                "ir_n": m.ir_n,
                "ir_2n": m.ir_2n,
                "ir_per_op": m.per_op(),
                "baseline": baseline_of(results, m).map(|b| b.workload.name()),
                "ir_per_op_without_baseline": baseline_of(results, m).map(|b| m.per_op() - b.per_op()),
                "parts_per_op": parts,
            })
        })
        .collect();
    serde_json::json!({
        "tool": version,
        "build": build,
        "method": "(I(2N) - I(N)) / N, callgrind Ir",
        "results": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload runs natively (no valgrind) for a couple of operations, the way
    /// the worker runs it; keeps CI exercising them cheaply.
    #[test]
    fn every_workload_runs_natively() {
        for w in Workload::ALL {
            if w.is_transfer() {
                continue; // transfer.rs tests these
            }
            let sum = workloads::run(w, 2).unwrap_or_else(|e| panic!("{}: {e:#}", w.name()));
            assert_ne!(sum, 0, "{}", w.name());
        }
    }

    #[test]
    fn names_parse_back() {
        for w in Workload::ALL {
            assert_eq!(
                <Workload as clap::ValueEnum>::from_str(w.name(), false).unwrap(),
                w
            );
        }
    }

    #[test]
    fn tables_and_csv() {
        let m = Measured {
            workload: Workload::Transfer1,
            iters: 2,
            ir_n: 1000,
            ir_2n: 3000,
            parts: vec![
                ("tx.app".into(), 10, 30),
                ("tx.handle".into(), 100, 300),
                ("harness".into(), 500, 700),
            ],
        };
        assert_eq!(m.per_op(), 1000.0);
        let t = table(std::slice::from_ref(&m), "valgrind-3.19.0", "release");
        assert!(t.contains("transfer-1"), "{t}");
        assert!(t.contains("1,000"), "{t}");
        let c = csv(&[m]);
        assert!(
            c.contains("transfer-1,tx.handle,MiB,2,100,300,100.0"),
            "{c}"
        );
        assert_eq!(group(1234567.0), "1,234,567");
        assert_eq!(group(-1234.0), "-1,234");
    }

    #[test]
    fn missing_valgrind_is_a_clear_error() {
        let e = valgrind_version(Path::new("/nonexistent/valgrind")).unwrap_err();
        assert!(e.to_string().contains("needs valgrind"), "{e}");
    }
}
