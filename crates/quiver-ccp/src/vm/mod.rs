//! The datapath VM: runs a compiled [`Program`] per ACK or timeout for one flow.
//!
//! The VM is the part of CCP that lives in the datapath, so it is built to be safe on any
//! input: programs are validated once when built or decoded ([`Program::new`],
//! [`Program::decode`]), execution is straight-line (each event runs its condition and
//! body ranges once; no jumps), and arithmetic is checked — an overflow, an underflow or a
//! division by zero aborts the invocation with a [`VmError`] and is counted in
//! [`FlowState::aborts`]; nothing panics.
//!
//! # Per invocation ([`FlowState::on_event`], libccp's `ccp_invoke` + `state_machine`)
//! 1. `Cwnd` and `Rate` are loaded from the datapath's current values
//!    ([`Primitives::cwnd`], [`Primitives::rate`]); a pending program change is applied
//!    (state re-initialised, timer reset); staged updates are applied.
//! 2. `Micros` is set to the time since the timer's zero.
//! 3. Events run in order: the condition instructions, then the body if the event flag is
//!    set. Evaluation stops after the first true event unless its body ran `(fallthrough)`.
//! 4. The outcome carries the new `Cwnd`/`Rate` if the program or an update set them to a
//!    non-zero value, and whether a report was requested; on a report the report fields
//!    are copied out ([`FlowState::last_report`]) and volatile variables are reset.
//!
//! An aborted invocation produces no outcome; register writes made before the faulting
//! instruction stay (as in libccp).
//!
//! # Extension points
//! The datapath binding implements the primitives (fill a [`Primitives`] from its ACK,
//! loss and timeout events) and applies the outcome; the agent changes behaviour through
//! [`FlowState::stage_update`] and [`FlowState::stage_program`].

pub mod program;

use std::sync::Arc;

pub use program::{
    DecodeError, Event, Implicit, Instr, Op, Primitive, Program, Reg, IMM_INFINITY,
    MAX_CONTROL_REGS, MAX_EVENTS, MAX_INSTRS, MAX_LOCAL_REGS, MAX_REPORT_REGS, MAX_TMP_REGS,
};

/// The congestion signals of one ACK (or timeout), as the datapath measured them.
///
/// Units: bytes, packets, microseconds and bytes per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Primitives {
    /// `Ack.bytes_acked`.
    pub bytes_acked: u64,
    /// `Ack.packets_acked`.
    pub packets_acked: u64,
    /// `Ack.bytes_misordered`.
    pub bytes_misordered: u64,
    /// `Ack.packets_misordered`.
    pub packets_misordered: u64,
    /// `Ack.ecn_bytes`.
    pub ecn_bytes: u64,
    /// `Ack.ecn_packets`.
    pub ecn_packets: u64,
    /// `Ack.lost_pkts_sample`.
    pub lost_pkts_sample: u64,
    /// `Ack.now` and the `Micros` clock: microseconds since the datapath's time zero.
    pub now_us: u64,
    /// `Flow.was_timeout`.
    pub was_timeout: bool,
    /// `Flow.rtt_sample_us`; 0 means "no sample" and reads as +infinity.
    pub rtt_sample_us: u64,
    /// `Flow.rate_outgoing`.
    pub rate_outgoing: u64,
    /// `Flow.rate_incoming`.
    pub rate_incoming: u64,
    /// `Flow.bytes_in_flight`.
    pub bytes_in_flight: u64,
    /// `Flow.packets_in_flight`.
    pub packets_in_flight: u64,
    /// `Flow.bytes_pending`.
    pub bytes_pending: u64,
    /// The datapath's current congestion window (loaded into `Cwnd` first).
    pub cwnd: u64,
    /// The datapath's current pacing rate (loaded into `Rate` first; 0 = none).
    pub rate: u64,
}

impl Primitives {
    fn read(&self, p: Primitive) -> u64 {
        match p {
            Primitive::BytesAcked => self.bytes_acked,
            Primitive::BytesMisordered => self.bytes_misordered,
            Primitive::EcnBytes => self.ecn_bytes,
            Primitive::EcnPackets => self.ecn_packets,
            Primitive::LostPktsSample => self.lost_pkts_sample,
            Primitive::Now => self.now_us,
            Primitive::PacketsAcked => self.packets_acked,
            Primitive::PacketsMisordered => self.packets_misordered,
            Primitive::BytesInFlight => self.bytes_in_flight,
            Primitive::BytesPending => self.bytes_pending,
            Primitive::PacketsInFlight => self.packets_in_flight,
            Primitive::RateIncoming => self.rate_incoming,
            Primitive::RateOutgoing => self.rate_outgoing,
            Primitive::RttSampleUs => match self.rtt_sample_us {
                0 => u64::MAX,
                v => v,
            },
            Primitive::WasTimeout => u64::from(self.was_timeout),
        }
    }
}

/// What one invocation asks of the datapath.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// New congestion window in bytes, if set (non-zero) this invocation.
    pub cwnd: Option<u64>,
    /// New pacing rate in bytes per second, if set (non-zero) this invocation.
    pub rate: Option<u64>,
    /// A report was requested; its fields are in [`FlowState::last_report`].
    pub report: bool,
    /// Number of events whose condition held.
    pub events_fired: u32,
}

/// Why an invocation was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// `+` or `*` overflowed 64 bits.
    #[error("instruction {0}: arithmetic overflow")]
    Overflow(usize),
    /// `-` went below zero.
    #[error("instruction {0}: subtraction underflow")]
    Underflow(usize),
    /// `/` by zero.
    #[error("instruction {0}: division by zero")]
    DivByZero(usize),
    /// `ewma` with a weight above 10.
    #[error("instruction {0}: ewma weight above 10")]
    BadEwmaWeight(usize),
}

/// Why an update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Only control variables, `Cwnd` and `Rate` can be updated.
    #[error("register {0} cannot be updated (only control variables, Cwnd and Rate)")]
    NotUpdatable(Reg),
}

/// One flow's VM state: the program, its registers and the staged agent changes.
#[derive(Clone, Debug)]
pub struct FlowState {
    program: Arc<Program>,
    report: Vec<u64>,
    control: Vec<u64>,
    implicit: [u64; 6],
    tmp: [u64; MAX_TMP_REGS],
    local: [u64; MAX_LOCAL_REGS],
    timer_zero_us: u64,
    now_us: u64,
    staged_program: Option<Arc<Program>>,
    staged: Vec<(Reg, u64)>,
    last_report: Vec<u64>,
    aborts: u64,
    invocations: u64,
}

fn imm(v: u32) -> u64 {
    if v == IMM_INFINITY {
        u64::MAX
    } else {
        u64::from(v)
    }
}

fn ewma(weight: u64, old: u64, new: u64) -> Option<u64> {
    if old == 0 {
        return Some(new);
    }
    let keep = weight.checked_mul(old)?;
    let take = 10u64.checked_sub(weight)?.checked_mul(new)?;
    Some(keep.checked_add(take)? / 10)
}

fn max_wrap(a: u64, b: u64) -> u64 {
    // The larger of two 32-bit values on a circle: whichever the other reaches by the
    // shorter forward distance (libccp's MAXWRAP); 0 means "unset".
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let (a32, b32) = (a as u32, b as u32);
    let a_to_b = b32.wrapping_sub(a32);
    let b_to_a = a32.wrapping_sub(b32);
    if b_to_a < a_to_b {
        u64::from(a32)
    } else {
        u64::from(b32)
    }
}

impl FlowState {
    /// A flow running `program`, its variables at their initial values and the `Micros`
    /// timer starting at `now_us`.
    pub fn new(program: Arc<Program>, now_us: u64) -> FlowState {
        let mut st = FlowState {
            report: Vec::new(),
            control: Vec::new(),
            implicit: [0; 6],
            tmp: [0; MAX_TMP_REGS],
            local: [0; MAX_LOCAL_REGS],
            timer_zero_us: now_us,
            now_us,
            staged_program: None,
            staged: Vec::new(),
            last_report: Vec::new(),
            aborts: 0,
            invocations: 0,
            program,
        };
        st.install(now_us);
        st
    }

    fn install(&mut self, now_us: u64) {
        self.report = vec![0; self.program.report_len()];
        self.control = vec![0; self.program.control_len()];
        self.local = [0; MAX_LOCAL_REGS];
        self.tmp = [0; MAX_TMP_REGS];
        let prog = Arc::clone(&self.program);
        for d in &prog.instrs()[..prog.num_defs()] {
            if let Reg::Imm(v) = d.right {
                self.set_var(d.left, imm(v));
            }
        }
        self.timer_zero_us = now_us;
        self.implicit[Implicit::Micros as usize] = 0;
    }

    fn set_var(&mut self, r: Reg, v: u64) {
        match r {
            Reg::Report { index, .. } => {
                if let Some(s) = self.report.get_mut(usize::from(index)) {
                    *s = v;
                }
            }
            Reg::Control { index, .. } => {
                if let Some(s) = self.control.get_mut(usize::from(index)) {
                    *s = v;
                }
            }
            _ => {}
        }
    }

    /// The running program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Invocations aborted by an arithmetic fault so far.
    pub fn aborts(&self) -> u64 {
        self.aborts
    }

    /// Invocations so far (aborted ones included).
    pub fn invocations(&self) -> u64 {
        self.invocations
    }

    /// The fields of the last report, in report-variable order (empty before the first).
    pub fn last_report(&self) -> &[u64] {
        &self.last_report
    }

    /// The current value of a register (`None` for temporaries and out-of-range indices).
    pub fn read(&self, r: Reg) -> Option<u64> {
        Some(match r {
            Reg::Report { index, .. } => *self.report.get(usize::from(index))?,
            Reg::Control { index, .. } => *self.control.get(usize::from(index))?,
            Reg::Local(i) => *self.local.get(usize::from(i))?,
            Reg::Implicit(i) => self.implicit[i as usize],
            Reg::Imm(v) => imm(v),
            Reg::Primitive(_) | Reg::Tmp(_) => return None,
        })
    }

    /// Stages an agent update (libccp UPDATE_FIELD) of a control variable, `Cwnd` or
    /// `Rate`, applied at the start of the next invocation.
    pub fn stage_update(&mut self, reg: Reg, value: u64) -> Result<(), UpdateError> {
        if !reg.is_updatable() {
            return Err(UpdateError::NotUpdatable(reg));
        }
        if let Some(slot) = self.staged.iter_mut().find(|(r, _)| *r == reg) {
            slot.1 = value;
        } else {
            self.staged.push((reg, value));
        }
        Ok(())
    }

    /// Stages a program change (libccp CHANGE_PROG): at the next invocation the new
    /// program's variables start at their initial values and the timer restarts. Updates
    /// staged before this call are dropped; stage the change's updates after it.
    pub fn stage_program(&mut self, program: Arc<Program>) {
        self.staged.clear();
        self.staged_program = Some(program);
    }

    /// Runs the program for one ACK or timeout.
    pub fn on_event(&mut self, prims: &Primitives) -> Result<Outcome, VmError> {
        self.invocations += 1;
        self.now_us = prims.now_us;
        self.implicit[Implicit::Cwnd as usize] = prims.cwnd;
        self.implicit[Implicit::Rate as usize] = prims.rate;
        let mut out = Outcome::default();
        if let Some(p) = self.staged_program.take() {
            self.program = p;
            self.install(prims.now_us);
        }
        for (reg, v) in std::mem::take(&mut self.staged) {
            match reg {
                Reg::Implicit(i @ (Implicit::Cwnd | Implicit::Rate)) => {
                    self.implicit[i as usize] = v;
                    if v != 0 {
                        if i == Implicit::Cwnd {
                            out.cwnd = Some(v);
                        } else {
                            out.rate = Some(v);
                        }
                    }
                }
                other => self.set_var(other, v),
            }
        }
        let start_cwnd = self.implicit[Implicit::Cwnd as usize];
        let start_rate = self.implicit[Implicit::Rate as usize];
        self.implicit[Implicit::EventFlag as usize] = 0;
        self.implicit[Implicit::ShouldFallthrough as usize] = 0;
        self.implicit[Implicit::ShouldReport as usize] = 0;
        self.implicit[Implicit::Micros as usize] = prims.now_us.saturating_sub(self.timer_zero_us);
        let mut cwnd_written = false;
        let mut rate_written = false;
        let prog = Arc::clone(&self.program);
        for ev in prog.events() {
            self.implicit[Implicit::EventFlag as usize] = 0;
            let flag = range(ev.flag_idx, ev.num_flag_instrs);
            if let Err(e) = self.run(&prog, flag, prims, &mut cwnd_written, &mut rate_written) {
                self.aborts += 1;
                return Err(e);
            }
            if self.implicit[Implicit::EventFlag as usize] != 0 {
                out.events_fired += 1;
                let body = range(ev.body_idx, ev.num_body_instrs);
                if let Err(e) = self.run(&prog, body, prims, &mut cwnd_written, &mut rate_written) {
                    self.aborts += 1;
                    return Err(e);
                }
                // Re-read the flag: the body may have rewritten it (as in libccp).
                if self.implicit[Implicit::EventFlag as usize] != 0
                    && self.implicit[Implicit::ShouldFallthrough as usize] == 0
                {
                    break;
                }
            }
        }
        let cwnd = self.implicit[Implicit::Cwnd as usize];
        if cwnd != 0 && (cwnd_written || cwnd != start_cwnd) {
            out.cwnd = Some(cwnd);
        }
        let rate = self.implicit[Implicit::Rate as usize];
        if rate != 0 && (rate_written || rate != start_rate) {
            out.rate = Some(rate);
        }
        if self.implicit[Implicit::ShouldReport as usize] != 0 {
            out.report = true;
            let n = prog.num_report_fields().min(self.report.len());
            self.last_report.clear();
            self.last_report.extend_from_slice(&self.report[..n]);
            self.reset_volatile(&prog);
        }
        Ok(out)
    }

    fn reset_volatile(&mut self, prog: &Program) {
        for d in &prog.instrs()[..prog.num_defs()] {
            let volatile = matches!(
                d.left,
                Reg::Report { volatile: true, .. } | Reg::Control { volatile: true, .. }
            );
            if let (true, Reg::Imm(v)) = (volatile, d.right) {
                self.set_var(d.left, imm(v));
            }
        }
    }

    fn get(&self, r: Reg, prims: &Primitives) -> u64 {
        match r {
            Reg::Imm(v) => imm(v),
            Reg::Primitive(p) => prims.read(p),
            Reg::Tmp(i) => self.tmp.get(usize::from(i)).copied().unwrap_or(0),
            other => self.read(other).unwrap_or(0),
        }
    }

    fn put(&mut self, r: Reg, v: u64, cwnd_w: &mut bool, rate_w: &mut bool) {
        match r {
            Reg::Tmp(i) => {
                if let Some(s) = self.tmp.get_mut(usize::from(i)) {
                    *s = v;
                }
            }
            Reg::Local(i) => {
                if let Some(s) = self.local.get_mut(usize::from(i)) {
                    *s = v;
                }
            }
            Reg::Implicit(Implicit::Micros) => {
                self.timer_zero_us = self.now_us.saturating_sub(v);
                self.implicit[Implicit::Micros as usize] = v;
            }
            Reg::Implicit(i) => {
                *cwnd_w |= i == Implicit::Cwnd;
                *rate_w |= i == Implicit::Rate;
                self.implicit[i as usize] = v;
            }
            Reg::Report { .. } | Reg::Control { .. } => self.set_var(r, v),
            Reg::Imm(_) | Reg::Primitive(_) => {}
        }
    }

    fn run(
        &mut self,
        prog: &Program,
        range: std::ops::Range<usize>,
        prims: &Primitives,
        cwnd_w: &mut bool,
        rate_w: &mut bool,
    ) -> Result<(), VmError> {
        let instrs = prog.instrs().get(range.clone()).unwrap_or(&[]);
        for (k, ins) in instrs.iter().enumerate() {
            let at = range.start + k;
            let a = self.get(ins.left, prims);
            let b = self.get(ins.right, prims);
            let v = match ins.op {
                Op::Add => a.checked_add(b).ok_or(VmError::Overflow(at))?,
                Op::Sub => a.checked_sub(b).ok_or(VmError::Underflow(at))?,
                Op::Mul => a.checked_mul(b).ok_or(VmError::Overflow(at))?,
                Op::Div => a.checked_div(b).ok_or(VmError::DivByZero(at))?,
                Op::Equiv => u64::from(a == b),
                Op::Gt => u64::from(a > b),
                Op::Lt => u64::from(a < b),
                Op::Max => a.max(b),
                Op::Min => a.min(b),
                Op::MaxWrap => max_wrap(a, b),
                Op::Bind => b,
                Op::Ewma => {
                    if a > 10 {
                        return Err(VmError::BadEwmaWeight(at));
                    }
                    let old = self.get(ins.res, prims);
                    ewma(a, old, b).ok_or(VmError::Overflow(at))?
                }
                Op::If | Op::NotIf => {
                    if (a != 0) != (ins.op == Op::If) {
                        continue;
                    }
                    b
                }
                Op::Def => continue,
            };
            self.put(ins.res, v, cwnd_w, rate_w);
        }
        Ok(())
    }
}

fn range(start: u32, len: u32) -> std::ops::Range<usize> {
    let s = start as usize;
    s..s.saturating_add(len as usize)
}
