//! Scheduler management cost: insert / pop / re-insert with 1k, 10k and 100k streams.
//!
//! - `workload/<kind>/<n>`: [`ops_workload`] — every phase of `OpsBench` with `n` ready
//!   streams (insert, serve, churn, reinsert, drain; `n` steps each). Throughput is in
//!   scheduler calls, so criterion prints the per-call cost.
//! - `churn/<kind>/<n>`: with `n` ready streams, one step of `Phase::Churn` per
//!   iteration — the head stream completes and a new one arrives (`next`,
//!   `on_sent(false)`, `on_closed`, `on_open`, `on_ready`), so the ready set stays at `n`
//!   streams with random classes. Per-iteration time.
//!
//! The sorted-list baseline is O(n) per insertion, so it is left out at 100k streams.
//!
//! Run: `cargo bench -p quiver-proto --bench sched -- --warm-up-time 1 --measurement-time 2`

// The group macro generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quiver_proto::sched::{ops_workload, OpsBench, Phase, SchedulerKind};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn skip(kind: SchedulerKind, n: usize) -> bool {
    kind == SchedulerKind::SortedListAbs && n > 10_000
}

fn workload(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("workload");
    g.sample_size(10);
    for kind in SchedulerKind::ALL {
        for n in SIZES {
            if skip(kind, n) {
                continue;
            }
            g.throughput(Throughput::Elements((16 * n + 1) as u64));
            g.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, &n| {
                b.iter(|| black_box(ops_workload(kind, black_box(n), start)))
            });
        }
    }
    g.finish();
}

fn churn(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("churn");
    for kind in SchedulerKind::ALL {
        for n in SIZES {
            if skip(kind, n) {
                continue;
            }
            let mut bench = OpsBench::new(kind, start);
            bench.run(Phase::Insert, n);
            g.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| black_box(bench.run(Phase::Churn, 1)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, workload, churn);
criterion_main!(benches);
