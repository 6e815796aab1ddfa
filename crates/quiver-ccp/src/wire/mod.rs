//! The libccp message codec: what the datapath and the agent exchange.
//!
//! Every message is one datagram starting with libccp's 8-byte header, little endian:
//!
//! ```text
//! | type u16 | len u16 (whole message, header included) | socket id u32 |
//! ```
//!
//! followed by a body whose layout depends on the type (libccp `serialize.h`; portus
//! `src/serialize`):
//!
//! | type | name | direction | body |
//! |---|---|---|---|
//! | 0 | [`Create`] | datapath → agent | 6 × u32 (init_cwnd, mss, src_ip, src_port, dst_ip, dst_port), 64-byte NUL-padded algorithm name |
//! | 1 | [`Measure`] | datapath → agent | program uid u32, field count u32, count × u64 |
//! | 2 | [`Install`] | agent → datapath | program uid u32, then the program section ([`ProgramSection`]) |
//! | 3 | [`UpdateFields`] | agent → datapath | count u32, count × (reg type u8, reg index u32, value u64) |
//! | 4 | [`ChangeProg`] | agent → datapath | program uid u32, count u32, count × update as above |
//! | 5 | [`Ready`] | datapath → agent | datapath id u32 |
//!
//! Unlike libccp, decoding never trusts a length: the header length must match the
//! datagram, every count is checked against libccp's limits and against the bytes present
//! before anything is read, and any violation is a typed [`DecodeError`]. No input panics
//! (property tests and a seeded fuzz pass in this module's tests).
//!
//! Versioning: libccp's wire format carries no version field; this module implements
//! [`WIRE_VERSION`] 1, libccp 1.x / portus 0.6–0.9. Types above 5 decode as
//! [`Body::Unknown`] (as portus does) so that an extension type does not break a peer.

use thiserror::Error;

#[cfg(test)]
mod tests;

/// The libccp wire-format revision implemented here (libccp 1.x, portus 0.6–0.9).
pub const WIRE_VERSION: u32 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// Size of the fixed algorithm-name field of CREATE (libccp `MAX_CONG_ALG_SIZE`).
pub const ALG_NAME_LEN: usize = 64;
/// Most fields a MEASURE message may carry (libccp `MAX_REPORT_REG`).
pub const MAX_REPORT_FIELDS: usize = 110;
/// Most updates in UPDATE_FIELDS / CHANGE_PROG (libccp `MAX_MUTABLE_REG`).
pub const MAX_UPDATES: usize = 222;
/// Most expressions (when-clauses) in a program (libccp `MAX_EXPRESSIONS`).
pub const MAX_EXPRESSIONS: usize = 256;
/// Most instructions in a program (libccp `MAX_INSTRUCTIONS`).
pub const MAX_INSTRUCTIONS: usize = 256;
/// Encoded size of one expression (4 × u32).
pub const EXPRESSION_LEN: usize = 16;
/// Encoded size of one instruction (op u8 + 3 × (type u8, index u32), packed).
pub const INSTRUCTION_LEN: usize = 16;
/// Encoded size of one register update (type u8, index u32, value u64; packed).
pub const UPDATE_LEN: usize = 13;

/// Message type numbers (the header's type field).
pub mod msg_type {
    /// Datapath → agent: a new flow.
    pub const CREATE: u16 = 0;
    /// Datapath → agent: a report.
    pub const MEASURE: u16 = 1;
    /// Agent → datapath: install a program (datapath-wide).
    pub const INSTALL_EXPR: u16 = 2;
    /// Agent → datapath: set registers of one flow.
    pub const UPDATE_FIELDS: u16 = 3;
    /// Agent → datapath: switch one flow to an installed program.
    pub const CHANGE_PROG: u16 = 4;
    /// Datapath → agent: the datapath (re)started.
    pub const READY: u16 = 5;
}

/// Register types as libccp numbers them (`ccp_priv.h`).
pub mod reg_type {
    /// A program variable that keeps its value across reports.
    pub const NONVOLATILE_CONTROL: u8 = 0;
    /// An immediate value (instructions only).
    pub const IMMEDIATE: u8 = 1;
    /// An implicit register: `Cwnd`, `Rate`, `Micros`, flags.
    pub const IMPLICIT: u8 = 2;
    /// A local (bind) register.
    pub const LOCAL: u8 = 3;
    /// A primitive (`Ack.*`, `Flow.*`).
    pub const PRIMITIVE: u8 = 4;
    /// A report field reset after each report.
    pub const VOLATILE_REPORT: u8 = 5;
    /// A report field kept across reports.
    pub const NONVOLATILE_REPORT: u8 = 6;
    /// A temporary register.
    pub const TMP: u8 = 7;
    /// A program variable reset after each report.
    pub const VOLATILE_CONTROL: u8 = 8;
}

/// Implicit register indexes (libccp `ccp_priv.h`).
pub mod implicit {
    /// The current when-clause's condition flag.
    pub const EXPR_FLAG: u32 = 0;
    /// `(fallthrough)` was executed.
    pub const SHOULD_FALLTHROUGH: u32 = 1;
    /// `(report)` was executed.
    pub const SHOULD_REPORT: u32 = 2;
    /// `Micros`: microseconds since the timer was last reset.
    pub const MICROS: u32 = 3;
    /// `Cwnd` in bytes.
    pub const CWND: u32 = 4;
    /// `Rate` in bytes per second.
    pub const RATE: u32 = 5;
}

/// A decoding failure; the message is dropped and nothing else is affected.
#[derive(Debug, Clone, Eq, PartialEq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or than the header's length field says.
    #[error("message truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The header's length is below the header size or does not match the datagram.
    #[error("header length {header} does not match the {actual}-byte datagram")]
    LengthMismatch {
        /// The header's length field.
        header: usize,
        /// The datagram's length.
        actual: usize,
    },
    /// The body has a size this type cannot have.
    #[error("message type {typ}: body of {len} bytes, expected {expected}")]
    BadBodyLength {
        /// Message type.
        typ: u16,
        /// Actual body length.
        len: usize,
        /// What the counts in the body imply.
        expected: usize,
    },
    /// A count exceeds libccp's limit.
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany {
        /// Which count.
        what: &'static str,
        /// The count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The CREATE algorithm name is not NUL-terminated UTF-8.
    #[error("CREATE algorithm name is not NUL-terminated UTF-8")]
    BadAlgName,
    /// An update names a register type that cannot be updated.
    #[error("update of register type {0}, only control and implicit registers can be set")]
    BadUpdateRegister(u8),
    /// A program section is inconsistent (instruction ranges out of bounds).
    #[error("program: {0}")]
    BadProgram(&'static str),
}

/// An encoding failure (the value cannot be represented on the wire).
#[derive(Debug, Clone, Eq, PartialEq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A count exceeds libccp's limit.
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany {
        /// Which count.
        what: &'static str,
        /// The count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The algorithm name is longer than 63 bytes or contains NUL.
    #[error("algorithm name must be at most 63 bytes without NUL")]
    BadAlgName,
    /// The message would be longer than the 16-bit length field allows.
    #[error("message of {0} bytes does not fit the 16-bit length field")]
    TooLong(usize),
}

/// A message with its socket (flow) id.
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct Message {
    /// The flow the message is about (libccp's socket id; 0 for datapath-wide messages).
    pub sid: u32,
    /// The typed body.
    pub body: Body,
}

/// The typed body of a [`Message`].
#[derive(Debug, Clone, Eq, PartialEq)]
pub enum Body {
    /// A new flow.
    Create(Create),
    /// A report.
    Measure(Measure),
    /// Install a program.
    Install(Install),
    /// Set registers.
    UpdateFields(UpdateFields),
    /// Switch program.
    ChangeProg(ChangeProg),
    /// Datapath ready.
    Ready(Ready),
    /// A type this revision does not know: kept raw.
    Unknown {
        /// The header type.
        typ: u16,
        /// The body bytes.
        bytes: Vec<u8>,
    },
}

/// CREATE: the datapath opened a flow.
#[derive(Debug, Clone, Eq, PartialEq, Default)]
pub struct Create {
    /// Initial congestion window in bytes.
    pub init_cwnd: u32,
    /// Maximum segment (datagram) size in bytes.
    pub mss: u32,
    /// Source IPv4 address (0 for IPv6 or unknown).
    pub src_ip: u32,
    /// Source port.
    pub src_port: u32,
    /// Destination IPv4 address (0 for IPv6 or unknown).
    pub dst_ip: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Requested algorithm name (at most 63 bytes; empty = the agent's default).
    pub alg: String,
}

/// MEASURE: a report of the program's report fields, in declaration order.
#[derive(Debug, Clone, Eq, PartialEq, Default)]
pub struct Measure {
    /// The program that produced the report.
    pub program_uid: u32,
    /// Field values.
    pub fields: Vec<u64>,
}

/// INSTALL_EXPR: a program for all flows of the datapath, selected later by CHANGE_PROG.
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct Install {
    /// The program's uid.
    pub program_uid: u32,
    /// The compiled program.
    pub program: ProgramSection,
}

/// The program section of INSTALL_EXPR in libccp's layout:
///
/// ```text
/// num_expressions u32, num_instructions u32,
/// expressions[num_expressions]  (cond_start u32, num_cond u32, event_start u32, num_event u32)
/// instructions[num_instructions] (op u8, (type u8, index u32) × 3 [result, left, right])
/// ```
///
/// Decoding checks the counts, the exact length and that every expression's instruction
/// ranges lie inside the instruction list; the meaning of opcodes and registers is the
/// VM's to check.
#[derive(Debug, Clone, Eq, PartialEq, Default)]
pub struct ProgramSection {
    /// When-clauses.
    pub expressions: Vec<Expression>,
    /// Instructions.
    pub instructions: Vec<Instruction>,
}

/// One when-clause: condition instructions, then body instructions.
#[derive(Debug, Clone, Copy, Eq, PartialEq, Default)]
pub struct Expression {
    /// Index of the first condition instruction.
    pub cond_start: u32,
    /// Number of condition instructions.
    pub num_cond: u32,
    /// Index of the first body instruction.
    pub event_start: u32,
    /// Number of body instructions.
    pub num_event: u32,
}

/// One register operand: libccp register type and index (the immediate value for
/// [`reg_type::IMMEDIATE`]).
#[derive(Debug, Clone, Copy, Eq, PartialEq, Default)]
pub struct Operand {
    /// Register type ([`reg_type`]).
    pub typ: u8,
    /// Index, or the value of an immediate.
    pub index: u32,
}

/// One instruction.
#[derive(Debug, Clone, Copy, Eq, PartialEq, Default)]
pub struct Instruction {
    /// libccp opcode.
    pub op: u8,
    /// Result register.
    pub result: Operand,
    /// Left operand.
    pub left: Operand,
    /// Right operand.
    pub right: Operand,
}

/// One register update.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub struct Update {
    /// [`reg_type::NONVOLATILE_CONTROL`], [`reg_type::VOLATILE_CONTROL`] or
    /// [`reg_type::IMPLICIT`] (with [`implicit::CWND`] or [`implicit::RATE`]).
    pub reg_type: u8,
    /// Register index.
    pub index: u32,
    /// New value.
    pub value: u64,
}

impl Update {
    /// Set the congestion window (bytes).
    pub fn cwnd(bytes: u64) -> Self {
        Self {
            reg_type: reg_type::IMPLICIT,
            index: implicit::CWND,
            value: bytes,
        }
    }
    /// Set the pacing rate (bytes per second).
    pub fn rate(bytes_per_sec: u64) -> Self {
        Self {
            reg_type: reg_type::IMPLICIT,
            index: implicit::RATE,
            value: bytes_per_sec,
        }
    }
    /// Set control variable `index` of the program.
    pub fn control(index: u32, value: u64) -> Self {
        Self {
            reg_type: reg_type::NONVOLATILE_CONTROL,
            index,
            value,
        }
    }
}

/// UPDATE_FIELDS: set registers of one flow.
#[derive(Debug, Clone, Eq, PartialEq, Default)]
pub struct UpdateFields {
    /// The updates, applied in order.
    pub updates: Vec<Update>,
}

/// CHANGE_PROG: switch one flow to an installed program and set registers.
#[derive(Debug, Clone, Eq, PartialEq, Default)]
pub struct ChangeProg {
    /// The installed program's uid.
    pub program_uid: u32,
    /// Updates applied after the switch.
    pub updates: Vec<Update>,
}

/// READY: the datapath started (the agent should forget its flows and programs).
#[derive(Debug, Clone, Copy, Eq, PartialEq, Default)]
pub struct Ready {
    /// The datapath's id.
    pub id: u32,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated {
                need: self.pos.saturating_add(n),
                have: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn check_count(what: &'static str, count: u32, max: usize) -> Result<usize, DecodeError> {
    let c = count as usize;
    if c > max {
        return Err(DecodeError::TooMany {
            what,
            count: u64::from(count),
            max,
        });
    }
    Ok(c)
}

fn expect_body(typ: u16, len: usize, expected: usize) -> Result<(), DecodeError> {
    if len != expected {
        return Err(DecodeError::BadBodyLength { typ, len, expected });
    }
    Ok(())
}

fn read_updates(
    r: &mut Reader<'_>,
    typ: u16,
    count: u32,
    body_len: usize,
    fixed: usize,
) -> Result<Vec<Update>, DecodeError> {
    let n = check_count("updates", count, MAX_UPDATES)?;
    expect_body(typ, body_len, fixed + n * UPDATE_LEN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let reg = r.u8()?;
        let index = r.u32()?;
        let value = r.u64()?;
        match reg {
            reg_type::NONVOLATILE_CONTROL | reg_type::VOLATILE_CONTROL | reg_type::IMPLICIT => {}
            other => return Err(DecodeError::BadUpdateRegister(other)),
        }
        v.push(Update {
            reg_type: reg,
            index,
            value,
        });
    }
    Ok(v)
}

impl ProgramSection {
    /// Encoded length of this section.
    pub fn encoded_len(&self) -> usize {
        8 + self.expressions.len() * EXPRESSION_LEN + self.instructions.len() * INSTRUCTION_LEN
    }

    /// Append the libccp encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.expressions.len() > MAX_EXPRESSIONS {
            return Err(EncodeError::TooMany {
                what: "expressions",
                count: self.expressions.len(),
                max: MAX_EXPRESSIONS,
            });
        }
        if self.instructions.len() > MAX_INSTRUCTIONS {
            return Err(EncodeError::TooMany {
                what: "instructions",
                count: self.instructions.len(),
                max: MAX_INSTRUCTIONS,
            });
        }
        out.extend_from_slice(&(self.expressions.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.instructions.len() as u32).to_le_bytes());
        for e in &self.expressions {
            for v in [e.cond_start, e.num_cond, e.event_start, e.num_event] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for i in &self.instructions {
            out.push(i.op);
            for o in [i.result, i.left, i.right] {
                out.push(o.typ);
                out.extend_from_slice(&o.index.to_le_bytes());
            }
        }
        Ok(())
    }

    /// Decode a section that fills `buf` exactly.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let ne = check_count("expressions", r.u32()?, MAX_EXPRESSIONS)?;
        let ni = check_count("instructions", r.u32()?, MAX_INSTRUCTIONS)?;
        let expected = 8 + ne * EXPRESSION_LEN + ni * INSTRUCTION_LEN;
        expect_body(msg_type::INSTALL_EXPR, buf.len(), expected)?;
        let mut expressions = Vec::with_capacity(ne);
        for _ in 0..ne {
            let e = Expression {
                cond_start: r.u32()?,
                num_cond: r.u32()?,
                event_start: r.u32()?,
                num_event: r.u32()?,
            };
            let in_range = |start: u32, n: u32| u64::from(start) + u64::from(n) <= ni as u64;
            if !in_range(e.cond_start, e.num_cond) || !in_range(e.event_start, e.num_event) {
                return Err(DecodeError::BadProgram(
                    "expression range outside the instructions",
                ));
            }
            expressions.push(e);
        }
        let mut instructions = Vec::with_capacity(ni);
        for _ in 0..ni {
            let op = r.u8()?;
            let mut ops = [Operand::default(); 3];
            for o in &mut ops {
                o.typ = r.u8()?;
                o.index = r.u32()?;
            }
            instructions.push(Instruction {
                op,
                result: ops[0],
                left: ops[1],
                right: ops[2],
            });
        }
        Ok(Self {
            expressions,
            instructions,
        })
    }
}

impl Message {
    /// A message about flow `sid`.
    pub fn new(sid: u32, body: Body) -> Self {
        Self { sid, body }
    }

    /// The header type number of this message.
    pub fn typ(&self) -> u16 {
        match &self.body {
            Body::Create(_) => msg_type::CREATE,
            Body::Measure(_) => msg_type::MEASURE,
            Body::Install(_) => msg_type::INSTALL_EXPR,
            Body::UpdateFields(_) => msg_type::UPDATE_FIELDS,
            Body::ChangeProg(_) => msg_type::CHANGE_PROG,
            Body::Ready(_) => msg_type::READY,
            Body::Unknown { typ, .. } => *typ,
        }
    }

    /// Encode into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Append the encoding (one datagram's worth) to `out`; on error `out` is unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let r = self.encode_inner(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&self.typ().to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.sid.to_le_bytes());
        let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        let put_updates = |out: &mut Vec<u8>, u: &[Update]| -> Result<(), EncodeError> {
            if u.len() > MAX_UPDATES {
                return Err(EncodeError::TooMany {
                    what: "updates",
                    count: u.len(),
                    max: MAX_UPDATES,
                });
            }
            for x in u {
                out.push(x.reg_type);
                out.extend_from_slice(&x.index.to_le_bytes());
                out.extend_from_slice(&x.value.to_le_bytes());
            }
            Ok(())
        };
        match &self.body {
            Body::Create(c) => {
                for v in [
                    c.init_cwnd,
                    c.mss,
                    c.src_ip,
                    c.src_port,
                    c.dst_ip,
                    c.dst_port,
                ] {
                    put32(out, v);
                }
                let name = c.alg.as_bytes();
                if name.len() >= ALG_NAME_LEN || name.contains(&0) {
                    return Err(EncodeError::BadAlgName);
                }
                let mut field = [0u8; ALG_NAME_LEN];
                field[..name.len()].copy_from_slice(name);
                out.extend_from_slice(&field);
            }
            Body::Measure(m) => {
                if m.fields.len() > MAX_REPORT_FIELDS {
                    return Err(EncodeError::TooMany {
                        what: "report fields",
                        count: m.fields.len(),
                        max: MAX_REPORT_FIELDS,
                    });
                }
                put32(out, m.program_uid);
                put32(out, m.fields.len() as u32);
                for f in &m.fields {
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Body::Install(i) => {
                put32(out, i.program_uid);
                i.program.encode(out)?;
            }
            Body::UpdateFields(u) => {
                put32(out, u.updates.len() as u32);
                put_updates(out, &u.updates)?;
            }
            Body::ChangeProg(c) => {
                put32(out, c.program_uid);
                put32(out, c.updates.len() as u32);
                put_updates(out, &c.updates)?;
            }
            Body::Ready(r) => put32(out, r.id),
            Body::Unknown { bytes, .. } => out.extend_from_slice(bytes),
        }
        let len = out.len() - start;
        let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLong(len))?;
        out[start + 2..start + 4].copy_from_slice(&len16.to_le_bytes());
        Ok(())
    }

    /// Decode one message that fills `datagram` exactly (the header length must equal
    /// the datagram length).
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let (m, used) = Self::decode_prefix(datagram)?;
        if used != datagram.len() {
            return Err(DecodeError::LengthMismatch {
                header: used,
                actual: datagram.len(),
            });
        }
        Ok(m)
    }

    /// Decode the message at the start of `buf`; returns it and its length (for buffers
    /// that carry several messages back to back).
    pub fn decode_prefix(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let typ = r.u16()?;
        let len = usize::from(r.u16()?);
        let sid = r.u32()?;
        if len < HEADER_LEN {
            return Err(DecodeError::LengthMismatch {
                header: len,
                actual: buf.len(),
            });
        }
        if len > buf.len() {
            return Err(DecodeError::Truncated {
                need: len,
                have: buf.len(),
            });
        }
        let body_buf = &buf[HEADER_LEN..len];
        let body_len = body_buf.len();
        let mut r = Reader {
            buf: body_buf,
            pos: 0,
        };
        let body = match typ {
            msg_type::CREATE => {
                expect_body(typ, body_len, 24 + ALG_NAME_LEN)?;
                let mut v = [0u32; 6];
                for x in &mut v {
                    *x = r.u32()?;
                }
                // libccp copies the whole 64-byte field: bytes after the NUL are ignored
                let name = r.take(ALG_NAME_LEN)?;
                let end = name
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(DecodeError::BadAlgName)?;
                let alg = std::str::from_utf8(&name[..end])
                    .map_err(|_| DecodeError::BadAlgName)?
                    .to_owned();
                Body::Create(Create {
                    init_cwnd: v[0],
                    mss: v[1],
                    src_ip: v[2],
                    src_port: v[3],
                    dst_ip: v[4],
                    dst_port: v[5],
                    alg,
                })
            }
            msg_type::MEASURE => {
                let program_uid = r.u32()?;
                let n = check_count("report fields", r.u32()?, MAX_REPORT_FIELDS)?;
                expect_body(typ, body_len, 8 + 8 * n)?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    fields.push(r.u64()?);
                }
                Body::Measure(Measure {
                    program_uid,
                    fields,
                })
            }
            msg_type::INSTALL_EXPR => {
                let program_uid = r.u32()?;
                let program = ProgramSection::decode(&body_buf[4..])?;
                Body::Install(Install {
                    program_uid,
                    program,
                })
            }
            msg_type::UPDATE_FIELDS => {
                let count = r.u32()?;
                let updates = read_updates(&mut r, typ, count, body_len, 4)?;
                Body::UpdateFields(UpdateFields { updates })
            }
            msg_type::CHANGE_PROG => {
                let program_uid = r.u32()?;
                let count = r.u32()?;
                let updates = read_updates(&mut r, typ, count, body_len, 8)?;
                Body::ChangeProg(ChangeProg {
                    program_uid,
                    updates,
                })
            }
            msg_type::READY => {
                expect_body(typ, body_len, 4)?;
                Body::Ready(Ready { id: r.u32()? })
            }
            _ => Body::Unknown {
                typ,
                bytes: body_buf.to_vec(),
            },
        };
        Ok((Self { sid, body }, len))
    }
}
