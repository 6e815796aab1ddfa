//! Link configuration: builders, validation and named profiles.

use std::time::Duration;

use super::SimError;

/// The largest delay-like setting a link accepts (propagation delay, jitter, reordering
/// delay, blackhole offsets): one day of virtual time. Larger values are certainly a
/// mistake and could overflow [`Instant`](std::time::Instant) arithmetic.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// How a link loses packets (decided once per packet that survived the queue).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum LossModel {
    /// No random loss.
    #[default]
    None,
    /// Each packet is lost independently with probability `p`.
    Bernoulli {
        /// Loss probability in `[0, 1]`.
        p: f64,
    },
    /// Bursty loss from a two-state Markov chain; see [`GilbertElliott`].
    GilbertElliott(GilbertElliott),
}

/// Gilbert–Elliott loss: a two-state (good/bad) Markov chain stepped once per packet.
///
/// For each packet the link first decides loss with the probability of its current state
/// (`loss_in_good` or `loss_in_bad`), then moves good→bad with probability `p` or bad→good
/// with probability `r`. The chain starts in the good state. In netem's notation
/// `loss_in_bad = 1 − h` and `loss_in_good = 1 − k`. The classic Gilbert model is
/// `loss_in_bad = 1, loss_in_good = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from good to bad after a packet.
    pub p: f64,
    /// Probability of moving from bad to good after a packet.
    pub r: f64,
    /// Loss probability while in the bad state.
    pub loss_in_bad: f64,
    /// Loss probability while in the good state.
    pub loss_in_good: f64,
}

impl GilbertElliott {
    /// The classic Gilbert model: everything is lost in the bad state, nothing in the good.
    pub fn gilbert(p: f64, r: f64) -> Self {
        Self {
            p,
            r,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
        }
    }

    /// Fraction of time spent in the bad state in the long run: `p / (p + r)`
    /// (0 when both are 0, as the chain then stays good).
    pub fn stationary_bad(&self) -> f64 {
        if self.p + self.r == 0.0 {
            0.0
        } else {
            self.p / (self.p + self.r)
        }
    }

    /// Long-run average loss rate: `π_bad · loss_in_bad + π_good · loss_in_good`.
    pub fn stationary_loss(&self) -> f64 {
        let bad = self.stationary_bad();
        bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good
    }
}

/// A time interval during which a link drops everything offered to it.
///
/// Offsets are from the simulation start ([`Sim::start`](super::Sim::start)); the window is
/// half-open, `[start, end)`, and applies to the instant a packet is *offered* to the link
/// (the instant its node sent it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackhole {
    /// First instant (offset from the simulation start) at which packets are dropped.
    pub start: Duration,
    /// First instant after the window (exclusive).
    pub end: Duration,
}

/// Behaviour of one direction of a link.
///
/// `LinkConfig::new()` (= `LinkConfig::default()`, = the `"lossless"` profile) is an ideal
/// link: unlimited rate, zero delay, no impairments. Builder methods add behaviour; the
/// configuration is checked by [`validate`](LinkConfig::validate) when it is installed
/// with [`Sim::set_link`](super::Sim::set_link) or
/// [`Sim::set_default_link`](super::Sim::set_default_link).
///
/// # The packet pipeline
/// Every packet offered to a link goes through these steps, in this order (random draws
/// are made only for features that are enabled, always in this order):
/// 1. **MTU** — a packet longer than [`mtu`](Self::mtu) bytes is dropped.
/// 2. **Blackhole** — a packet offered inside a [`Blackhole`] window is dropped.
///    Then the **ECN filter**: with [`drop_ecn_capable`](Self::drop_ecn_capable) an
///    ECN-capable packet is dropped; with [`bleach_ecn`](Self::bleach_ecn) its ECN field
///    is cleared to Not-ECT.
/// 3. **Queue and rate** — with a [`rate_bps`](Self::rate_bps), packets are serialised one
///    after the other; each takes `8 · (len + overhead_bytes) / rate` seconds (rounded up
///    to the nanosecond). The queue holds every byte that has not finished serialising
///    (including the packet on the wire); a packet that would take it above
///    [`queue_limit_bytes`](Self::queue_limit_bytes) is dropped (drop-tail). An
///    ECN-capable packet that finds at least
///    [`ce_threshold_bytes`](Self::ce_threshold_bytes) queued ahead of it is marked CE.
///    Without a rate the packet leaves at once.
/// 4. **Loss** — [`LossModel`], decided once per packet when it is accepted by the queue
///    (a lost packet still used its share of the link).
/// 5. **Duplication** — with probability [`duplicate`](Self::duplicate) a second copy is
///    made; from here on each copy is handled independently.
/// 6. **Corruption** — with probability [`corrupt`](Self::corrupt) one uniformly chosen bit
///    of the payload is flipped.
/// 7. **Delay** — arrival = end of serialisation + [`delay`](Self::delay) + a jitter drawn
///    uniformly from `[-jitter, +jitter]` (the total never goes below zero). With
///    [`preserve_order`](Self::preserve_order) an arrival is pushed back so it never
///    overtakes the previous packet on this link.
/// 8. **Reordering** — with probability [`reorder_probability`](Self::reorder_probability)
///    the copy is held back by an extra [`reorder_delay`](Self::reorder_delay), letting
///    later packets overtake it (order preservation does not apply to it, and it does not
///    hold later packets back).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Link rate in bits per second; `None` = unlimited (no serialisation delay, no queue).
    pub rate_bps: Option<u64>,
    /// Drop-tail queue limit in bytes; `None` = unbounded. Only meaningful with a rate.
    pub queue_limit_bytes: Option<usize>,
    /// Per-packet bytes added to the payload length for rate and queue accounting (e.g. 28
    /// for IPv4 + UDP headers). Default 0: only the UDP payload is counted.
    pub overhead_bytes: usize,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Jitter bound: each packet's delay is changed by a uniform draw from
    /// `[-jitter, +jitter]`.
    pub jitter: Duration,
    /// Keep packets in order despite jitter (a packet is delayed until the previous one
    /// arrived).
    pub preserve_order: bool,
    /// Random loss.
    pub loss: LossModel,
    /// Probability that a packet is held back by [`reorder_delay`](Self::reorder_delay).
    pub reorder_probability: f64,
    /// Extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that one bit of a packet is flipped.
    pub corrupt: f64,
    /// Windows during which everything is dropped.
    pub blackholes: Vec<Blackhole>,
    /// Largest payload (bytes) the link carries; longer packets are dropped. `None` = no
    /// limit.
    pub mtu: Option<usize>,
    /// ECN marking by the queue (step AQM, like DCTCP's `K`): an ECN-capable packet that
    /// finds at least this many bytes queued ahead of it is marked CE (and queued as
    /// usual). `None` = never mark. Only meaningful with a rate.
    pub ce_threshold_bytes: Option<usize>,
    /// Clear the ECN field of every packet (a middlebox that "bleaches" ECN).
    pub bleach_ecn: bool,
    /// Drop every ECN-capable packet (ECT(0), ECT(1) or CE), as some broken middleboxes
    /// do; counted as [`DropCause::EcnCapable`](super::DropCause::EcnCapable).
    pub drop_ecn_capable: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The names accepted by [`LinkConfig::profile`].
pub const PROFILES: &[&str] = &[
    "lossless",
    "lan",
    "wifi",
    "lte",
    "3g",
    "satellite",
    "bursty",
];

impl LinkConfig {
    /// An ideal link: unlimited rate, no delay, no impairments.
    pub fn new() -> Self {
        Self {
            rate_bps: None,
            queue_limit_bytes: None,
            overhead_bytes: 0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            preserve_order: false,
            loss: LossModel::None,
            reorder_probability: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            blackholes: Vec::new(),
            mtu: None,
            ce_threshold_bytes: None,
            bleach_ecn: false,
            drop_ecn_capable: false,
        }
    }

    /// A named profile, describing **one direction** of a link (install it in both
    /// directions, e.g. with [`Sim::set_link_pair`](super::Sim::set_link_pair), to get the
    /// round-trip figures below).
    ///
    /// | name | rate | one-way delay (RTT added) | loss per direction | queue | other |
    /// |---|---|---|---|---|---|
    /// | `lossless` | unlimited | 0 | none | — | ideal link |
    /// | `lan` | 1 Gbit/s | 50 µs (0.1 ms) | none | 1 MB | |
    /// | `wifi` | 50 Mbit/s | 5 ms (10 ms) | 0.1 % Bernoulli | 256 kB | ±2 ms jitter, order kept |
    /// | `lte` | 20 Mbit/s | 20 ms (40 ms) | 0.1 % Bernoulli | 256 kB | ±5 ms jitter, order kept |
    /// | `3g` | 5 Mbit/s | 25 ms (50 ms) | 0.5 % Bernoulli | 64 kB | |
    /// | `satellite` | 20 Mbit/s | 300 ms (600 ms) | 0.1 % Bernoulli | 1.5 MB | |
    /// | `bursty` | 10 Mbit/s | 10 ms (20 ms) | Gilbert–Elliott `p=0.01, r=0.25, bad=0.5, good=0` (≈1.9 %) | 128 kB | |
    ///
    /// **`3g`** is the seeds' setting "5 Mbit/s, 50 ms added latency, 0.5 % loss": the
    /// 50 ms is the added *round-trip* latency, split evenly as 25 ms of propagation delay
    /// per direction (as `quiver netem --rate 5mbit --delay 25ms --loss 0.5%`), and each
    /// direction independently loses 0.5 % of its packets. The queue holds 64 kB, about
    /// 100 ms of traffic at 5 Mbit/s. Rates count UDP payload bytes only
    /// ([`overhead_bytes`](Self::overhead_bytes) = 0).
    ///
    /// Unknown names give [`SimError::UnknownProfile`]; [`PROFILES`] lists the known ones.
    pub fn profile(name: &str) -> Result<Self, SimError> {
        let base = Self::new();
        let cfg = match name {
            "lossless" => base,
            "lan" => base
                .rate_bps(1_000_000_000)
                .queue_limit_bytes(1_000_000)
                .delay(Duration::from_micros(50)),
            "wifi" => base
                .rate_bps(50_000_000)
                .queue_limit_bytes(256_000)
                .delay(Duration::from_millis(5))
                .jitter(Duration::from_millis(2))
                .preserve_order(true)
                .loss(0.001),
            "lte" => base
                .rate_bps(20_000_000)
                .queue_limit_bytes(256_000)
                .delay(Duration::from_millis(20))
                .jitter(Duration::from_millis(5))
                .preserve_order(true)
                .loss(0.001),
            "3g" => base
                .rate_bps(5_000_000)
                .queue_limit_bytes(64_000)
                .delay(Duration::from_millis(25))
                .loss(0.005),
            "satellite" => base
                .rate_bps(20_000_000)
                .queue_limit_bytes(1_500_000)
                .delay(Duration::from_millis(300))
                .loss(0.001),
            "bursty" => base
                .rate_bps(10_000_000)
                .queue_limit_bytes(128_000)
                .delay(Duration::from_millis(10))
                .gilbert_elliott(GilbertElliott {
                    p: 0.01,
                    r: 0.25,
                    loss_in_bad: 0.5,
                    loss_in_good: 0.0,
                }),
            _ => {
                return Err(SimError::UnknownProfile {
                    name: name.to_owned(),
                    known: PROFILES.join(", "),
                })
            }
        };
        Ok(cfg)
    }

    /// Sets the link rate in bits per second (must be at least 1).
    pub fn rate_bps(mut self, bits_per_second: u64) -> Self {
        self.rate_bps = Some(bits_per_second);
        self
    }

    /// Removes the rate limit (and with it serialisation delay and queueing).
    pub fn unlimited_rate(mut self) -> Self {
        self.rate_bps = None;
        self
    }

    /// Sets the drop-tail queue limit in bytes (must be at least 1).
    pub fn queue_limit_bytes(mut self, bytes: usize) -> Self {
        self.queue_limit_bytes = Some(bytes);
        self
    }

    /// Makes the queue unbounded.
    pub fn unbounded_queue(mut self) -> Self {
        self.queue_limit_bytes = None;
        self
    }

    /// Sets the per-packet overhead counted by the rate limiter and queue.
    pub fn overhead_bytes(mut self, bytes: usize) -> Self {
        self.overhead_bytes = bytes;
        self
    }

    /// Sets the one-way propagation delay.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the jitter bound.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Keeps (or stops keeping) packets in order despite jitter.
    pub fn preserve_order(mut self, preserve: bool) -> Self {
        self.preserve_order = preserve;
        self
    }

    /// Bernoulli loss with probability `p`.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = LossModel::Bernoulli { p };
        self
    }

    /// Gilbert–Elliott loss.
    pub fn gilbert_elliott(mut self, model: GilbertElliott) -> Self {
        self.loss = LossModel::GilbertElliott(model);
        self
    }

    /// Any loss model.
    pub fn loss_model(mut self, model: LossModel) -> Self {
        self.loss = model;
        self
    }

    /// With probability `p`, holds a packet back by an extra `extra_delay`.
    pub fn reorder(mut self, p: f64, extra_delay: Duration) -> Self {
        self.reorder_probability = p;
        self.reorder_delay = extra_delay;
        self
    }

    /// With probability `p`, delivers a packet twice.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// With probability `p`, flips one random bit of a packet.
    pub fn corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Adds a blackhole window `[start, end)`, offsets from the simulation start.
    pub fn blackhole(mut self, start: Duration, end: Duration) -> Self {
        self.blackholes.push(Blackhole { start, end });
        self
    }

    /// Sets the largest payload (bytes) the link carries (must be at least 1).
    pub fn mtu(mut self, bytes: usize) -> Self {
        self.mtu = Some(bytes);
        self
    }

    /// Mark ECN-capable packets CE when at least `bytes` are queued ahead of them (see
    /// [`ce_threshold_bytes`](Self::ce_threshold_bytes)).
    pub fn ce_threshold(mut self, bytes: usize) -> Self {
        self.ce_threshold_bytes = Some(bytes);
        self
    }

    /// Clear the ECN field of every packet.
    pub fn bleach_ecn(mut self, bleach: bool) -> Self {
        self.bleach_ecn = bleach;
        self
    }

    /// Drop every ECN-capable packet.
    pub fn drop_ecn_capable(mut self, drop: bool) -> Self {
        self.drop_ecn_capable = drop;
        self
    }

    /// Checks the configuration: probabilities in `[0, 1]` (not NaN), non-zero rate, queue
    /// limit and MTU, non-empty blackhole windows, delays at most [`MAX_DELAY`].
    pub fn validate(&self) -> Result<(), SimError> {
        fn prob(field: &'static str, value: f64) -> Result<(), SimError> {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(SimError::InvalidProbability { field, value })
            }
        }
        fn dur(field: &'static str, value: Duration) -> Result<(), SimError> {
            if value <= MAX_DELAY {
                Ok(())
            } else {
                Err(SimError::DurationTooLarge {
                    field,
                    value,
                    max: MAX_DELAY,
                })
            }
        }
        if self.rate_bps == Some(0) {
            return Err(SimError::ZeroRate);
        }
        if self.queue_limit_bytes == Some(0) {
            return Err(SimError::ZeroQueueLimit);
        }
        if self.mtu == Some(0) {
            return Err(SimError::ZeroMtu);
        }
        dur("delay", self.delay)?;
        dur("jitter", self.jitter)?;
        dur("reorder_delay", self.reorder_delay)?;
        match self.loss {
            LossModel::None => {}
            LossModel::Bernoulli { p } => prob("loss", p)?,
            LossModel::GilbertElliott(ge) => {
                prob("gilbert_elliott.p", ge.p)?;
                prob("gilbert_elliott.r", ge.r)?;
                prob("gilbert_elliott.loss_in_bad", ge.loss_in_bad)?;
                prob("gilbert_elliott.loss_in_good", ge.loss_in_good)?;
            }
        }
        prob("reorder_probability", self.reorder_probability)?;
        prob("duplicate", self.duplicate)?;
        prob("corrupt", self.corrupt)?;
        for b in &self.blackholes {
            dur("blackhole.end", b.end)?;
            if b.end <= b.start {
                return Err(SimError::InvalidBlackhole {
                    start: b.start,
                    end: b.end,
                });
            }
        }
        Ok(())
    }

    /// Time to serialise a packet of `len` payload bytes at this link's rate (zero when
    /// the rate is unlimited), rounded up to the nanosecond.
    pub fn serialization_time(&self, len: usize) -> Duration {
        match self.rate_bps {
            Some(rate) if rate > 0 => {
                let bits = (len as u128 + self.overhead_bytes as u128) * 8;
                let nanos = (bits * 1_000_000_000).div_ceil(rate as u128);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            _ => Duration::ZERO,
        }
    }
}
