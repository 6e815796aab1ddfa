//! The QUIC datapath binding: a [`quiver_proto::cc::Controller`] that runs CCP programs.
//!
//! [`CcpController`] feeds the VM's primitives from the connection's real events:
//! - per ACK frame ([`Controller::on_ack`]): `Ack.bytes_acked`, `Ack.packets_acked`,
//!   `Ack.now`, `Flow.rtt_sample_us` (the ACK's RTT sample, else the latest RTT),
//!   `Flow.bytes_in_flight`, `Flow.packets_in_flight` (bytes / MSS, rounded up),
//!   `Flow.rate_incoming` and `Flow.rate_outgoing` (both the delivery-rate estimate);
//! - per congestion event: a loss runs the program once more with
//!   `Ack.lost_pkts_sample` = packets lost; persistent congestion also sets
//!   `Flow.was_timeout`; an ECN-CE increase sets `Ack.ecn_packets` = 1 and
//!   `Ack.ecn_bytes` = one MSS (the core reports CE increases, not marked bytes).
//!
//! Not measured by the QUIC core, so always 0: `Ack.bytes_misordered`,
//! `Ack.packets_misordered` (QUIC ACK ranges make reordering a loss-detection matter),
//! and `Flow.bytes_pending`.
//!
//! Outputs: `Cwnd` is the window (at least the RFC 9002 minimum window) and a non-zero
//! `Rate` the pacing rate. Reports and CREATE go to the agent through a
//! [`DatapathTransport`], drained without blocking on every event.
//!
//! **Fallback.** A shadow [`NewReno`] sees every event. If the agent has not sent
//! anything for [`CcpConfig::fallback_after`] (it answers every report, see
//! [`crate::agent`]), the controller switches to the shadow's window and rate and
//! re-sends CREATE every `fallback_after`; the first message from an agent switches back
//! to CCP, starting from the fallback's window. Before the agent's first answer the
//! window is the initial window.

use crate::ipc::{DatapathTransport, UnixDatapathSocket, MAX_DATAGRAM};
use crate::vm::{FlowState, Primitives, Program, Reg};
use crate::wire::{Body, Create, Measure, Message};
use quiver_proto::cc::{
    self, AckSample, CongestionEvent, CongestionKind, Controller, ControllerFactory, NewReno,
    NewRenoConfig,
};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the CCP datapath.
#[derive(Debug, Clone)]
pub struct CcpConfig {
    /// Agent silence after which the controller falls back to native NewReno.
    pub fallback_after: Duration,
    /// Algorithm requested in CREATE (empty: the agent's default).
    pub alg: String,
}

impl Default for CcpConfig {
    fn default() -> Self {
        Self {
            fallback_after: Duration::from_millis(500),
            alg: String::new(),
        }
    }
}

type Connect = dyn Fn() -> io::Result<Box<dyn DatapathTransport>> + Send + Sync;

/// Builds [`CcpController`]s; put it in `TransportConfig::congestion_controller` to
/// select CCP for a connection.
#[derive(Clone)]
pub struct CcpControllerFactory {
    connect: Arc<Connect>,
    config: CcpConfig,
}

impl std::fmt::Debug for CcpControllerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CcpControllerFactory")
            .field("config", &self.config)
            .finish()
    }
}

impl CcpControllerFactory {
    /// Each controller opens its own Unix datagram socket to the agent at `agent`.
    pub fn unix(agent: impl Into<PathBuf>, config: CcpConfig) -> Self {
        let agent = agent.into();
        Self::with_transport(
            move || Ok(Box::new(UnixDatapathSocket::connect(&agent)?) as Box<dyn DatapathTransport>),
            config,
        )
    }

    /// Each controller gets a transport from `connect` (e.g.
    /// [`crate::agent::InlineAgent::connect`] or [`crate::ipc::ChannelConnector`]).
    pub fn with_transport(
        connect: impl Fn() -> io::Result<Box<dyn DatapathTransport>> + Send + Sync + 'static,
        config: CcpConfig,
    ) -> Self {
        Self {
            connect: Arc::new(connect),
            config,
        }
    }
}

impl ControllerFactory for CcpControllerFactory {
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(CcpController::new(
            Arc::clone(&self.connect),
            self.config.clone(),
            now,
            max_datagram_size,
        ))
    }
}

/// Which controller drives the window.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum Mode {
    /// CREATE sent, no answer yet: the initial window.
    Waiting,
    /// The agent's program and updates drive the window.
    Ccp,
    /// The agent is silent: native NewReno.
    Fallback,
}

/// Counters of a [`CcpController`].
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct CcpStats {
    /// Reports sent.
    pub reports: u64,
    /// Messages received from the agent.
    pub received: u64,
    /// Messages that failed to decode or to apply.
    pub bad_messages: u64,
    /// VM invocations aborted (arithmetic faults).
    pub vm_aborts: u64,
    /// Sends that failed (agent gone or buffer full).
    pub send_errors: u64,
    /// Switches to the fallback.
    pub fallbacks: u64,
}

/// The CCP datapath for one path. See the [module docs](self).
pub struct CcpController {
    connect: Arc<Connect>,
    transport: Option<Box<dyn DatapathTransport>>,
    config: CcpConfig,
    epoch: Instant,
    mds: u16,
    sid: u32,
    programs: HashMap<u32, Arc<Program>>,
    program_uid: u32,
    vm: Option<FlowState>,
    cwnd: u64,
    rate: u64,
    mode: Mode,
    fallback: NewReno,
    last_heard: Instant,
    last_create: Instant,
    latest_rtt: Duration,
    stats: CcpStats,
    buf: Vec<u8>,
}

impl CcpController {
    fn new(connect: Arc<Connect>, config: CcpConfig, now: Instant, mds: u16) -> Self {
        let transport = match connect() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(%e, "ccp datapath: no agent transport, running the fallback");
                None
            }
        };
        let mut c = Self {
            connect,
            transport,
            config,
            epoch: now,
            mds,
            sid: 1,
            programs: HashMap::new(),
            program_uid: 0,
            vm: None,
            cwnd: cc::initial_window(mds),
            rate: 0,
            mode: Mode::Waiting,
            fallback: NewReno::new(NewRenoConfig::default(), mds),
            last_heard: now,
            last_create: now,
            latest_rtt: Duration::ZERO,
            stats: CcpStats::default(),
            buf: vec![0; MAX_DATAGRAM],
        };
        if c.transport.is_none() {
            c.mode = Mode::Fallback;
        }
        c.send_create(now);
        c
    }

    /// Which controller drives the window now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Counters.
    pub fn stats(&self) -> CcpStats {
        let mut s = self.stats;
        s.vm_aborts = self.vm.as_ref().map_or(0, |v| v.aborts());
        s
    }

    fn now_us(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64
    }

    fn send(&mut self, msg: Message) {
        let Some(t) = self.transport.as_mut() else {
            return;
        };
        match msg.to_bytes() {
            Ok(b) => {
                if t.send(&b).is_err() {
                    self.stats.send_errors += 1;
                }
            }
            Err(e) => tracing::warn!(%e, "ccp datapath: message not encodable"),
        }
    }

    fn send_create(&mut self, now: Instant) {
        self.last_create = now;
        let create = Create {
            init_cwnd: u32::try_from(cc::initial_window(self.mds)).unwrap_or(u32::MAX),
            mss: u32::from(self.mds),
            alg: self.config.alg.clone(),
            ..Create::default()
        };
        self.send(Message::new(self.sid, Body::Create(create)));
    }

    /// Drains the agent's messages and applies them.
    fn poll(&mut self, now: Instant) {
        loop {
            let Some(t) = self.transport.as_mut() else {
                return;
            };
            let n = match t.try_recv(&mut self.buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%e, "ccp datapath: receive failed");
                    break;
                }
            };
            let msg = Message::decode(&self.buf[..n]);
            self.stats.received += 1;
            self.last_heard = now;
            match msg {
                Ok(m) => {
                    if !self.apply(m, now) {
                        self.stats.bad_messages += 1;
                    }
                }
                Err(e) => {
                    tracing::debug!(%e, "ccp datapath: undecodable message");
                    self.stats.bad_messages += 1;
                }
            }
            if self.mode != Mode::Ccp && self.vm.is_some() {
                if self.mode == Mode::Fallback {
                    self.cwnd = self.fallback.window();
                    self.rate = 0;
                }
                self.mode = Mode::Ccp;
            }
        }
        let silent = now.saturating_duration_since(self.last_heard) >= self.config.fallback_after;
        if silent && self.mode != Mode::Fallback {
            tracing::info!("ccp datapath: agent silent, falling back to NewReno");
            self.mode = Mode::Fallback;
            self.stats.fallbacks += 1;
        }
        if self.mode == Mode::Fallback
            && now.saturating_duration_since(self.last_create) >= self.config.fallback_after
        {
            if self.transport.is_none() {
                self.transport = (self.connect)().ok();
            }
            self.send_create(now);
        }
    }

    fn apply(&mut self, m: Message, now: Instant) -> bool {
        match m.body {
            Body::Install(i) => {
                let mut bytes = Vec::new();
                if i.program.encode(&mut bytes).is_err() {
                    return false;
                }
                match Program::decode(&bytes) {
                    Ok(p) => {
                        self.programs.insert(i.program_uid, Arc::new(p));
                        true
                    }
                    Err(_) => false,
                }
            }
            Body::ChangeProg(c) if m.sid == self.sid => {
                let Some(p) = self.programs.get(&c.program_uid).cloned() else {
                    return false;
                };
                self.program_uid = c.program_uid;
                match self.vm.as_mut() {
                    Some(vm) => vm.stage_program(p),
                    None => self.vm = Some(FlowState::new(p, self.now_us(now))),
                }
                self.stage(&c.updates)
            }
            Body::UpdateFields(u) if m.sid == self.sid => self.stage(&u.updates),
            _ => false,
        }
    }

    fn stage(&mut self, updates: &[crate::wire::Update]) -> bool {
        let mut ok = true;
        for u in updates {
            let Ok(reg) = Reg::from_wire(u.reg_type, u.index) else {
                ok = false;
                continue;
            };
            match self.vm.as_mut() {
                Some(vm) => ok &= vm.stage_update(reg, u.value).is_ok(),
                None => ok = false,
            }
        }
        ok
    }

    fn run_vm(&mut self, mut prims: Primitives) {
        if self.mode != Mode::Ccp {
            return;
        }
        let Some(vm) = self.vm.as_mut() else { return };
        prims.cwnd = self.cwnd;
        prims.rate = self.rate;
        match vm.on_event(&prims) {
            Ok(out) => {
                if let Some(c) = out.cwnd {
                    self.cwnd = c;
                }
                if let Some(r) = out.rate {
                    self.rate = r;
                }
                if out.report {
                    let fields = vm.last_report().to_vec();
                    self.stats.reports += 1;
                    let uid = self.program_uid;
                    self.send(Message::new(
                        self.sid,
                        Body::Measure(Measure {
                            program_uid: uid,
                            fields,
                        }),
                    ));
                }
            }
            Err(e) => tracing::debug!(%e, "ccp datapath: program invocation aborted"),
        }
    }

    fn base_prims(&self, now: Instant, bytes_in_flight: u64) -> Primitives {
        let mss = u64::from(self.mds.max(1));
        Primitives {
            now_us: self.now_us(now),
            rtt_sample_us: self.latest_rtt.as_micros().min(u128::from(u64::MAX)) as u64,
            bytes_in_flight,
            packets_in_flight: bytes_in_flight.div_ceil(mss),
            ..Primitives::default()
        }
    }
}

impl Drop for CcpController {
    fn drop(&mut self) {
        // an empty report closes the flow in the agent (portus convention)
        let uid = self.program_uid;
        self.send(Message::new(
            self.sid,
            Body::Measure(Measure {
                program_uid: uid,
                fields: Vec::new(),
            }),
        ));
    }
}

impl Controller for CcpController {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_sent_pn: u64) {
        self.fallback.on_sent(now, bytes, last_sent_pn);
    }

    fn on_ack(&mut self, now: Instant, sample: &AckSample<'_>) {
        self.fallback.on_ack(now, sample);
        self.poll(now);
        if let Some(r) = sample.rtt_sample {
            self.latest_rtt = r;
        } else if self.latest_rtt.is_zero() {
            self.latest_rtt = sample.latest_rtt;
        }
        let mut p = self.base_prims(now, sample.bytes_in_flight);
        p.bytes_acked = sample.bytes_acked;
        p.packets_acked = sample.packets.len() as u64;
        let rate = sample.delivery.map_or(0, |d| d.delivery_rate);
        p.rate_incoming = rate;
        p.rate_outgoing = rate;
        self.run_vm(p);
    }

    fn on_congestion_event(&mut self, now: Instant, event: &CongestionEvent) {
        self.fallback.on_congestion_event(now, event);
        self.poll(now);
        let mut p = self.base_prims(now, event.bytes_in_flight);
        match event.kind {
            CongestionKind::Ecn => {
                p.ecn_packets = 1;
                p.ecn_bytes = u64::from(self.mds);
            }
            _ => {
                p.lost_pkts_sample = event.lost_packets.max(1);
                p.was_timeout = event.persistent_congestion;
            }
        }
        self.run_vm(p);
    }

    fn on_pto(&mut self, now: Instant) {
        self.fallback.on_pto(now);
        self.poll(now);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.fallback.on_mtu_update(new_mtu);
        self.mds = new_mtu;
    }

    fn window(&self) -> u64 {
        match self.mode {
            Mode::Fallback => self.fallback.window(),
            _ => self.cwnd.max(cc::minimum_window(self.mds)),
        }
    }

    fn pacing_rate(&self) -> Option<u64> {
        match self.mode {
            Mode::Fallback => self.fallback.pacing_rate(),
            _ => (self.rate > 0).then_some(self.rate),
        }
    }

    fn initial_window(&self) -> u64 {
        cc::initial_window(self.mds)
    }

    fn ssthresh(&self) -> Option<u64> {
        match self.mode {
            Mode::Fallback => self.fallback.ssthresh(),
            _ => None,
        }
    }

    fn name(&self) -> &str {
        "ccp"
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        // a new path is a new flow for the agent
        Box::new(CcpController::new(
            Arc::clone(&self.connect),
            self.config.clone(),
            self.epoch.max(self.last_heard),
            self.mds,
        ))
    }
}
