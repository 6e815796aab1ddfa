//! The connection's timers: a closed set in a small table, so the next deadline is a
//! minimum over a fixed array rather than a search.

use std::time::Instant;

/// Every timer a connection can arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Idle timeout (RFC 9000 §10.1).
    Idle = 0,
    /// Loss detection or PTO (RFC 9002 §6).
    LossDetection = 1,
    /// Delayed ACK deadline.
    AckDelay = 2,
    /// End of the closing or draining period.
    Close = 3,
    /// Keep-alive PING.
    KeepAlive = 4,
    /// Pacer releases the next packet.
    Pacing = 5,
    /// Drop the previous key phase's receive key (RFC 9001 §6.5).
    KeyDiscard = 6,
    /// A stream's hard deadline (stream scheduler).
    StreamExpiry = 7,
    /// A PATH_CHALLENGE is due again or its validation ends (RFC 9000 §8.2.4).
    PathValidation = 8,
}

impl Timer {
    pub(crate) const ALL: [Timer; 9] = [
        Timer::Idle,
        Timer::LossDetection,
        Timer::AckDelay,
        Timer::Close,
        Timer::KeepAlive,
        Timer::Pacing,
        Timer::KeyDiscard,
        Timer::StreamExpiry,
        Timer::PathValidation,
    ];
}

/// Deadlines of all timers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timers {
    data: [Option<Instant>; 9],
}

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.data[t as usize] = Some(at);
    }
    pub(crate) fn set_opt(&mut self, t: Timer, at: Option<Instant>) {
        self.data[t as usize] = at;
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.data[t as usize] = None;
    }
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.data[t as usize]
    }
    pub(crate) fn is_expired(&self, t: Timer, now: Instant) -> bool {
        self.data[t as usize].is_some_and(|at| at <= now)
    }
    pub(crate) fn next(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }
}
