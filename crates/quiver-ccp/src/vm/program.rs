//! The compiled datapath program: libccp's representation and its binary encoding.
//!
//! A [`Program`] is a list of [`Event`]s (one per `when` clause: a range of instructions
//! that computes the condition into the event-flag register, and a range that runs when it
//! is true) over one flat list of [`Instr`]s. The list starts with a preamble of `DEF`
//! instructions that declare the report and control variables with their initial values.
//!
//! # Wire format (little-endian, as libccp's `InstallExpressionMsg` after `program_uid`)
//! ```text
//! u32 num_events | u32 num_instrs | num_events × Event (16 B) | num_instrs × Instr (16 B)
//! Event: u32 flag_idx | u32 num_flag_instrs | u32 body_idx | u32 num_body_instrs
//! Instr: u8 op | u8 res_type u32 res | u8 left_type u32 left | u8 right_type u32 right
//! ```
//! Register types: 0 control, 1 immediate, 2 implicit, 3 local, 4 primitive,
//! 5 volatile report, 6 report, 7 temporary, 8 volatile control. An immediate is a `u32`;
//! `0xffff_ffff` means "+infinity" and reads as `u64::MAX`.

use std::fmt;

/// Most events in one program (libccp's `MAX_EXPRESSIONS`).
pub const MAX_EVENTS: usize = 256;
/// Most instructions in one program, preamble included (libccp's `MAX_INSTRUCTIONS`).
pub const MAX_INSTRS: usize = 256;
/// Most report variables (libccp's `MAX_REPORT_REG`).
pub const MAX_REPORT_REGS: usize = 110;
/// Most control (non-report state) variables (libccp's `MAX_CONTROL_REG`).
pub const MAX_CONTROL_REGS: usize = 110;
/// Temporary registers available to one statement (libccp's `MAX_TMP_REG`).
pub const MAX_TMP_REGS: usize = 8;
/// Local registers (libccp's `MAX_LOCAL_REG`).
pub const MAX_LOCAL_REGS: usize = 8;
/// The immediate value that stands for "+infinity" (`u64::MAX` when read).
pub const IMM_INFINITY: u32 = u32::MAX;
/// Encoded size of one event.
pub const EVENT_LEN: usize = 16;
/// Encoded size of one instruction.
pub const INSTR_LEN: usize = 16;

/// An instruction's operation (libccp opcode in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// `res = left + right` (0); overflow aborts.
    Add = 0,
    /// `res = right` (1).
    Bind = 1,
    /// Declares `left` with initial value `right` (2); only in the preamble.
    Def = 2,
    /// `res = left / right` (3); division by zero aborts.
    Div = 3,
    /// `res = (left == right)` (4).
    Equiv = 4,
    /// `res = (res * left + right * (10 - left)) / 10`, or `right` if `res` is 0 (5).
    Ewma = 5,
    /// `res = (left > right)` (6).
    Gt = 6,
    /// `if left != 0 { res = right }` (7).
    If = 7,
    /// `res = (left < right)` (8).
    Lt = 8,
    /// `res = max(left, right)` (9).
    Max = 9,
    /// Maximum of two 32-bit sequence-like values with wraparound (10).
    MaxWrap = 10,
    /// `res = min(left, right)` (11).
    Min = 11,
    /// `res = left * right` (12); overflow aborts.
    Mul = 12,
    /// `if left == 0 { res = right }` (13).
    NotIf = 13,
    /// `res = left - right` (14); underflow aborts.
    Sub = 14,
}

impl Op {
    /// The libccp opcode.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The operation with libccp opcode `code`.
    pub fn from_code(code: u8) -> Option<Op> {
        Some(match code {
            0 => Op::Add,
            1 => Op::Bind,
            2 => Op::Def,
            3 => Op::Div,
            4 => Op::Equiv,
            5 => Op::Ewma,
            6 => Op::Gt,
            7 => Op::If,
            8 => Op::Lt,
            9 => Op::Max,
            10 => Op::MaxWrap,
            11 => Op::Min,
            12 => Op::Mul,
            13 => Op::NotIf,
            14 => Op::Sub,
            _ => return None,
        })
    }
}

/// The measurement primitives a datapath provides per ACK (libccp index in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Primitive {
    /// `Ack.bytes_acked` (0).
    BytesAcked = 0,
    /// `Ack.bytes_misordered` (1).
    BytesMisordered = 1,
    /// `Ack.ecn_bytes` (2).
    EcnBytes = 2,
    /// `Ack.ecn_packets` (3).
    EcnPackets = 3,
    /// `Ack.lost_pkts_sample` (4).
    LostPktsSample = 4,
    /// `Ack.now` (5): microseconds since the datapath's time zero.
    Now = 5,
    /// `Ack.packets_acked` (6).
    PacketsAcked = 6,
    /// `Ack.packets_misordered` (7).
    PacketsMisordered = 7,
    /// `Flow.bytes_in_flight` (8).
    BytesInFlight = 8,
    /// `Flow.bytes_pending` (9).
    BytesPending = 9,
    /// `Flow.packets_in_flight` (10).
    PacketsInFlight = 10,
    /// `Flow.rate_incoming` (11), bytes per second.
    RateIncoming = 11,
    /// `Flow.rate_outgoing` (12), bytes per second.
    RateOutgoing = 12,
    /// `Flow.rtt_sample_us` (13); reads as +infinity when there is no sample (0).
    RttSampleUs = 13,
    /// `Flow.was_timeout` (14), a boolean.
    WasTimeout = 14,
}

impl Primitive {
    /// Every primitive, in index order.
    pub const ALL: [Primitive; 15] = [
        Primitive::BytesAcked,
        Primitive::BytesMisordered,
        Primitive::EcnBytes,
        Primitive::EcnPackets,
        Primitive::LostPktsSample,
        Primitive::Now,
        Primitive::PacketsAcked,
        Primitive::PacketsMisordered,
        Primitive::BytesInFlight,
        Primitive::BytesPending,
        Primitive::PacketsInFlight,
        Primitive::RateIncoming,
        Primitive::RateOutgoing,
        Primitive::RttSampleUs,
        Primitive::WasTimeout,
    ];

    /// The name in the language, e.g. `Ack.bytes_acked`.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::BytesAcked => "Ack.bytes_acked",
            Primitive::BytesMisordered => "Ack.bytes_misordered",
            Primitive::EcnBytes => "Ack.ecn_bytes",
            Primitive::EcnPackets => "Ack.ecn_packets",
            Primitive::LostPktsSample => "Ack.lost_pkts_sample",
            Primitive::Now => "Ack.now",
            Primitive::PacketsAcked => "Ack.packets_acked",
            Primitive::PacketsMisordered => "Ack.packets_misordered",
            Primitive::BytesInFlight => "Flow.bytes_in_flight",
            Primitive::BytesPending => "Flow.bytes_pending",
            Primitive::PacketsInFlight => "Flow.packets_in_flight",
            Primitive::RateIncoming => "Flow.rate_incoming",
            Primitive::RateOutgoing => "Flow.rate_outgoing",
            Primitive::RttSampleUs => "Flow.rtt_sample_us",
            Primitive::WasTimeout => "Flow.was_timeout",
        }
    }

    /// Whether the primitive is a boolean (only `Flow.was_timeout`).
    pub fn is_bool(self) -> bool {
        self == Primitive::WasTimeout
    }

    /// The primitive with libccp index `index`.
    pub fn from_index(index: u32) -> Option<Primitive> {
        Primitive::ALL.get(usize::try_from(index).ok()?).copied()
    }
}

/// The implicit registers (libccp index in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Implicit {
    /// The condition result of the current event (0).
    EventFlag = 0,
    /// Set by `(fallthrough)`: evaluate the next event too (1).
    ShouldFallthrough = 1,
    /// Set by `(report)`: send the report variables to the agent (2).
    ShouldReport = 2,
    /// `Micros`: microseconds since the timer was last reset (3). Writing resets it.
    Micros = 3,
    /// `Cwnd`: the congestion window in bytes (4).
    Cwnd = 4,
    /// `Rate`: the pacing rate in bytes per second (5).
    Rate = 5,
}

impl Implicit {
    /// The implicit register with libccp index `index`.
    pub fn from_index(index: u32) -> Option<Implicit> {
        Some(match index {
            0 => Implicit::EventFlag,
            1 => Implicit::ShouldFallthrough,
            2 => Implicit::ShouldReport,
            3 => Implicit::Micros,
            4 => Implicit::Cwnd,
            5 => Implicit::Rate,
            _ => return None,
        })
    }
}

/// A register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    /// A control (state) variable; volatile ones are reset to their initial value on report.
    Control {
        /// Index, below [`MAX_CONTROL_REGS`].
        index: u8,
        /// Reset on report.
        volatile: bool,
    },
    /// An immediate; [`IMM_INFINITY`] reads as `u64::MAX`.
    Imm(u32),
    /// An implicit register.
    Implicit(Implicit),
    /// A local variable (assigned in a `when` body, kept across invocations).
    Local(u8),
    /// A read-only measurement primitive.
    Primitive(Primitive),
    /// A report variable, sent to the agent on `(report)`.
    Report {
        /// Index, below [`MAX_REPORT_REGS`]; the position in the report.
        index: u8,
        /// Reset on report.
        volatile: bool,
    },
    /// A temporary of the current statement.
    Tmp(u8),
}

impl Reg {
    /// The libccp register type code.
    pub fn type_code(self) -> u8 {
        match self {
            Reg::Control {
                volatile: false, ..
            } => 0,
            Reg::Imm(_) => 1,
            Reg::Implicit(_) => 2,
            Reg::Local(_) => 3,
            Reg::Primitive(_) => 4,
            Reg::Report { volatile: true, .. } => 5,
            Reg::Report {
                volatile: false, ..
            } => 6,
            Reg::Tmp(_) => 7,
            Reg::Control { volatile: true, .. } => 8,
        }
    }

    /// The register's `u32` field on the wire (index, or the immediate's value).
    pub fn wire_value(self) -> u32 {
        match self {
            Reg::Control { index, .. } | Reg::Report { index, .. } => u32::from(index),
            Reg::Imm(v) => v,
            Reg::Implicit(i) => i as u32,
            Reg::Local(i) | Reg::Tmp(i) => u32::from(i),
            Reg::Primitive(p) => p as u32,
        }
    }

    /// Parses a register from its wire type and value, checking the index limits.
    pub fn from_wire(type_code: u8, value: u32) -> Result<Reg, DecodeError> {
        let bad = || DecodeError::BadRegister { type_code, value };
        let idx = |max: usize| -> Result<u8, DecodeError> {
            let i = usize::try_from(value).map_err(|_| bad())?;
            if i < max {
                u8::try_from(i).map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        Ok(match type_code {
            0 => Reg::Control {
                index: idx(MAX_CONTROL_REGS)?,
                volatile: false,
            },
            1 => Reg::Imm(value),
            2 => Reg::Implicit(Implicit::from_index(value).ok_or_else(bad)?),
            3 => Reg::Local(idx(MAX_LOCAL_REGS)?),
            4 => Reg::Primitive(Primitive::from_index(value).ok_or_else(bad)?),
            5 => Reg::Report {
                index: idx(MAX_REPORT_REGS)?,
                volatile: true,
            },
            6 => Reg::Report {
                index: idx(MAX_REPORT_REGS)?,
                volatile: false,
            },
            7 => Reg::Tmp(idx(MAX_TMP_REGS)?),
            8 => Reg::Control {
                index: idx(MAX_CONTROL_REGS)?,
                volatile: true,
            },
            _ => return Err(bad()),
        })
    }

    /// Whether an instruction may write this register.
    pub fn is_writable(self) -> bool {
        match self {
            Reg::Imm(_) | Reg::Primitive(_) => false,
            Reg::Control { .. }
            | Reg::Implicit(_)
            | Reg::Local(_)
            | Reg::Report { .. }
            | Reg::Tmp(_) => true,
        }
    }

    /// Whether the agent may change this register with an update (control variables,
    /// `Cwnd` and `Rate`, as libccp's UPDATE_FIELD).
    pub fn is_updatable(self) -> bool {
        matches!(
            self,
            Reg::Control { .. } | Reg::Implicit(Implicit::Cwnd) | Reg::Implicit(Implicit::Rate)
        )
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reg::Control { index, volatile } => {
                write!(f, "{}ctl{index}", if volatile { "v" } else { "" })
            }
            Reg::Imm(IMM_INFINITY) => f.write_str("+infinity"),
            Reg::Imm(v) => write!(f, "{v}"),
            Reg::Implicit(i) => write!(f, "{i:?}"),
            Reg::Local(i) => write!(f, "local{i}"),
            Reg::Primitive(p) => f.write_str(p.name()),
            Reg::Report { index, volatile } => {
                write!(f, "{}report{index}", if volatile { "v" } else { "" })
            }
            Reg::Tmp(i) => write!(f, "tmp{i}"),
        }
    }
}

/// One instruction: `res <- op(left, right)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instr {
    /// Operation.
    pub op: Op,
    /// Result register.
    pub res: Reg,
    /// Left operand.
    pub left: Reg,
    /// Right operand.
    pub right: Reg,
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} <- {:?} {} {}",
            self.res, self.op, self.left, self.right
        )
    }
}

/// One `when` clause: the condition's instruction range and the body's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// First condition instruction.
    pub flag_idx: u32,
    /// Number of condition instructions.
    pub num_flag_instrs: u32,
    /// First body instruction.
    pub body_idx: u32,
    /// Number of body instructions.
    pub num_body_instrs: u32,
}

/// Why bytes or parts do not form a valid program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the announced events/instructions.
    #[error("program truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header announces.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// Bytes after the last instruction.
    #[error("{0} trailing bytes after the program")]
    TrailingBytes(usize),
    /// More events than [`MAX_EVENTS`].
    #[error("too many events: {0} (max {MAX_EVENTS})")]
    TooManyEvents(u64),
    /// More instructions than [`MAX_INSTRS`].
    #[error("too many instructions: {0} (max {MAX_INSTRS})")]
    TooManyInstrs(u64),
    /// Unknown opcode.
    #[error("instruction {index}: unknown opcode {code}")]
    BadOpcode {
        /// Instruction index.
        index: usize,
        /// The opcode byte.
        code: u8,
    },
    /// Unknown register type or index out of range.
    #[error("bad register: type {type_code}, value {value}")]
    BadRegister {
        /// Register type byte.
        type_code: u8,
        /// Index or immediate.
        value: u32,
    },
    /// An instruction writes a read-only register (an immediate or a primitive).
    #[error("instruction {0} writes a read-only register")]
    ReadOnlyWrite(usize),
    /// A `DEF` is not in the preamble, or is malformed.
    #[error("instruction {0}: DEF outside the preamble or not on a report/control variable")]
    BadDef(usize),
    /// An event's range leaves the instruction list or overlaps the preamble.
    #[error("event {0}: instruction range out of bounds")]
    BadEventRange(usize),
}

/// A validated datapath program (see the module docs for its layout).
///
/// Built by [`crate::lang::compile`] (which also records variable names) or by
/// [`Program::decode`] from an INSTALL message. Every instance has passed
/// [`Program::new`]'s checks, so the VM needs no bounds checks that could fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    events: Vec<Event>,
    instrs: Vec<Instr>,
    num_defs: usize,
    report_len: usize,
    control_len: usize,
    names: Vec<(String, Reg)>,
}

impl Program {
    /// Checks and builds a program from events and instructions (no variable names).
    pub fn new(events: Vec<Event>, instrs: Vec<Instr>) -> Result<Program, DecodeError> {
        if events.len() > MAX_EVENTS {
            return Err(DecodeError::TooManyEvents(events.len() as u64));
        }
        if instrs.len() > MAX_INSTRS {
            return Err(DecodeError::TooManyInstrs(instrs.len() as u64));
        }
        let num_defs = instrs.iter().take_while(|i| i.op == Op::Def).count();
        let mut report_len = 0usize;
        let mut control_len = 0usize;
        for (n, ins) in instrs.iter().enumerate() {
            if ins.op == Op::Def {
                let ok = n < num_defs
                    && ins.res == ins.left
                    && matches!(ins.left, Reg::Report { .. } | Reg::Control { .. })
                    && matches!(ins.right, Reg::Imm(_));
                if !ok {
                    return Err(DecodeError::BadDef(n));
                }
            } else if !ins.res.is_writable() {
                return Err(DecodeError::ReadOnlyWrite(n));
            }
            for r in [ins.res, ins.left, ins.right] {
                match r {
                    Reg::Report { index, .. } => {
                        report_len = report_len.max(usize::from(index) + 1)
                    }
                    Reg::Control { index, .. } => {
                        control_len = control_len.max(usize::from(index) + 1)
                    }
                    _ => {}
                }
            }
        }
        // libccp reports as many fields as there are report DEFs.
        let report_defs = instrs[..num_defs]
            .iter()
            .filter(|i| matches!(i.left, Reg::Report { .. }))
            .count();
        report_len = report_len.max(report_defs);
        for (n, ev) in events.iter().enumerate() {
            let in_range = |start: u32, len: u32| {
                let (Ok(s), Ok(l)) = (usize::try_from(start), usize::try_from(len)) else {
                    return false;
                };
                s >= num_defs && s.checked_add(l).is_some_and(|e| e <= instrs.len())
            };
            if !in_range(ev.flag_idx, ev.num_flag_instrs)
                || !in_range(ev.body_idx, ev.num_body_instrs)
            {
                return Err(DecodeError::BadEventRange(n));
            }
        }
        Ok(Program {
            events,
            instrs,
            num_defs,
            report_len,
            control_len,
            names: Vec::new(),
        })
    }

    /// Attaches the variable-name table (used by the compiler).
    pub(crate) fn with_names(mut self, names: Vec<(String, Reg)>) -> Program {
        self.names = names;
        self
    }

    /// The events (one per `when` clause), in evaluation order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// All instructions, the `DEF` preamble first.
    pub fn instrs(&self) -> &[Instr] {
        &self.instrs
    }

    /// Number of `DEF` instructions at the start.
    pub fn num_defs(&self) -> usize {
        self.num_defs
    }

    /// Number of fields in a report (libccp: the number of report `DEF`s).
    pub fn num_report_fields(&self) -> usize {
        self.instrs[..self.num_defs]
            .iter()
            .filter(|i| matches!(i.left, Reg::Report { .. }))
            .count()
    }

    pub(crate) fn report_len(&self) -> usize {
        self.report_len
    }

    pub(crate) fn control_len(&self) -> usize {
        self.control_len
    }

    /// Named variables and registers of a compiled program (empty for a decoded one):
    /// report variables as `Report.x`, control variables, locals, `Cwnd`, `Rate`, `Micros`.
    pub fn names(&self) -> &[(String, Reg)] {
        &self.names
    }

    /// The register named `name` (`Report.x`, a control variable, `Cwnd`, `Rate`, ...).
    pub fn reg_of(&self, name: &str) -> Option<Reg> {
        self.names.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
    }

    /// Position of report variable `name` (with or without the `Report.` prefix) in a
    /// report's fields.
    pub fn report_field_index(&self, name: &str) -> Option<usize> {
        let full;
        let name = if name.starts_with("Report.") {
            name
        } else {
            full = format!("Report.{name}");
            &full
        };
        match self.reg_of(name)? {
            Reg::Report { index, .. } => Some(usize::from(index)),
            _ => None,
        }
    }

    /// The register an agent update of `name` targets: a control variable, `Cwnd` or
    /// `Rate` (report variables and `Micros` cannot be updated, as in libccp).
    pub fn update_target(&self, name: &str) -> Option<Reg> {
        self.reg_of(name).filter(|r| r.is_updatable())
    }

    /// Length of [`Program::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        8 + self.events.len() * EVENT_LEN + self.instrs.len() * INSTR_LEN
    }

    /// Encodes as libccp's INSTALL body after `program_uid`:
    /// `num_events`, `num_instrs`, the events, the instructions.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends [`Program::encode`]'s output to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Lengths are bounded by MAX_EVENTS / MAX_INSTRS, so they fit in u32.
        out.extend_from_slice(&(self.events.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.instrs.len() as u32).to_le_bytes());
        for e in &self.events {
            for v in [e.flag_idx, e.num_flag_instrs, e.body_idx, e.num_body_instrs] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for i in &self.instrs {
            out.push(i.op.code());
            for r in [i.res, i.left, i.right] {
                out.push(r.type_code());
                out.extend_from_slice(&r.wire_value().to_le_bytes());
            }
        }
    }

    /// Decodes [`Program::encode`]'s format, checking lengths, limits, opcodes, registers
    /// and event ranges. Never panics.
    pub fn decode(buf: &[u8]) -> Result<Program, DecodeError> {
        let rd = |at: usize| -> Option<u32> {
            let b = buf.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (Some(ne), Some(ni)) = (rd(0), rd(4)) else {
            return Err(DecodeError::Truncated {
                needed: 8,
                have: buf.len(),
            });
        };
        if ne as usize > MAX_EVENTS {
            return Err(DecodeError::TooManyEvents(u64::from(ne)));
        }
        if ni as usize > MAX_INSTRS {
            return Err(DecodeError::TooManyInstrs(u64::from(ni)));
        }
        let (ne, ni) = (ne as usize, ni as usize);
        let needed = 8 + ne * EVENT_LEN + ni * INSTR_LEN;
        if buf.len() < needed {
            return Err(DecodeError::Truncated {
                needed,
                have: buf.len(),
            });
        }
        if buf.len() > needed {
            return Err(DecodeError::TrailingBytes(buf.len() - needed));
        }
        let mut events = Vec::with_capacity(ne);
        for k in 0..ne {
            let at = 8 + k * EVENT_LEN;
            let f = |o: usize| rd(at + o).unwrap_or(0);
            events.push(Event {
                flag_idx: f(0),
                num_flag_instrs: f(4),
                body_idx: f(8),
                num_body_instrs: f(12),
            });
        }
        let base = 8 + ne * EVENT_LEN;
        let mut instrs = Vec::with_capacity(ni);
        for k in 0..ni {
            let b = &buf[base + k * INSTR_LEN..base + (k + 1) * INSTR_LEN];
            let op = Op::from_code(b[0]).ok_or(DecodeError::BadOpcode {
                index: k,
                code: b[0],
            })?;
            let reg = |o: usize| {
                Reg::from_wire(
                    b[o],
                    u32::from_le_bytes([b[o + 1], b[o + 2], b[o + 3], b[o + 4]]),
                )
            };
            instrs.push(Instr {
                op,
                res: reg(1)?,
                left: reg(6)?,
                right: reg(11)?,
            });
        }
        Program::new(events, instrs)
    }
}

impl fmt::Display for Program {
    /// A readable listing: the preamble, then each event's condition and body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in &self.instrs[..self.num_defs] {
            writeln!(f, "def {} = {}", i.left, i.right)?;
        }
        for (n, e) in self.events.iter().enumerate() {
            writeln!(f, "event {n}:")?;
            let range = |s: u32, l: u32| (s as usize)..(s as usize + l as usize);
            for i in &self.instrs[range(e.flag_idx, e.num_flag_instrs)] {
                writeln!(f, "  cond  {i}")?;
            }
            for i in &self.instrs[range(e.body_idx, e.num_body_instrs)] {
                writeln!(f, "  body  {i}")?;
            }
        }
        Ok(())
    }
}

impl TryFrom<&crate::wire::ProgramSection> for Program {
    type Error = DecodeError;

    /// Checks the raw program section of an INSTALL message (opcodes, registers, limits,
    /// event ranges) and builds a runnable program.
    fn try_from(s: &crate::wire::ProgramSection) -> Result<Program, DecodeError> {
        if s.expressions.len() > MAX_EVENTS {
            return Err(DecodeError::TooManyEvents(s.expressions.len() as u64));
        }
        if s.instructions.len() > MAX_INSTRS {
            return Err(DecodeError::TooManyInstrs(s.instructions.len() as u64));
        }
        let events = s
            .expressions
            .iter()
            .map(|e| Event {
                flag_idx: e.cond_start,
                num_flag_instrs: e.num_cond,
                body_idx: e.event_start,
                num_body_instrs: e.num_event,
            })
            .collect();
        let mut instrs = Vec::with_capacity(s.instructions.len());
        for (index, i) in s.instructions.iter().enumerate() {
            let op = Op::from_code(i.op).ok_or(DecodeError::BadOpcode { index, code: i.op })?;
            let reg = |o: crate::wire::Operand| Reg::from_wire(o.typ, o.index);
            instrs.push(Instr {
                op,
                res: reg(i.result)?,
                left: reg(i.left)?,
                right: reg(i.right)?,
            });
        }
        Program::new(events, instrs)
    }
}

impl From<&Program> for crate::wire::ProgramSection {
    /// The program as the raw section an INSTALL message carries.
    fn from(p: &Program) -> crate::wire::ProgramSection {
        let op = |r: Reg| crate::wire::Operand {
            typ: r.type_code(),
            index: r.wire_value(),
        };
        crate::wire::ProgramSection {
            expressions: p
                .events
                .iter()
                .map(|e| crate::wire::Expression {
                    cond_start: e.flag_idx,
                    num_cond: e.num_flag_instrs,
                    event_start: e.body_idx,
                    num_event: e.num_body_instrs,
                })
                .collect(),
            instructions: p
                .instrs
                .iter()
                .map(|i| crate::wire::Instruction {
                    op: i.op.code(),
                    result: op(i.res),
                    left: op(i.left),
                    right: op(i.right),
                })
                .collect(),
        }
    }
}
