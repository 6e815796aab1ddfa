//! Arrival process and workload generation: the same request times and class draws for
//! every scheme of a run (seeded).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::mix::{parse_duration, ClassSpec};

/// How request arrival times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Poisson process: exponential inter-arrival times with this mean.
    Poisson(Duration),
    /// Every request arrives at time zero.
    Burst,
    /// Evenly spaced arrivals, this far apart.
    Uniform(Duration),
}

impl FromStr for Arrival {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let gap = |arg: Option<&str>| -> Result<Duration, String> {
            let d = parse_duration(arg.unwrap_or("100ms"))?;
            if d.is_zero() {
                return Err("the inter-arrival time must be positive".into());
            }
            Ok(d)
        };
        match kind.to_ascii_lowercase().as_str() {
            "poisson" => Ok(Arrival::Poisson(gap(arg)?)),
            "uniform" => Ok(Arrival::Uniform(gap(arg)?)),
            "burst" if arg.is_none() => Ok(Arrival::Burst),
            _ => Err(format!(
                "invalid arrival process {s:?} (expected poisson:100ms, burst or uniform:100ms)"
            )),
        }
    }
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arrival::Poisson(d) => write!(f, "poisson:{}ms", d.as_millis()),
            Arrival::Burst => f.write_str("burst"),
            Arrival::Uniform(d) => write!(f, "uniform:{}ms", d.as_millis()),
        }
    }
}

/// One request of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Request index (0-based, in arrival order).
    pub id: u64,
    /// Index into the mix.
    pub class: u8,
    /// Arrival time after the start of the run.
    pub at: Duration,
    /// Request (= response) size in bytes.
    pub size: usize,
}

/// Draws `n` jobs: arrival times from `arrival`, classes by share, from `seed`.
pub fn workload(mix: &[ClassSpec], arrival: Arrival, n: usize, seed: u64) -> Vec<Job> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total: f64 = mix.iter().map(|c| c.share).sum();
    let mut t = Duration::ZERO;
    (0..n)
        .map(|i| {
            let at = match arrival {
                Arrival::Burst => Duration::ZERO,
                Arrival::Uniform(gap) => gap * i as u32,
                Arrival::Poisson(mean) => {
                    // Inverse-CDF sampling of Exp(1/mean); 1 - u is in (0, 1].
                    let u: f64 = rng.gen();
                    t += mean.mul_f64(-(1.0 - u).ln());
                    t
                }
            };
            let mut pick = rng.gen::<f64>() * total;
            let mut class = mix.len() - 1;
            for (k, c) in mix.iter().enumerate() {
                if pick < c.share {
                    class = k;
                    break;
                }
                pick -= c.share;
            }
            Job {
                id: i as u64,
                class: u8::try_from(class).unwrap_or(u8::MAX),
                at,
                size: mix[class].size,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::mix::default_mix;
    use super::*;

    #[test]
    fn parses_arrivals() {
        assert_eq!(
            "poisson:100ms".parse::<Arrival>().unwrap(),
            Arrival::Poisson(Duration::from_millis(100))
        );
        assert_eq!(
            "poisson".parse::<Arrival>().unwrap(),
            Arrival::Poisson(Duration::from_millis(100))
        );
        assert_eq!("burst".parse::<Arrival>().unwrap(), Arrival::Burst);
        assert_eq!(
            "uniform:2s".parse::<Arrival>().unwrap(),
            Arrival::Uniform(Duration::from_secs(2))
        );
        assert!("uniform:0ms".parse::<Arrival>().is_err());
        assert!("burst:1s".parse::<Arrival>().is_err());
        assert!("gamma".parse::<Arrival>().is_err());
    }

    #[test]
    fn workload_is_seeded_and_shaped() {
        let mix = default_mix();
        let a = workload(&mix, Arrival::Poisson(Duration::from_millis(100)), 2000, 7);
        assert_eq!(
            a,
            workload(&mix, Arrival::Poisson(Duration::from_millis(100)), 2000, 7)
        );
        assert_ne!(
            a,
            workload(&mix, Arrival::Poisson(Duration::from_millis(100)), 2000, 8)
        );
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        // Mean inter-arrival close to 100 ms; classes roughly a third each.
        let mean = a.last().unwrap().at.as_secs_f64() / 2000.0;
        assert!((0.09..0.11).contains(&mean), "{mean}");
        for k in 0..3 {
            let n = a.iter().filter(|j| j.class == k).count();
            assert!((560..780).contains(&n), "class {k}: {n}");
        }
        let u = workload(&mix, Arrival::Uniform(Duration::from_millis(50)), 4, 1);
        assert_eq!(u[3].at, Duration::from_millis(150));
        let b = workload(&mix, Arrival::Burst, 4, 1);
        assert!(b.iter().all(|j| j.at.is_zero()));
    }
}
