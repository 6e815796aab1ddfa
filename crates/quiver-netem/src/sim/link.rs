//! One direction of a link: its state and the per-packet pipeline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use super::config::{LinkConfig, LossModel};
use super::node::Ecn;
use super::stats::{DropCause, LinkStats};

/// A copy of a packet that survived the link, with its fate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scheduled {
    pub arrival: Instant,
    pub duplicate: bool,
    pub reordered: bool,
    pub corrupted_bit: Option<usize>,
    /// The ECN field on arrival.
    pub ecn: Ecn,
}

/// Mutable state of one direction of a link.
#[derive(Debug)]
pub(super) struct Link {
    pub config: LinkConfig,
    /// Installed with `set_link` (else it follows the default configuration).
    pub explicit: bool,
    pub stats: LinkStats,
    /// Serialisation end times and wire sizes of packets not yet fully serialised.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    /// When the transmitter finishes the last accepted packet.
    busy_until: Option<Instant>,
    /// Gilbert–Elliott state: `true` = bad.
    ge_bad: bool,
    /// Arrival of the last in-order copy, for `preserve_order`.
    last_arrival: Option<Instant>,
}

impl Link {
    pub fn new(config: LinkConfig, explicit: bool) -> Self {
        Self {
            config,
            explicit,
            stats: LinkStats::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: None,
            ge_bad: false,
            last_arrival: None,
        }
    }

    /// Runs a packet of `len` bytes, offered at `now`, through the pipeline documented on
    /// [`LinkConfig`]. `start` is the simulation start (blackhole offsets are relative to
    /// it). Returns the surviving copies (one or two) or why the packet was dropped.
    pub fn offer(
        &mut self,
        now: Instant,
        start: Instant,
        len: usize,
        ecn: Ecn,
        rng: &mut StdRng,
    ) -> Result<Vec<Scheduled>, DropCause> {
        self.stats.sent_packets += 1;
        self.stats.sent_bytes += len as u64;
        match self.pipeline(now, start, len, ecn, rng) {
            Ok(copies) => Ok(copies),
            Err(cause) => {
                self.stats.dropped.bump(cause);
                Err(cause)
            }
        }
    }

    fn pipeline(
        &mut self,
        now: Instant,
        start: Instant,
        len: usize,
        mut ecn: Ecn,
        rng: &mut StdRng,
    ) -> Result<Vec<Scheduled>, DropCause> {
        let cfg = &self.config;
        // 1. MTU.
        if cfg.mtu.is_some_and(|mtu| len > mtu) {
            return Err(DropCause::Mtu);
        }
        // 2. Blackhole windows, half-open, by offer time.
        let offset = now.saturating_duration_since(start);
        if cfg
            .blackholes
            .iter()
            .any(|b| b.start <= offset && offset < b.end)
        {
            return Err(DropCause::Blackhole);
        }
        // ECN filter.
        if ecn.is_ecn_capable() {
            if cfg.drop_ecn_capable {
                return Err(DropCause::EcnCapable);
            }
            if cfg.bleach_ecn {
                ecn = Ecn::NotEct;
                self.stats.ecn_bleached += 1;
            }
        }
        // 3. Queue and serialisation.
        let departure = match cfg.rate_bps {
            None => now,
            Some(_) => {
                while self.queue.front().is_some_and(|&(end, _)| end <= now) {
                    if let Some((_, size)) = self.queue.pop_front() {
                        self.queued_bytes -= size;
                    }
                }
                let wire = len.saturating_add(cfg.overhead_bytes);
                let backlog = self.queued_bytes.saturating_add(wire);
                if cfg.queue_limit_bytes.is_some_and(|limit| backlog > limit) {
                    return Err(DropCause::QueueFull);
                }
                if matches!(ecn, Ecn::Ect0 | Ecn::Ect1)
                    && cfg
                        .ce_threshold_bytes
                        .is_some_and(|k| self.queued_bytes >= k)
                {
                    ecn = Ecn::Ce;
                    self.stats.ce_marked += 1;
                }
                let begin = self.busy_until.map_or(now, |busy| busy.max(now));
                let end = begin + cfg.serialization_time(len);
                self.busy_until = Some(end);
                self.queue.push_back((end, wire));
                self.queued_bytes = backlog;
                self.stats.queue_high_water_bytes = self.stats.queue_high_water_bytes.max(backlog);
                end
            }
        };
        // 4. Loss.
        let lost = match cfg.loss {
            LossModel::None => false,
            LossModel::Bernoulli { p } => p > 0.0 && rng.gen_bool(p),
            LossModel::GilbertElliott(ge) => {
                let p_loss = if self.ge_bad {
                    ge.loss_in_bad
                } else {
                    ge.loss_in_good
                };
                let lost = p_loss > 0.0 && rng.gen_bool(p_loss);
                let p_switch = if self.ge_bad { ge.r } else { ge.p };
                if p_switch > 0.0 && rng.gen_bool(p_switch) {
                    self.ge_bad = !self.ge_bad;
                }
                lost
            }
        };
        if lost {
            return Err(DropCause::Loss);
        }
        // 5. Duplication.
        let copies = if cfg.duplicate > 0.0 && rng.gen_bool(cfg.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(copies);
        for copy in 0..copies {
            let cfg = &self.config;
            // 6. Corruption.
            let corrupted_bit = if len > 0 && cfg.corrupt > 0.0 && rng.gen_bool(cfg.corrupt) {
                self.stats.corrupted += 1;
                Some(rng.gen_range(0..len.saturating_mul(8)))
            } else {
                None
            };
            // 7. Delay and jitter.
            let mut delay = cfg.delay;
            if !cfg.jitter.is_zero() {
                let bound = i64::try_from(cfg.jitter.as_nanos()).unwrap_or(i64::MAX);
                let shift = rng.gen_range(-bound..=bound);
                let base = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
                let total = base.saturating_add(shift).max(0);
                delay = Duration::from_nanos(total.unsigned_abs());
            }
            // 8. Reordering.
            let reordered = cfg.reorder_probability > 0.0 && rng.gen_bool(cfg.reorder_probability);
            let mut arrival = departure + delay;
            if reordered {
                self.stats.reordered += 1;
                arrival += cfg.reorder_delay;
            } else if cfg.preserve_order {
                if let Some(last) = self.last_arrival {
                    arrival = arrival.max(last);
                }
                self.last_arrival = Some(arrival);
            }
            out.push(Scheduled {
                arrival,
                duplicate: copy == 1,
                reordered,
                corrupted_bit,
                ecn,
            });
        }
        Ok(out)
    }
}
