//! The VM running compiled programs: reports, volatile resets, the timer, window and rate
//! control, agent updates, program changes, and arithmetic faults.

use std::sync::Arc;

use quiver_ccp::lang::compile;
use quiver_ccp::vm::{FlowState, Implicit, Primitives, Reg, UpdateError, VmError};

const RENO: &str = include_str!("../programs/reno.ccp");
const AIMD: &str = include_str!("../programs/aimd.ccp");
const BBR: &str = include_str!("../programs/bbr.ccp");

fn flow(src: &str) -> FlowState {
    FlowState::new(Arc::new(compile(src).expect("compiles")), 0)
}

fn ack(now_us: u64, bytes: u64, cwnd: u64) -> Primitives {
    Primitives {
        now_us,
        bytes_acked: bytes,
        packets_acked: bytes / 1000,
        rtt_sample_us: 20_000,
        packets_in_flight: 10,
        cwnd,
        ..Primitives::default()
    }
}

#[test]
fn reno_program_reports_once_per_rtt_and_resets_volatile_fields() {
    let mut f = flow(RENO);
    let p = Arc::clone(f.program());
    let acked = p.report_field_index("acked").unwrap();
    let mut reports = Vec::new();
    // One ACK of 1000 bytes every 1 ms for 100 ms with a 20 ms RTT.
    for t in 1..=100u64 {
        let out = f.on_event(&ack(t * 1000, 1000, 10_000)).unwrap();
        assert_eq!(
            out.cwnd, None,
            "this program leaves the window to the agent"
        );
        if out.report {
            reports.push((t, f.last_report()[acked]));
        }
    }
    // Micros > 20 ms first holds at 21 ms; the timer restarts at each report.
    assert_eq!(
        reports,
        vec![(21, 21_000), (42, 21_000), (63, 21_000), (84, 21_000)]
    );
    assert_eq!(f.last_report().len(), 6);
    // A loss reports at once, with the loss count.
    let mut l = ack(101_000, 0, 10_000);
    l.lost_pkts_sample = 2;
    assert!(f.on_event(&l).unwrap().report);
    let loss = p.report_field_index("loss").unwrap();
    assert_eq!(f.last_report()[loss], 2);
    assert_eq!(
        f.last_report()[acked],
        16_000,
        "volatile fields restart from 0 after a report"
    );
    assert_eq!(f.aborts(), 0);
}

#[test]
fn aimd_program_runs_slow_start_loss_and_congestion_avoidance() {
    let mut f = flow(AIMD);
    let mut cwnd = 14_600u64;
    // Slow start: the window grows by the bytes acked.
    for t in 1..=10u64 {
        let out = f.on_event(&ack(t * 100, 1460, cwnd)).unwrap();
        cwnd = out.cwnd.unwrap_or(cwnd);
    }
    assert_eq!(cwnd, 14_600 + 10 * 1460);
    // Loss: halve (ssthresh = cwnd/2), and report.
    let mut l = ack(1_100, 0, cwnd);
    l.lost_pkts_sample = 1;
    let out = f.on_event(&l).unwrap();
    assert!(out.report);
    cwnd = out.cwnd.unwrap();
    assert_eq!(cwnd, 14_600);
    // Congestion avoidance: one MSS per window's worth of ACKed bytes.
    let mut grew = 0;
    for t in 0..20u64 {
        let out = f.on_event(&ack(1_200 + t, 1460, cwnd)).unwrap();
        if let Some(c) = out.cwnd {
            assert_eq!(c, cwnd + 1460);
            cwnd = c;
            grew += 1;
        }
    }
    assert_eq!(grew, 1, "20 ACKs of 1460 B cover the 14600 B window once");
    // The agent can update a control variable: a smaller ssthresh ends slow start.
    let mss = f.program().update_target("mss").unwrap();
    f.stage_update(mss, 1000).unwrap();
    let out = f.on_event(&ack(2_000, 30_000, cwnd)).unwrap();
    assert_eq!(out.cwnd, Some(cwnd + 1000));
}

#[test]
fn bbr_program_pulses_the_pacing_rate() {
    let mut f = flow(BBR);
    let bottle = f.program().update_target("bottle_rate").unwrap();
    f.stage_update(bottle, 1_000_000).unwrap();
    let mut rates = Vec::new();
    let mut reports = 0;
    // ACK every 1 ms, min RTT 10 ms: the phase changes every 11 ms.
    let mut rate = 0;
    for t in 1..=200u64 {
        let mut a = ack(t * 1000, 1000, 50_000);
        a.rtt_sample_us = 10_000;
        a.rate = rate;
        let out = f.on_event(&a).unwrap();
        reports += usize::from(out.report);
        if let Some(r) = out.rate {
            rate = r;
            rates.push(r);
        }
    }
    let cycle = [
        1_250_000, 750_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000,
    ];
    assert_eq!(&rates[..16], &[cycle, cycle].concat()[..]);
    assert_eq!(reports, rates.iter().filter(|r| **r == 1_250_000).count());
}

#[test]
fn arithmetic_faults_abort_the_invocation_and_are_counted() {
    let mut f = flow(
        "(def (Report (volatile x 0)) (d 0))
         (when true (:= Report.x (* Ack.bytes_acked Ack.bytes_acked)) (fallthrough))
         (when true (:= Report.x (/ Report.x d)) (:= Cwnd 5000) (report))",
    );
    let big = Primitives {
        bytes_acked: 1 << 40,
        ..Primitives::default()
    };
    assert_eq!(f.on_event(&big), Err(VmError::Overflow(3)));
    let small = Primitives {
        bytes_acked: 10,
        ..Primitives::default()
    };
    assert_eq!(f.on_event(&small), Err(VmError::DivByZero(6)));
    assert_eq!(f.aborts(), 2);
    assert_eq!(f.invocations(), 2);
    let d = f.program().update_target("d").unwrap();
    f.stage_update(d, 4).unwrap();
    let out = f.on_event(&small).unwrap();
    assert_eq!((out.cwnd, out.report), (Some(5000), true));
    assert_eq!(f.last_report(), &[25]);

    let mut g = flow("(def (x 0)) (when true (:= x (- Ack.bytes_acked 1)))");
    assert_eq!(
        g.on_event(&Primitives::default()),
        Err(VmError::Underflow(2))
    );
}

#[test]
fn when_clauses_stop_at_the_first_true_one_unless_fallthrough() {
    let mut f = flow(
        "(def (Report (a 0) (b 0) (c 0)))
         (when true (:= Report.a (+ Report.a 1)))
         (when true (:= Report.b (+ Report.b 1)))
         (when (> Report.a 100) (:= Report.c 1))
         (when true (:= Report.c (+ Report.c 1)) (report))",
    );
    f.on_event(&Primitives::default()).unwrap();
    let a = f.program().reg_of("Report.a").unwrap();
    let b = f.program().reg_of("Report.b").unwrap();
    assert_eq!((f.read(a), f.read(b)), (Some(1), Some(0)));
}

#[test]
fn timer_updates_and_program_changes() {
    let mut f = flow(
        "(def (Report (volatile t 0)) (base 7))
         (when (> Micros 1000) (:= Report.t Micros) (:= Micros 200) (report))",
    );
    assert!(
        !f.on_event(&Primitives {
            now_us: 1000,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert!(
        f.on_event(&Primitives {
            now_us: 1001,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert_eq!(f.last_report(), &[1001]);
    // The timer restarted at 200 µs: 801 µs later it is at 1001 again.
    assert!(
        !f.on_event(&Primitives {
            now_us: 1801,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert!(
        f.on_event(&Primitives {
            now_us: 1802,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert_eq!(f.last_report(), &[1001]);

    // Report variables and Micros cannot be updated by the agent; Cwnd and Rate can.
    let t = f.program().reg_of("Report.t").unwrap();
    assert_eq!(f.stage_update(t, 1), Err(UpdateError::NotUpdatable(t)));
    f.stage_update(Reg::Implicit(Implicit::Rate), 123_456)
        .unwrap();
    let out = f
        .on_event(&Primitives {
            now_us: 1900,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(out.rate, Some(123_456));

    // A program change restarts variables and the timer at the next invocation.
    let next = Arc::new(compile("(def (Report (n 5))) (when (> Micros 10) (report))").unwrap());
    f.stage_program(next);
    assert!(
        !f.on_event(&Primitives {
            now_us: 5000,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert!(
        f.on_event(&Primitives {
            now_us: 5011,
            ..Default::default()
        })
        .unwrap()
        .report
    );
    assert_eq!(f.last_report(), &[5]);
}

#[test]
fn infinity_and_missing_rtt_samples() {
    let mut f = flow(
        "(def (Report (volatile minrtt +infinity)))
         (when true (:= Report.minrtt (min Report.minrtt Flow.rtt_sample_us)) (report))",
    );
    // No sample (0) reads as +infinity, so the minimum is unchanged.
    f.on_event(&Primitives::default()).unwrap();
    assert_eq!(f.last_report(), &[u64::MAX]);
    f.on_event(&Primitives {
        rtt_sample_us: 900,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f.last_report(), &[900]);
}
