//! Algorithms that run in the agent: [`Reno`] and [`Cubic`] (window computed in the agent
//! from per-RTT or fixed-interval reports of one shared datapath program,
//! [`REPORT_PROGRAM`]).
//!
//! Extension point: implement [`crate::agent::Algorithm`] (per flow) and
//! [`crate::agent::AlgorithmFactory`]; [`by_name`] lists the shipped ones.

use crate::agent::{Algorithm, AlgorithmFactory, DatapathHandle, FlowInfo, Report, Setup};
use crate::vm::Program;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The datapath program of the window-based algorithms: folds bytes acknowledged,
/// losses and timeouts, keeps the latest RTT sample, bytes in flight and `Ack.now`, and
/// reports every `interval` microseconds, or at once on loss or timeout. The agent sets
/// `interval` (per-RTT reporting re-sets it to the latest RTT after each report).
pub const REPORT_PROGRAM: &str = "\
(def (Report
    (volatile acked 0)
    (volatile loss 0)
    (volatile timeout false)
    (volatile rtt 0)
    (volatile inflight 0)
    (volatile now 0))
    (interval 10000))
(when true
    (:= Report.acked (+ Report.acked Ack.bytes_acked))
    (:= Report.loss (+ Report.loss Ack.lost_pkts_sample))
    (:= Report.timeout Flow.was_timeout)
    (:= Report.rtt Flow.rtt_sample_us)
    (:= Report.inflight Flow.bytes_in_flight)
    (:= Report.now Ack.now)
    (fallthrough))
(when (or Report.timeout (> Report.loss 0))
    (report)
    (:= Micros 0))
(when (> Micros interval)
    (report)
    (:= Micros 0))
";

/// The compiled [`REPORT_PROGRAM`].
pub fn report_program() -> Arc<Program> {
    static P: OnceLock<Arc<Program>> = OnceLock::new();
    Arc::clone(P.get_or_init(|| {
        Arc::new(crate::lang::compile(REPORT_PROGRAM).unwrap_or_else(|e| {
            // a fixed, tested source: failing here is a build defect, not an input error
            panic!("built-in CCP report program does not compile: {e:?}")
        }))
    }))
}

/// How often the datapath reports.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum ReportInterval {
    /// Once per (latest) round-trip time.
    PerRtt,
    /// Every fixed interval.
    Every(Duration),
}

/// Shared state of the window-based algorithms: interval handling and per-report inputs.
#[derive(Debug, Clone)]
struct Window {
    mss: u64,
    cwnd: u64,
    ssthresh: u64,
    /// `Ack.now` (µs) before which a loss does not start a new reduction.
    recovery_until: u64,
    interval: ReportInterval,
}

struct Inputs {
    acked: u64,
    loss: u64,
    timeout: bool,
    rtt: u64,
    now: u64,
}

impl Window {
    fn new(info: &FlowInfo, interval: ReportInterval) -> Self {
        let mss = u64::from(info.mss.max(1));
        Self {
            mss,
            cwnd: u64::from(info.init_cwnd).max(2 * mss),
            ssthresh: u64::MAX,
            recovery_until: 0,
            interval,
        }
    }

    fn setup(&self) -> Setup {
        let interval = match self.interval {
            ReportInterval::PerRtt => 10_000,
            ReportInterval::Every(d) => d.as_micros().clamp(1, u128::from(u32::MAX - 1)) as u64,
        };
        Setup {
            program: report_program(),
            updates: vec![("interval".into(), interval), ("Cwnd".into(), self.cwnd)],
        }
    }

    fn inputs(report: &Report<'_>) -> Inputs {
        let rtt = report.get_or_zero("rtt");
        Inputs {
            acked: report.get_or_zero("acked"),
            loss: report.get_or_zero("loss"),
            timeout: report.get_or_zero("timeout") != 0,
            rtt: if rtt == u64::MAX { 0 } else { rtt },
            now: report.get_or_zero("now"),
        }
    }

    /// A congestion event at `now`: true if it starts a new recovery period (one
    /// reduction per round trip, as RFC 9002 §7.3.2).
    fn new_recovery(&mut self, i: &Inputs) -> bool {
        if i.now < self.recovery_until {
            return false;
        }
        self.recovery_until = i.now.saturating_add(i.rtt.max(1));
        true
    }

    fn apply(&self, i: &Inputs, dp: &mut DatapathHandle<'_>) {
        if self.interval == ReportInterval::PerRtt && i.rtt > 0 {
            let _ = dp.update(&[
                ("Cwnd", self.cwnd),
                ("interval", i.rtt.min(u64::from(u32::MAX - 1))),
            ]);
        } else {
            dp.set_cwnd(self.cwnd);
        }
    }
}

/// NewReno in the agent: slow start, +1 MSS per window of acknowledged bytes, halve on a
/// loss (once per round trip), minimum window on a timeout (persistent congestion).
#[derive(Debug, Clone)]
pub struct Reno {
    w: Window,
    acc: u64,
}

impl Algorithm for Reno {
    fn on_create(&mut self, _info: &FlowInfo) -> Setup {
        self.w.setup()
    }

    fn on_report(&mut self, report: &Report<'_>, dp: &mut DatapathHandle<'_>) {
        let i = Window::inputs(report);
        let w = &mut self.w;
        if i.timeout {
            w.ssthresh = (w.cwnd / 2).max(2 * w.mss);
            w.cwnd = 2 * w.mss;
            w.recovery_until = i.now.saturating_add(i.rtt);
        } else if i.loss > 0 {
            if w.new_recovery(&i) {
                w.ssthresh = (w.cwnd / 2).max(2 * w.mss);
                w.cwnd = w.ssthresh;
                self.acc = 0;
            }
        } else if i.now >= w.recovery_until {
            if w.cwnd < w.ssthresh {
                w.cwnd = w.cwnd.saturating_add(i.acked);
            } else {
                self.acc = self.acc.saturating_add(i.acked);
                while self.acc >= w.cwnd {
                    self.acc -= w.cwnd;
                    w.cwnd = w.cwnd.saturating_add(w.mss);
                }
            }
        }
        w.apply(&i, dp);
    }
}

/// CUBIC in the agent (RFC 9438): cubic window function of the time since the last
/// reduction (the epoch starts at the reduction, or on entering congestion avoidance),
/// β = 0.7, C = 0.4, target `W_cubic(t + RTT)` clamped to `[cwnd, 1.5 cwnd]`,
/// Reno-friendly region (§4.3) and fast convergence (§4.7). Per report instead of per
/// ACK: the growth of one report is `(target − cwnd) · acked / cwnd`.
#[derive(Debug, Clone)]
pub struct Cubic {
    w: Window,
    w_max: f64,
    k: f64,
    epoch_start: Option<u64>,
    w_est: f64,
}

const BETA: f64 = 0.7;
const C: f64 = 0.4;

impl Cubic {
    fn start_epoch(&mut self, now: u64) {
        let cwnd = self.w.cwnd as f64;
        if self.w_max < cwnd {
            self.w_max = cwnd;
        }
        self.k = ((self.w_max - cwnd) / (C * self.w.mss as f64))
            .max(0.0)
            .cbrt();
        self.w_est = cwnd;
        self.epoch_start = Some(now);
    }

    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d * self.w.mss as f64 + self.w_max
    }
}

impl Algorithm for Cubic {
    fn on_create(&mut self, _info: &FlowInfo) -> Setup {
        self.w.setup()
    }

    fn on_report(&mut self, report: &Report<'_>, dp: &mut DatapathHandle<'_>) {
        let i = Window::inputs(report);
        if i.timeout {
            let w = &mut self.w;
            w.ssthresh = ((w.cwnd as f64 * BETA) as u64).max(2 * w.mss);
            w.cwnd = 2 * w.mss;
            w.recovery_until = i.now.saturating_add(i.rtt);
            self.epoch_start = None;
            self.w_max = 0.0;
        } else if i.loss > 0 {
            if self.w.new_recovery(&i) {
                let cwnd = self.w.cwnd as f64;
                self.w_max = if cwnd < self.w_max {
                    cwnd * (1.0 + BETA) / 2.0
                } else {
                    cwnd
                };
                let new = ((cwnd * BETA) as u64).max(2 * self.w.mss);
                self.w.ssthresh = new;
                self.w.cwnd = new;
                self.start_epoch(i.now);
            }
        } else if i.now >= self.w.recovery_until && i.acked > 0 {
            if self.w.cwnd < self.w.ssthresh {
                self.w.cwnd = self.w.cwnd.saturating_add(i.acked);
            } else {
                if self.epoch_start.is_none() {
                    self.start_epoch(i.now);
                }
                let start = self.epoch_start.unwrap_or(i.now);
                let cwnd = self.w.cwnd as f64;
                let t = i.now.saturating_sub(start) as f64 / 1e6;
                let rtt = i.rtt.max(1000) as f64 / 1e6;
                let acked = i.acked as f64;
                let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
                self.w_est += alpha * self.w.mss as f64 * acked / cwnd;
                let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
                let next = if self.w_cubic(t) < self.w_est {
                    self.w_est.max(cwnd)
                } else {
                    cwnd + (target - cwnd) * acked / cwnd
                };
                self.w.cwnd = next as u64;
            }
        }
        self.w.apply(&i, dp);
    }
}

/// A factory for the shipped algorithms.
#[derive(Debug, Clone)]
pub struct Shipped {
    name: &'static str,
    interval: ReportInterval,
}

impl AlgorithmFactory for Shipped {
    fn name(&self) -> &str {
        self.name
    }

    fn new_flow(&self, info: &FlowInfo) -> Box<dyn Algorithm> {
        let w = Window::new(info, self.interval);
        match self.name {
            "cubic" => Box::new(Cubic {
                w,
                w_max: 0.0,
                k: 0.0,
                epoch_start: None,
                w_est: 0.0,
            }),
            _ => Box::new(Reno { w, acc: 0 }),
        }
    }
}

/// Names accepted by [`by_name`].
pub const NAMES: &[&str] = &["reno", "cubic"];

/// The shipped algorithm `name` (see [`NAMES`]) reporting at `interval`.
pub fn by_name(name: &str, interval: ReportInterval) -> Option<Box<dyn AlgorithmFactory>> {
    let name = NAMES.iter().find(|n| **n == name)?;
    Some(Box::new(Shipped { name, interval }))
}
