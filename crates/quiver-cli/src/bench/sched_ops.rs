//! `quiver bench sched-ops`: cost of the stream schedulers' operations, timed with
//! [`quiver_proto::sched::ops_workload`] (open + ready every stream, then drain with
//! one re-class per stream).

use clap::Args;
use quiver_proto::sched::{ops_workload, SchedulerKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Arguments of `quiver bench sched-ops`.
#[derive(Args, Debug)]
pub struct SchedOpsArgs {
    /// Comma-separated stream counts.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Repetitions per scheduler and size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Also run sorted-abs (a sorted list, O(n) inserts) above 10k streams.
    #[arg(long)]
    pub all: bool,
}

/// Runs the benchmark; returns the exit code.
pub fn run(args: SchedOpsArgs) -> anyhow::Result<i32> {
    println!(
        "{:<11} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "scheduler", "streams", "ops", "min ms", "median ms", "max ms", "ns/op"
    );
    let mut medians: BTreeMap<(usize, &'static str), Duration> = BTreeMap::new();
    for &n in &args.sizes {
        for kind in SchedulerKind::ALL {
            if kind == SchedulerKind::SortedListAbs && n > 10_000 && !args.all {
                println!(
                    "{:<11} {:>8} skipped (O(n) inserts; --all to run)",
                    kind.name(),
                    n
                );
                continue;
            }
            let mut times = Vec::new();
            let mut ops = 0;
            for _ in 0..args.runs {
                let start = Instant::now();
                ops = std::hint::black_box(ops_workload(kind, n, start));
                times.push(start.elapsed());
            }
            times.sort();
            let median = times[times.len() / 2];
            medians.insert((n, kind.name()), median);
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "{:<11} {:>8} {:>10} {:>10.3} {:>10.3} {:>10.3} {:>9.1}",
                kind.name(),
                n,
                ops,
                ms(times[0]),
                ms(median),
                ms(times[times.len() - 1]),
                median.as_secs_f64() * 1e9 / ops.max(1) as f64
            );
        }
    }
    for &n in &args.sizes {
        if let (Some(p), Some(s)) = (
            medians.get(&(n, SchedulerKind::Pifo.name())),
            medians.get(&(n, SchedulerKind::SortedListAbs.name())),
        ) {
            println!(
                "pifo vs sorted-abs at {n}: {:.2}x (median time sorted-abs / pifo)",
                s.as_secs_f64() / p.as_secs_f64().max(1e-12)
            );
        }
    }
    Ok(0)
}
