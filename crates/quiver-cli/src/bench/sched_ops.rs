//! `quiver bench sched-ops`: what the stream schedulers cost to manage, per call, with
//! 1k, 10k and 100k ready streams.
//!
//! Each run builds a fresh scheduler and times the phases of
//! [`quiver_proto::sched::OpsBench`] one by one: insert `n` streams (the seed's class
//! mix arriving in order), then — with `n` streams ready — `--steps` packets served,
//! `--steps` completions with a new arrival each ("churn", random classes), `--steps`
//! re-ranks of the head stream ("reinsert"), and finally the drain. The table gives the
//! median over `--runs` of nanoseconds per scheduler call for each phase, and the
//! min/median/max of the whole run; the last lines compare PIFO with the sorted-list
//! baseline phase by phase.

use anyhow::Context;
use clap::Args;
use quiver_proto::sched::{OpsBench, Phase, SchedulerKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `quiver bench sched-ops`.
#[derive(Args, Debug)]
pub struct SchedOpsArgs {
    /// Comma-separated numbers of ready streams.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Steps of the serve, churn and reinsert phases.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub steps: u32,
    /// Repetitions per scheduler and size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Comma-separated schedulers (default: all).
    #[arg(long, value_delimiter = ',')]
    pub schedulers: Vec<SchedulerKind>,
    /// Also run sorted-abs (a sorted list, O(n) inserts) above 10k streams.
    #[arg(long)]
    pub all: bool,
    /// Write one CSV row per scheduler, size, run and phase to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// One timed run: (calls, time) per phase.
type RunTimes = Vec<(Phase, usize, Duration)>;

fn one_run(kind: SchedulerKind, n: usize, steps: usize) -> RunTimes {
    let start = Instant::now();
    let mut bench = OpsBench::new(kind, start);
    Phase::ALL
        .iter()
        .map(|&phase| {
            let steps = if phase == Phase::Insert { n } else { steps };
            let t = Instant::now();
            let calls = std::hint::black_box(bench.run(phase, steps));
            (phase, calls, t.elapsed())
        })
        .collect()
}

fn ns_per_call(calls: usize, d: Duration) -> f64 {
    d.as_secs_f64() * 1e9 / calls.max(1) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark; returns the exit code.
pub fn run(args: SchedOpsArgs) -> anyhow::Result<i32> {
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        eprintln!("quiver: error: --sizes: give positive stream counts");
        return Ok(2);
    }
    let kinds: Vec<SchedulerKind> = if args.schedulers.is_empty() {
        SchedulerKind::ALL.to_vec()
    } else {
        args.schedulers.clone()
    };
    let steps = usize::try_from(args.steps).unwrap_or(usize::MAX);
    println!(
        "# ns per scheduler call, median of {} runs; serve/churn/reinsert: {} steps with n ready streams",
        args.runs, steps
    );
    let mut header = format!("{:<11} {:>8}", "scheduler", "streams");
    for p in Phase::ALL {
        let _ = write!(header, " {:>9}", p.name());
    }
    let _ = write!(header, " {:>24}", "total ms min/med/max");
    println!("{header}");
    let mut csv = String::from("scheduler,streams,run,phase,calls,ns\n");
    let mut medians: BTreeMap<(usize, &'static str, Phase), f64> = BTreeMap::new();
    for &n in &args.sizes {
        for &kind in &kinds {
            if kind == SchedulerKind::SortedListAbs && n > 10_000 && !args.all {
                println!(
                    "{:<11} {:>8} skipped (O(n) inserts; --all to run)",
                    kind.name(),
                    n
                );
                continue;
            }
            let runs: Vec<RunTimes> = (0..args.runs).map(|_| one_run(kind, n, steps)).collect();
            for (r, times) in runs.iter().enumerate() {
                for (phase, calls, d) in times {
                    let _ = writeln!(
                        csv,
                        "{},{},{},{},{},{}",
                        kind.name(),
                        n,
                        r,
                        phase.name(),
                        calls,
                        d.as_nanos()
                    );
                }
            }
            let mut line = format!("{:<11} {:>8}", kind.name(), n);
            for (i, phase) in Phase::ALL.iter().enumerate() {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter_map(|t| t.get(i))
                    .map(|&(_, c, d)| ns_per_call(c, d))
                    .collect();
                let m = median(&mut v);
                medians.insert((n, kind.name(), *phase), m);
                let _ = write!(line, " {m:>9.1}");
            }
            let mut totals: Vec<f64> = runs
                .iter()
                .map(|t| t.iter().map(|&(_, _, d)| d.as_secs_f64() * 1e3).sum())
                .collect();
            let med = median(&mut totals);
            let _ = write!(
                line,
                " {:>24}",
                format!(
                    "{:.3}/{:.3}/{:.3}",
                    totals.first().copied().unwrap_or(f64::NAN),
                    med,
                    totals.last().copied().unwrap_or(f64::NAN)
                )
            );
            println!("{line}");
        }
    }
    for &n in &args.sizes {
        let mut parts = Vec::new();
        for p in Phase::ALL {
            if let (Some(pifo), Some(sorted)) = (
                medians.get(&(n, SchedulerKind::Pifo.name(), p)),
                medians.get(&(n, SchedulerKind::SortedListAbs.name(), p)),
            ) {
                parts.push(format!("{} {:.2}x", p.name(), sorted / pifo.max(1e-9)));
            }
        }
        if !parts.is_empty() {
            println!(
                "pifo vs sorted-abs at {n} (sorted-abs ns / pifo ns): {}",
                parts.join(", ")
            );
        }
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}
