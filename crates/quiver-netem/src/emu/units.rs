//! Units of link parameters: rates, durations, loss, sizes; link parameters and profiles.
//!
//! Parsers accept what `tc` users type, with one deliberate difference: `mbps` means
//! mega**bits** per second (the common networking usage, e.g. "a 10 Mbps link"), whereas
//! `tc` reads it as bytes. Byte rates must be spelled with a capital `B` (`10MBps`,
//! `10MB/s`). All prefixes are decimal (k = 1000), as in `tc`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::{EmuError, Result};

/// Largest accepted rate: 10 Tbit/s (anything above is a typo).
const MAX_RATE_BPS: f64 = 10e12;
/// Largest accepted delay or jitter: one hour.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Largest accepted queue size: 4 GiB − 1 (what the kernel's fifo limit can hold).
const MAX_QUEUE_BYTES: f64 = 4_294_967_295.0;

fn invalid(what: &'static str, input: &str, reason: impl Into<String>) -> EmuError {
    EmuError::InvalidValue {
        what,
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// Splits `"12.5mbit"` into `(12.5, "mbit")`. Only digits and one `.` make the number:
/// no sign, exponent, `inf` or `nan`.
fn split_number<'a>(what: &'static str, input: &'a str) -> Result<(f64, &'a str)> {
    let s = input.trim();
    if s.starts_with('-') {
        return Err(invalid(what, input, "must not be negative"));
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() || !num.bytes().any(|b| b.is_ascii_digit()) {
        return Err(invalid(what, input, "expected a number followed by a unit"));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| invalid(what, input, "malformed number"))?;
    if !value.is_finite() {
        return Err(invalid(what, input, "number out of range"));
    }
    Ok((value, unit.trim()))
}

/// A link rate in bits per second (always > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// A rate of `bps` bits per second; `None` if zero.
    pub fn from_bits_per_sec(bps: u64) -> Option<Self> {
        (bps > 0).then_some(Self(bps))
    }

    /// Bits per second.
    pub fn bits_per_sec(self) -> u64 {
        self.0
    }

    /// Parses `5mbit`, `500kbit`, `1gbit`, `10Mbps`, `2.5Mbit/s`, `1MBps` (bytes), or a bare
    /// number of bits per second.
    pub fn parse(input: &str) -> Result<Self> {
        const WHAT: &str = "rate";
        let (value, unit) = split_number(WHAT, input)?;
        let (prefix, per_byte) = rate_unit(unit).ok_or_else(|| {
            invalid(WHAT, input, "unknown unit (use bit, kbit, mbit, gbit, tbit, or kbps/mbps/gbps for bits, kBps/MBps for bytes)")
        })?;
        let bps = value * prefix * if per_byte { 8.0 } else { 1.0 };
        if bps > MAX_RATE_BPS {
            return Err(invalid(WHAT, input, "larger than 10 Tbit/s"));
        }
        // Range checked above: the conversion is exact for integers below 2^53.
        let bps = bps.round() as u64;
        Self::from_bits_per_sec(bps).ok_or_else(|| {
            invalid(
                WHAT,
                input,
                "must be at least 1 bit/s (omit the rate for an unlimited link)",
            )
        })
    }
}

/// Returns (decimal multiplier, is-bytes) for a rate unit.
fn rate_unit(unit: &str) -> Option<(f64, bool)> {
    let (stem, per_byte) = if let Some(p) = unit
        .strip_suffix("Bps")
        .or_else(|| unit.strip_suffix("B/s"))
    {
        (p.to_ascii_lowercase(), true)
    } else {
        let lower = unit.to_ascii_lowercase();
        let stem = ["bit/s", "bits", "bit", "bps", "b/s"]
            .iter()
            .find_map(|suffix| lower.strip_suffix(suffix).map(str::to_owned));
        match stem {
            Some(stem) => (stem, false),
            None if unit.is_empty() => (String::new(), false),
            None => return None,
        }
    };
    let prefix = match stem.as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    };
    Some((prefix, per_byte))
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bps = self.0;
        for (div, unit) in [
            (1_000_000_000_000, "tbit"),
            (1_000_000_000, "gbit"),
            (1_000_000, "mbit"),
            (1_000, "kbit"),
        ] {
            if bps.is_multiple_of(div) {
                return write!(f, "{}{unit}", bps / div);
            }
        }
        write!(f, "{bps}bit")
    }
}

impl FromStr for Rate {
    type Err = EmuError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Parses a duration: `25ms`, `1s`, `1.5ms`, `500us`, `100ns`, or `0`.
pub fn parse_duration(input: &str) -> Result<Duration> {
    parse_duration_as("duration", input)
}

pub(crate) fn parse_duration_as(what: &'static str, input: &str) -> Result<Duration> {
    let (value, unit) = split_number(what, input)?;
    let scale_ns = match unit {
        "" if value == 0.0 => 1.0,
        "" => return Err(invalid(what, input, "missing unit (use ms, s, us or ns)")),
        "ns" => 1.0,
        "us" | "µs" | "usec" => 1e3,
        "ms" | "msec" => 1e6,
        "s" | "sec" => 1e9,
        _ => return Err(invalid(what, input, "unknown unit (use ms, s, us or ns)")),
    };
    let ns = value * scale_ns;
    if ns > MAX_DURATION.as_nanos() as f64 {
        return Err(invalid(what, input, "longer than one hour"));
    }
    // Range checked above.
    Ok(Duration::from_nanos(ns.round() as u64))
}

/// A packet loss probability in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Loss(f64);

impl Loss {
    /// No loss.
    pub const NONE: Self = Self(0.0);

    /// A loss probability; `None` unless `0 <= p <= 1`.
    pub fn from_fraction(p: f64) -> Option<Self> {
        (0.0..=1.0).contains(&p).then_some(Self(p))
    }

    /// The probability in `[0, 1]`.
    pub fn fraction(self) -> f64 {
        self.0
    }

    /// True if no packet is ever dropped.
    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }

    /// Parses `0.5%` (percent) or `0.005` (a fraction).
    pub fn parse(input: &str) -> Result<Self> {
        const WHAT: &str = "loss";
        let (value, unit) = split_number(WHAT, input)?;
        let p = match unit {
            "%" => value / 100.0,
            "" if value > 1.0 => {
                return Err(invalid(
                    WHAT,
                    input,
                    format!("a bare number is a fraction in [0, 1]; did you mean {value}%?"),
                ))
            }
            "" => value,
            _ => {
                return Err(invalid(
                    WHAT,
                    input,
                    "expected a percentage (0.5%) or a fraction (0.005)",
                ))
            }
        };
        Self::from_fraction(p).ok_or_else(|| invalid(WHAT, input, "must be between 0% and 100%"))
    }

    /// The threshold `t` such that dropping when a uniform random `u32` is below `t`
    /// drops with this probability; `None` means "always drop" (p = 1).
    pub(crate) fn u32_threshold(self) -> Option<u32> {
        let t = (self.0 * 4_294_967_296.0).round();
        // In range [0, 2^32); p = 1 gives 2^32, which does not fit: drop everything.
        (t < 4_294_967_296.0).then_some(t as u32)
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

impl FromStr for Loss {
    type Err = EmuError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Parses a queue size in bytes: `64kb`, `1mb`, `150000`, `100KiB`. Decimal `k`/`m`
/// as in `tc`; `KiB`/`MiB` binary.
pub fn parse_size(input: &str) -> Result<u64> {
    const WHAT: &str = "queue size";
    let (value, unit) = split_number(WHAT, input)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        _ => {
            return Err(invalid(
                WHAT,
                input,
                "unknown unit (use b, kb, mb, KiB, MiB)",
            ))
        }
    };
    let bytes = (value * scale).round();
    if bytes > MAX_QUEUE_BYTES {
        return Err(invalid(WHAT, input, "larger than 4 GiB"));
    }
    if bytes < 1600.0 {
        return Err(invalid(
            WHAT,
            input,
            "must hold at least one full-size frame (1600 bytes)",
        ));
    }
    // Range checked above.
    Ok(bytes as u64)
}

/// Impairments of one direction of a link.
///
/// Semantics (in this order): a frame is delayed by `delay ± jitter` (uniform, never
/// reordered: a frame is not released before the one in front of it), then it is
/// dropped with probability `loss`, then it waits in a `queue`-byte FIFO drained at
/// `rate` (Ethernet header included in the rate, like `tc`). Dropped frames do not use
/// capacity.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkParams {
    /// Bottleneck rate; `None` = unlimited.
    pub rate: Option<Rate>,
    /// One-way propagation delay of this direction.
    pub delay: Duration,
    /// Uniform jitter: each frame gets a delay in `[delay - jitter, delay + jitter]`.
    pub jitter: Duration,
    /// Random (Bernoulli) loss probability.
    pub loss: Loss,
    /// Bottleneck queue size in bytes; `None` = [`LinkParams::default_queue_bytes`].
    pub queue_bytes: Option<u64>,
}

impl LinkParams {
    /// The queue used when none is given: 100 ms at the link rate, at least 64 KiB, at
    /// most 64 MiB.
    pub fn default_queue_bytes(&self) -> u64 {
        let at_rate = self.rate.map_or(0, |r| r.bits_per_sec() / 8 / 10);
        at_rate.clamp(64 * 1024, 64 * 1024 * 1024)
    }

    /// The effective queue size.
    pub fn queue(&self) -> u64 {
        self.queue_bytes
            .unwrap_or_else(|| self.default_queue_bytes())
    }

    /// True if this direction changes nothing (no rate, delay, jitter or loss).
    pub fn is_transparent(&self) -> bool {
        self.rate.is_none() && self.delay.is_zero() && self.jitter.is_zero() && self.loss.is_zero()
    }
}

impl fmt::Display for LinkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate {
            Some(r) => write!(f, "rate {r}")?,
            None => write!(f, "rate unlimited")?,
        }
        write!(f, ", delay {:?}", self.delay)?;
        if !self.jitter.is_zero() {
            write!(f, " ± {:?}", self.jitter)?;
        }
        write!(f, ", loss {}", self.loss)
    }
}

/// Named link settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// The seeds' "3G" setting: 5 Mbit/s each way, 25 ms one-way delay each way (50 ms
    /// added round-trip time), 0.5% random loss each way.
    ThreeG,
    /// No impairment at all (the wire still forwards every frame); also `lossless`.
    None,
    /// A wired LAN: 1 Gbit/s, 50 µs one-way delay, 1 MB queue, no loss.
    Lan,
    /// Wi-Fi: 50 Mbit/s, 5 ms ± 2 ms one-way delay, 256 kB queue, 0.1% loss.
    Wifi,
    /// LTE: 20 Mbit/s, 20 ms ± 5 ms one-way delay, 256 kB queue, 0.1% loss.
    Lte,
    /// Geostationary satellite: 20 Mbit/s, 300 ms one-way delay, 1.5 MB queue, 0.1% loss.
    Satellite,
}

impl Profile {
    /// Names accepted by [`Profile::parse`]. Apart from `none`/`lossless`, they mirror the
    /// simulator's profiles of the same names (`quiver_netem::sim::LinkConfig::profile`),
    /// each direction alike; the simulator's Gilbert–Elliott `bursty` has no equivalent.
    pub const NAMES: &'static [&'static str] =
        &["3g", "lan", "wifi", "lte", "satellite", "none", "lossless"];

    /// Parses a profile name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "3g" => Ok(Self::ThreeG),
            "none" | "lossless" => Ok(Self::None),
            "lan" => Ok(Self::Lan),
            "wifi" => Ok(Self::Wifi),
            "lte" => Ok(Self::Lte),
            "satellite" => Ok(Self::Satellite),
            _ => Err(EmuError::UnknownProfile(name.to_owned())),
        }
    }

    /// The parameters of each direction (profiles are symmetric).
    pub fn params(self) -> LinkParams {
        match self {
            Self::ThreeG => LinkParams {
                rate: Rate::from_bits_per_sec(5_000_000),
                delay: Duration::from_millis(25),
                jitter: Duration::ZERO,
                loss: Loss(0.005),
                queue_bytes: None,
            },
            Self::None => LinkParams::default(),
            Self::Lan => LinkParams {
                rate: Rate::from_bits_per_sec(1_000_000_000),
                delay: Duration::from_micros(50),
                jitter: Duration::ZERO,
                loss: Loss::NONE,
                queue_bytes: Some(1_000_000),
            },
            Self::Wifi => LinkParams {
                rate: Rate::from_bits_per_sec(50_000_000),
                delay: Duration::from_millis(5),
                jitter: Duration::from_millis(2),
                loss: Loss(0.001),
                queue_bytes: Some(256_000),
            },
            Self::Lte => LinkParams {
                rate: Rate::from_bits_per_sec(20_000_000),
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                loss: Loss(0.001),
                queue_bytes: Some(256_000),
            },
            Self::Satellite => LinkParams {
                rate: Rate::from_bits_per_sec(20_000_000),
                delay: Duration::from_millis(300),
                jitter: Duration::ZERO,
                loss: Loss(0.001),
                queue_bytes: Some(1_500_000),
            },
        }
    }
}

impl FromStr for Profile {
    type Err = EmuError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates() {
        let r = |s: &str| Rate::parse(s).map(Rate::bits_per_sec);
        assert_eq!(r("5mbit").unwrap(), 5_000_000);
        assert_eq!(r("500kbit").unwrap(), 500_000);
        assert_eq!(r("1gbit").unwrap(), 1_000_000_000);
        assert_eq!(r("10Mbps").unwrap(), 10_000_000);
        assert_eq!(r("2.5Mbit/s").unwrap(), 2_500_000);
        assert_eq!(r("1MBps").unwrap(), 8_000_000);
        assert_eq!(r("1kB/s").unwrap(), 8_000);
        assert_eq!(r("1200").unwrap(), 1200);
        assert_eq!(r(" 5 mbit ").unwrap(), 5_000_000);
        for bad in [
            "",
            "mbit",
            "-5mbit",
            "5furlongs",
            "0",
            "0mbit",
            "1e3mbit",
            "inf",
            "nan",
            "5..5mbit",
            "11tbit",
            ".",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            Rate::parse("-1mbit"),
            Err(EmuError::InvalidValue { what: "rate", .. })
        ));
        assert_eq!(Rate::parse("5mbit").unwrap().to_string(), "5mbit");
        assert_eq!(Rate::parse("1234bit").unwrap().to_string(), "1234bit");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("25ms").unwrap(), Duration::from_millis(25));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "25", "-25ms", "25 parsecs", "2h", "3601s", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn losses() {
        assert_eq!(Loss::parse("0.5%").unwrap().fraction(), 0.005);
        assert_eq!(Loss::parse("0.005").unwrap().fraction(), 0.005);
        assert_eq!(Loss::parse("100%").unwrap().fraction(), 1.0);
        assert_eq!(Loss::parse("0").unwrap(), Loss::NONE);
        for bad in ["101%", "5", "-1%", "%", "1.5", "0.5 percent"] {
            assert!(Loss::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Loss::parse("100%").unwrap().u32_threshold(), None);
        assert_eq!(Loss::NONE.u32_threshold(), Some(0));
        assert_eq!(Loss::parse("50%").unwrap().u32_threshold(), Some(1 << 31));
    }

    #[test]
    fn sizes_and_profiles() {
        assert_eq!(parse_size("64kb").unwrap(), 64_000);
        assert_eq!(parse_size("100KiB").unwrap(), 102_400);
        assert!(parse_size("10").is_err());
        assert!(parse_size("5gb").is_err());
        let p = Profile::parse("3G").unwrap().params();
        assert_eq!(p.rate.unwrap().bits_per_sec(), 5_000_000);
        assert_eq!(p.delay, Duration::from_millis(25));
        assert_eq!(p.loss.fraction(), 0.005);
        assert_eq!(p.default_queue_bytes(), 65_536);
        assert!(matches!(
            Profile::parse("5g"),
            Err(EmuError::UnknownProfile(_))
        ));
        assert!(Profile::None.params().is_transparent());
        assert_eq!(Profile::parse("lossless").unwrap(), Profile::None);
        for name in Profile::NAMES {
            let p = Profile::parse(name).unwrap().params();
            assert!(p.jitter <= p.delay, "{name}");
            assert!(p.queue() >= 1600, "{name}");
        }
        let lte = Profile::parse("LTE").unwrap().params();
        assert_eq!(lte.rate.unwrap().bits_per_sec(), 20_000_000);
        assert_eq!(lte.jitter, Duration::from_millis(5));
        assert_eq!(lte.queue(), 256_000);
        assert!(matches!(
            Profile::parse("bursty"),
            Err(EmuError::UnknownProfile(_))
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = Rate::parse(&s);
            let _ = parse_duration(&s);
            let _ = Loss::parse(&s);
            let _ = parse_size(&s);
            let _ = Profile::parse(&s);
        }

        #[test]
        fn unit_like_input_never_panics(n in "[-0-9.]{0,30}", u in "(|bit|kbit|Mbps|MBps|ms|s|us|%|kb|KiB|x)") {
            let s = format!("{n}{u}");
            let _ = Rate::parse(&s);
            let _ = parse_duration(&s);
            let _ = Loss::parse(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn rate_display_round_trips(bps in 1u64..10_000_000_000_000) {
            let r = Rate::from_bits_per_sec(bps).unwrap();
            prop_assert_eq!(Rate::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn loss_percent_round_trips(p in 0u32..=100_000) {
            let s = format!("{}%", f64::from(p) / 1000.0);
            let l = Loss::parse(&s).unwrap();
            prop_assert!((l.fraction() - f64::from(p) / 100_000.0).abs() < 1e-12);
        }
    }
}
