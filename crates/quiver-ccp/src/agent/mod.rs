//! The agent: runs congestion-control algorithms on the reports of many datapath flows.
//!
//! Extension point: the [`Algorithm`] trait (one instance per flow, built by an
//! [`AlgorithmFactory`]). On CREATE the agent asks the algorithm for its datapath program
//! and initial updates ([`Algorithm::on_create`] → [`Setup`]), installs the program on
//! that datapath if it does not have it yet (INSTALL_EXPR), and switches the flow to it
//! (CHANGE_PROG). Each MEASURE goes to [`Algorithm::on_report`] with a
//! [`DatapathHandle`] to set `Cwnd`, `Rate` or program variables (UPDATE_FIELDS) or to
//! change the program. An empty MEASURE closes the flow ([`Algorithm::on_close`]), as
//! in portus.
//!
//! Liveness: every report is answered with at least one message (an empty UPDATE_FIELDS
//! when the algorithm had nothing to change), so that a datapath can tell a silent
//! (dead) agent from a satisfied one and fall back to native congestion control.
//!
//! Flows are keyed by `(peer, sid)`: any number of datapaths, each with any number of
//! flows, share one agent. [`Agent::handle`] is the whole protocol (sans-IO);
//! [`Agent::run`] drives it over an [`AgentTransport`], and [`InlineAgent`] calls it
//! synchronously from a datapath in the same process (deterministic simulator tests).

use crate::ipc::{AgentTransport, DatapathTransport, PeerId, MAX_DATAGRAM};
use crate::vm::{Program, Reg};
use crate::wire::{Body, ChangeProg, Install, Message, ProgramSection, Update, UpdateFields};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// What the datapath told the agent about a new flow (CREATE).
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct FlowInfo {
    /// The flow's id on its datapath.
    pub sid: u32,
    /// Initial window in bytes.
    pub init_cwnd: u32,
    /// Maximum segment (datagram) size in bytes.
    pub mss: u32,
    /// Source IPv4 address (0 if unknown).
    pub src_ip: u32,
    /// Source port.
    pub src_port: u32,
    /// Destination IPv4 address (0 if unknown).
    pub dst_ip: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Algorithm the datapath asked for (empty: the agent's default).
    pub alg: String,
}

/// An algorithm's answer to a new flow: the datapath program and its initial updates.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The program the flow runs.
    pub program: Arc<Program>,
    /// Variables (by name: control variables, `Cwnd`, `Rate`) to set when it starts.
    pub updates: Vec<(String, u64)>,
}

/// One report of a flow.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// The program that produced it.
    pub program: &'a Program,
    /// The field values in declaration order.
    pub fields: &'a [u64],
}

impl Report<'_> {
    /// The report variable `name` (with or without `Report.`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields
            .get(self.program.report_field_index(name)?)
            .copied()
    }

    /// Like [`Report::get`], 0 when absent.
    pub fn get_or_zero(&self, name: &str) -> u64 {
        self.get(name).unwrap_or(0)
    }
}

/// An agent-side error from a [`DatapathHandle`] call.
#[derive(Debug, Clone, Eq, PartialEq, Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The program has no updatable variable of that name.
    #[error("the program has no control variable, Cwnd or Rate named {0:?}")]
    UnknownVariable(String),
    /// Too many programs for one agent (u32 uids).
    #[error("program table full")]
    TooManyPrograms,
}

/// One flow's congestion-control algorithm. See the [module docs](self).
pub trait Algorithm: Send {
    /// The flow started: choose the datapath program and its initial variables.
    fn on_create(&mut self, info: &FlowInfo) -> Setup;
    /// A report arrived; act on the datapath through `dp`.
    fn on_report(&mut self, report: &Report<'_>, dp: &mut DatapathHandle<'_>);
    /// The flow ended.
    fn on_close(&mut self) {}
}

/// Builds one [`Algorithm`] per flow.
pub trait AlgorithmFactory: Send {
    /// The algorithm's name (matched against CREATE's requested algorithm).
    fn name(&self) -> &str;
    /// A new instance for a flow.
    fn new_flow(&self, info: &FlowInfo) -> Box<dyn Algorithm>;
}

enum Command {
    Update(Vec<Update>),
    Change(Arc<Program>, Vec<Update>),
}

/// What an algorithm can do to its flow's datapath while handling a report.
pub struct DatapathHandle<'a> {
    program: &'a Arc<Program>,
    commands: &'a mut Vec<Command>,
}

fn resolve(program: &Program, updates: &[(&str, u64)]) -> Result<Vec<Update>, AgentError> {
    updates
        .iter()
        .map(|(name, value)| {
            let reg = program
                .update_target(name)
                .ok_or_else(|| AgentError::UnknownVariable((*name).to_string()))?;
            Ok(update_of(reg, *value))
        })
        .collect()
}

fn update_of(reg: Reg, value: u64) -> Update {
    Update {
        reg_type: reg.type_code(),
        index: reg.wire_value(),
        value,
    }
}

impl DatapathHandle<'_> {
    /// Set the congestion window in bytes.
    pub fn set_cwnd(&mut self, bytes: u64) {
        self.commands
            .push(Command::Update(vec![Update::cwnd(bytes)]));
    }

    /// Set the pacing rate in bytes per second (0 lets the datapath derive it).
    pub fn set_rate(&mut self, bytes_per_sec: u64) {
        self.commands
            .push(Command::Update(vec![Update::rate(bytes_per_sec)]));
    }

    /// Set program variables (control variables, `Cwnd`, `Rate`) by name.
    pub fn update(&mut self, updates: &[(&str, u64)]) -> Result<(), AgentError> {
        let u = resolve(self.program, updates)?;
        self.commands.push(Command::Update(u));
        Ok(())
    }

    /// Switch the flow to `program` (installed on the datapath first if needed) and set
    /// variables of the new program.
    pub fn change_program(
        &mut self,
        program: Arc<Program>,
        updates: &[(&str, u64)],
    ) -> Result<(), AgentError> {
        let u = resolve(&program, updates)?;
        self.commands.push(Command::Change(program, u));
        Ok(())
    }

    /// The program the flow runs.
    pub fn program(&self) -> &Arc<Program> {
        self.program
    }
}

struct FlowEntry {
    alg: Box<dyn Algorithm>,
    program: Arc<Program>,
}

#[derive(Default)]
struct PeerState {
    installed: Vec<u32>,
    flows: HashMap<u32, FlowEntry>,
}

/// Counters of an [`Agent`].
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct AgentStats {
    /// Flows created.
    pub flows_created: u64,
    /// Flows closed.
    pub flows_closed: u64,
    /// Reports handled.
    pub reports: u64,
    /// Messages that failed to decode or were unexpected.
    pub bad_messages: u64,
    /// Messages sent.
    pub sent: u64,
}

/// The agent: algorithms, programs and flows of many datapaths.
pub struct Agent {
    factories: Vec<Box<dyn AlgorithmFactory>>,
    programs: Vec<Arc<Program>>,
    peers: HashMap<PeerId, PeerState>,
    stats: AgentStats,
}

impl Agent {
    /// An agent whose default algorithm is `default` (used when CREATE names none or an
    /// unknown one).
    pub fn new(default: Box<dyn AlgorithmFactory>) -> Self {
        Self {
            factories: vec![default],
            programs: Vec::new(),
            peers: HashMap::new(),
            stats: AgentStats::default(),
        }
    }

    /// Also offer `alg` to flows that ask for it by name.
    pub fn with_algorithm(mut self, alg: Box<dyn AlgorithmFactory>) -> Self {
        self.factories.push(alg);
        self
    }

    /// Counters.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// Flows currently open.
    pub fn flows(&self) -> usize {
        self.peers.values().map(|p| p.flows.len()).sum()
    }

    fn uid_of(&mut self, program: &Arc<Program>) -> Result<u32, AgentError> {
        if let Some(i) = self
            .programs
            .iter()
            .position(|p| Arc::ptr_eq(p, program) || **p == **program)
        {
            return Ok(i as u32 + 1);
        }
        let uid =
            u32::try_from(self.programs.len() + 1).map_err(|_| AgentError::TooManyPrograms)?;
        self.programs.push(Arc::clone(program));
        Ok(uid)
    }

    /// Handles one datagram from `peer`; returns the datagrams to send back to it.
    pub fn handle(&mut self, peer: &PeerId, datagram: &[u8]) -> Vec<Vec<u8>> {
        let msg = match Message::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(?peer, %e, "ccp agent: undecodable message");
                self.stats.bad_messages += 1;
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        match msg.body {
            Body::Ready(_) => {
                // a (re)started datapath: forget what it had
                if let Some(old) = self.peers.insert(peer.clone(), PeerState::default()) {
                    for (_, mut f) in old.flows {
                        f.alg.on_close();
                        self.stats.flows_closed += 1;
                    }
                }
            }
            Body::Create(c) => {
                let info = FlowInfo {
                    sid: msg.sid,
                    init_cwnd: c.init_cwnd,
                    mss: c.mss,
                    src_ip: c.src_ip,
                    src_port: c.src_port,
                    dst_ip: c.dst_ip,
                    dst_port: c.dst_port,
                    alg: c.alg,
                };
                let factory = self
                    .factories
                    .iter()
                    .find(|f| f.name() == info.alg)
                    .unwrap_or(&self.factories[0]);
                let mut alg = factory.new_flow(&info);
                let setup = alg.on_create(&info);
                let updates = match resolve(&setup.program, &to_refs(&setup.updates)) {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(%e, "ccp agent: algorithm's initial updates ignored");
                        Vec::new()
                    }
                };
                let program = Arc::clone(&setup.program);
                self.change(peer, msg.sid, &program, updates, &mut out);
                let st = self.peers.entry(peer.clone()).or_default();
                if let Some(mut old) = st.flows.insert(msg.sid, FlowEntry { alg, program }) {
                    old.alg.on_close();
                }
                self.stats.flows_created += 1;
            }
            Body::Measure(m) => {
                let Some(st) = self.peers.get_mut(peer) else {
                    self.stats.bad_messages += 1;
                    return out;
                };
                if m.fields.is_empty() {
                    if let Some(mut f) = st.flows.remove(&msg.sid) {
                        f.alg.on_close();
                        self.stats.flows_closed += 1;
                    }
                    return out;
                }
                let Some(flow) = st.flows.get_mut(&msg.sid) else {
                    self.stats.bad_messages += 1;
                    return out;
                };
                self.stats.reports += 1;
                let report_prog = usize::try_from(m.program_uid)
                    .ok()
                    .and_then(|u| u.checked_sub(1))
                    .and_then(|i| self.programs.get(i))
                    .cloned()
                    .unwrap_or_else(|| Arc::clone(&flow.program));
                let mut commands = Vec::new();
                let mut dp = DatapathHandle {
                    program: &flow.program,
                    commands: &mut commands,
                };
                flow.alg.on_report(
                    &Report {
                        program: &report_prog,
                        fields: &m.fields,
                    },
                    &mut dp,
                );
                if commands.is_empty() {
                    commands.push(Command::Update(Vec::new()));
                }
                // merge consecutive updates into one message
                let mut pending: Vec<Update> = Vec::new();
                let mut any = false;
                for c in commands {
                    match c {
                        Command::Update(u) => {
                            pending.extend(u);
                            any = true;
                        }
                        Command::Change(p, u) => {
                            if any {
                                push(
                                    &mut out,
                                    msg.sid,
                                    Body::UpdateFields(UpdateFields {
                                        updates: std::mem::take(&mut pending),
                                    }),
                                );
                                any = false;
                            }
                            if let Some(f) = self
                                .peers
                                .get_mut(peer)
                                .and_then(|s| s.flows.get_mut(&msg.sid))
                            {
                                f.program = Arc::clone(&p);
                            }
                            self.change(peer, msg.sid, &p, u, &mut out);
                        }
                    }
                }
                if any {
                    push(
                        &mut out,
                        msg.sid,
                        Body::UpdateFields(UpdateFields { updates: pending }),
                    );
                }
            }
            _ => self.stats.bad_messages += 1,
        }
        self.stats.sent += out.len() as u64;
        out
    }

    fn change(
        &mut self,
        peer: &PeerId,
        sid: u32,
        program: &Arc<Program>,
        updates: Vec<Update>,
        out: &mut Vec<Vec<u8>>,
    ) {
        let uid = match self.uid_of(program) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(%e, "ccp agent: cannot register program");
                return;
            }
        };
        let st = self.peers.entry(peer.clone()).or_default();
        if !st.installed.contains(&uid) {
            // A compiled program always fits the wire format (the VM and the codec share
            // libccp's limits), so the conversion is direct.
            push(
                out,
                0,
                Body::Install(Install {
                    program_uid: uid,
                    program: ProgramSection::from(&**program),
                }),
            );
            st.installed.push(uid);
        }
        push(
            out,
            sid,
            Body::ChangeProg(ChangeProg {
                program_uid: uid,
                updates,
            }),
        );
    }

    /// Serves `transport` until `stop` is set (checked every 100 ms) or the transport
    /// fails.
    pub fn run<T: AgentTransport>(
        &mut self,
        transport: &mut T,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !stop.load(Ordering::Relaxed) {
            let Some((n, peer)) = transport.recv(&mut buf, Some(Duration::from_millis(100)))?
            else {
                continue;
            };
            for reply in self.handle(&peer, &buf[..n]) {
                if let Err(e) = transport.send(&peer, &reply) {
                    tracing::debug!(?peer, %e, "ccp agent: send failed");
                }
            }
        }
        Ok(())
    }
}

fn to_refs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
    v.iter().map(|(n, x)| (n.as_str(), *x)).collect()
}

fn push(out: &mut Vec<Vec<u8>>, sid: u32, body: Body) {
    match Message::new(sid, body).to_bytes() {
        Ok(b) => out.push(b),
        Err(e) => tracing::warn!(%e, "ccp agent: message not encodable"),
    }
}

/// An agent called synchronously by datapaths in the same process: sending to it runs
/// [`Agent::handle`] at once and queues the answers for the datapath. Deterministic, so
/// simulator tests use it; [`InlineAgent::kill`] makes it silent (a dead agent).
#[derive(Clone)]
pub struct InlineAgent {
    inner: Arc<Mutex<InlineState>>,
}

struct InlineState {
    agent: Agent,
    alive: bool,
    next_peer: u64,
}

impl InlineAgent {
    /// Wraps `agent`.
    pub fn new(agent: Agent) -> Self {
        Self {
            inner: Arc::new(Mutex::new(InlineState {
                agent,
                alive: true,
                next_peer: 0,
            })),
        }
    }

    /// A new datapath end.
    pub fn connect(&self) -> InlineDatapath {
        let id = match self.inner.lock() {
            Ok(mut s) => {
                s.next_peer += 1;
                s.next_peer
            }
            Err(_) => 0,
        };
        InlineDatapath {
            agent: self.clone(),
            peer: PeerId::Channel(id),
            inbox: VecDeque::new(),
        }
    }

    /// The agent stops answering (and forgets nothing: [`InlineAgent::revive`] resumes).
    pub fn kill(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.alive = false;
        }
    }

    /// The agent answers again.
    pub fn revive(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.alive = true;
        }
    }

    /// Runs `f` on the agent (e.g. to read its stats).
    pub fn with<R>(&self, f: impl FnOnce(&mut Agent) -> R) -> Option<R> {
        self.inner.lock().ok().map(|mut s| f(&mut s.agent))
    }
}

/// A datapath's end of an [`InlineAgent`].
pub struct InlineDatapath {
    agent: InlineAgent,
    peer: PeerId,
    inbox: VecDeque<Vec<u8>>,
}

impl DatapathTransport for InlineDatapath {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut s = self
            .agent
            .inner
            .lock()
            .map_err(|_| io::Error::other("inline agent poisoned"))?;
        if !s.alive {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "agent is dead",
            ));
        }
        let replies = s.agent.handle(&self.peer, msg);
        self.inbox.extend(replies);
        Ok(())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(m) = self.inbox.pop_front() else {
            return Ok(None);
        };
        if m.len() > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram larger than buffer",
            ));
        }
        buf[..m.len()].copy_from_slice(&m);
        Ok(Some(m.len()))
    }
}
