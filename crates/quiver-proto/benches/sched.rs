//! Scheduler management cost: insert / pop / re-insert with 1k, 10k and 100k streams.
//!
//! - `workload/<kind>/<n>`: [`ops_workload`] — open and ready `n` streams, then pop every
//!   stream twice, re-inserting it with a new class in between (about `n` ready streams
//!   throughout). Throughput is in scheduler calls, so criterion prints the per-call cost.
//! - `steady/<kind>/<n>`: with `n` ready streams, one pop + re-rank + re-insert
//!   (`next`, `on_sent(false)`, `set_class`, `on_ready`) per iteration.
//!
//! The sorted-list baseline is O(n) per insertion, so it is left out at 100k streams.
//!
//! Run: `cargo bench -p quiver-proto --bench sched -- --warm-up-time 1 --measurement-time 2`

// `criterion_group!` generates an undocumented `pub fn`.
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
            g.throughput(Throughput::Elements((9 * n + 1) as u64));
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

fn steady(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("steady");
    g.throughput(Throughput::Elements(1));
    for kind in SchedulerKind::ALL {
        for n in SIZES {
            if skip(kind, n) {
                continue;
            }
            let mut rng = Rng(42);
            let mut s: Box<dyn Scheduler> = kind.build();
            for i in 0..n {
                let id = StreamId::new(Side::Client, Dir::Bi, i as u64);
                s.on_open(id, &rng.class(start), start);
                s.on_ready(id, start);
            }
            g.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| {
                    if let Some(id) = s.next(start) {
                        s.on_sent(id, 1200, false, start);
                        s.set_class(id, &rng.class(start), start);
                        s.on_ready(id, start);
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, workload, steady);
criterion_main!(benches);
