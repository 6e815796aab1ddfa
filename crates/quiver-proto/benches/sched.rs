//! Scheduler management cost: insert / pop / re-insert with 1k, 10k and 100k streams.
//!
//! - `workload/<kind>/<n>`: [`ops_workload`] — every phase of `OpsBench` with `n` ready
//!   streams (insert, serve, churn, reinsert, drain; `n` steps each). Throughput is in
//!   scheduler calls, so criterion prints the per-call cost.
//! - `churn/<kind>/<n>`: with `n` ready streams, one stream completes and a new one
//!   arrives per iteration (`next`, `on_sent(false)`, `on_closed`, `on_open`, `on_ready`),
//!   so the ready set stays at `n` streams with random classes. Per-iteration time.
//!
//! The sorted-list baseline is O(n) per insertion, so it is left out at 100k streams.
//!
//! Run: `cargo bench -p quiver-proto --bench sched -- --warm-up-time 1 --measurement-time 2`

// The group macro generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quiver_proto::sched::{
    ops_workload, Deadline, Scheduler, SchedulerFactory, SchedulerKind, StreamClass,
};
use quiver_proto::{Dir, Side, StreamId};

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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn class(&mut self, start: Instant) -> StreamClass {
        let r = self.next();
        let c = StreamClass::new()
            .with_priority((r & 7) as u8)
            .with_level(((r >> 3) & 3) as u8);
        if (r >> 5) & 1 == 1 {
            c.with_deadline(Deadline::At(
                start + Duration::from_millis(1000 + (r >> 6) % 1000),
            ))
        } else {
            c
        }
    }
}

fn churn(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("churn");
    for kind in SchedulerKind::ALL {
        for n in SIZES {
            if skip(kind, n) {
                continue;
            }
            let mut rng = Rng(42);
            let mut s: Box<dyn Scheduler> = kind.build();
            let id = |i: u64| StreamId::new(Side::Client, Dir::Bi, i);
            for i in 0..n as u64 {
                s.on_open(id(i), &rng.class(start), start);
                s.on_ready(id(i), start);
            }
            let mut fresh = n as u64;
            g.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| {
                    if let Some(done) = s.next(start) {
                        s.on_sent(done, 1200, false, start);
                        s.on_closed(done);
                    }
                    s.on_open(id(fresh), &rng.class(start), start);
                    s.on_ready(id(fresh), start);
                    fresh += 1;
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, workload, churn);
criterion_main!(benches);
