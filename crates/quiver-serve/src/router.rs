//! The router: which model serves a request — the extension point [`Router`].
//!
//! The back-end builds an [`Observation`] for each admitted request (the request's task
//! and class, and for every model the smallest replica batch, the replica capacity, the
//! predicted per-token latency if one more sequence joins and the quality for the task,
//! plus the recent arrival rate) and asks the router for the index of a model. The
//! dispatcher then sends the request to that model's replica with the smallest batch.
//!
//! Built-in static baselines ([`RouterKind`], selectable by name):
//!
//! | name | picks |
//! |---|---|
//! | `largest` | always the model of highest quality |
//! | `smallest` | always the fastest model |
//! | `threshold` | the highest-quality model whose predicted per-token latency with one more sequence stays within the target; the fastest if none does |
//!
//! A learned (Double DQN) router is issue 13's next step and not built yet; it plugs in
//! here by implementing [`Router`].
//!
//! Writing a router:
//! ```
//! use quiver_serve::router::{Observation, Router};
//! #[derive(Debug)]
//! struct LeastLoaded;
//! impl Router for LeastLoaded {
//!     fn route(&self, obs: &Observation) -> usize {
//!         (0..obs.models.len()).min_by_key(|&i| obs.models[i].batch).unwrap_or(0)
//!     }
//! }
//! ```

use crate::model::Task;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What the router sees of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Batch of the least-loaded replica of this model.
    pub batch: usize,
    /// Capacity of one replica.
    pub max_batch: usize,
    /// Predicted per-token latency on the least-loaded replica once this request joins
    /// (`None` when the model has no latency model, e.g. an upstream without a spec).
    pub predicted_token_latency: Option<Duration>,
    /// Quality for the request's task (1.0 = best).
    pub quality: f64,
}

/// The state a routing decision is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The request's task, if known.
    pub task: Option<Task>,
    /// The request's class index (0 = most urgent).
    pub class: u8,
    /// Requests per second recently admitted (exponentially weighted).
    pub arrival_rate: f64,
    /// Per-token latency target.
    pub target: Duration,
    /// Models, in the back-end's order (small to large for the OPT family).
    pub models: Vec<ModelView>,
}

/// Picks a model for each request.
pub trait Router: Send + Sync + fmt::Debug {
    /// The index into `obs.models` of the chosen model. Called once per request; an
    /// out-of-range index is clamped by the caller.
    fn route(&self, obs: &Observation) -> usize;
}

/// The built-in static routers (see the module table).
#[derive(Debug, Copy, Clone, PartialEq, Eq, Default)]
pub enum RouterKind {
    /// Highest quality, always.
    Largest,
    /// Fastest, always.
    Smallest,
    /// Highest quality that meets the latency target.
    #[default]
    Threshold,
}

fn best_quality(obs: &Observation, candidates: impl Iterator<Item = usize>) -> Option<usize> {
    candidates.max_by(|&a, &b| {
        obs.models[a]
            .quality
            .total_cmp(&obs.models[b].quality)
            // on equal quality prefer the faster (lower predicted latency)
            .then_with(|| {
                let la = obs.models[a].predicted_token_latency;
                let lb = obs.models[b].predicted_token_latency;
                lb.cmp(&la)
            })
    })
}

fn fastest(obs: &Observation) -> usize {
    (0..obs.models.len())
        .min_by_key(|&i| {
            obs.models[i]
                .predicted_token_latency
                .unwrap_or(Duration::MAX)
        })
        .unwrap_or(0)
}

impl Router for RouterKind {
    fn route(&self, obs: &Observation) -> usize {
        match self {
            RouterKind::Largest => best_quality(obs, 0..obs.models.len()).unwrap_or(0),
            RouterKind::Smallest => fastest(obs),
            RouterKind::Threshold => {
                let ok = (0..obs.models.len()).filter(|&i| {
                    let m = &obs.models[i];
                    m.batch < m.max_batch
                        && m.predicted_token_latency.is_some_and(|l| l <= obs.target)
                });
                best_quality(obs, ok).unwrap_or_else(|| fastest(obs))
            }
        }
    }
}

impl RouterKind {
    /// The name [`FromStr`] accepts.
    pub const fn name(self) -> &'static str {
        match self {
            RouterKind::Largest => "largest",
            RouterKind::Smallest => "smallest",
            RouterKind::Threshold => "threshold",
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A router name that [`RouterKind::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown router {0:?} (expected largest, smallest or threshold)")]
pub struct UnknownRouter(pub String);

impl FromStr for RouterKind {
    type Err = UnknownRouter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "largest" | "always-large" => Ok(RouterKind::Largest),
            "smallest" | "always-small" => Ok(RouterKind::Smallest),
            "threshold" => Ok(RouterKind::Threshold),
            _ => Err(UnknownRouter(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::opt_family;

    fn obs(batches: [usize; 4]) -> Observation {
        let fam = opt_family();
        Observation {
            task: Some(Task::HellaSwag),
            class: 0,
            arrival_rate: 1.0,
            target: Duration::from_millis(40),
            models: fam
                .iter()
                .zip(batches)
                .map(|(m, b)| ModelView {
                    name: m.name.clone(),
                    batch: b,
                    max_batch: m.max_batch,
                    predicted_token_latency: Some(m.token_latency(b + 1)),
                    quality: m.quality(Some(Task::HellaSwag)),
                })
                .collect(),
        }
    }

    #[test]
    fn static_routers() {
        assert_eq!(RouterKind::Largest.route(&obs([0; 4])), 3);
        assert_eq!(RouterKind::Smallest.route(&obs([0; 4])), 0);
        assert_eq!(RouterKind::Threshold.route(&obs([0; 4])), 3);
        // 6.7B at 40 sequences misses 40 ms; 2.7B at 10 does not
        assert_eq!(RouterKind::Threshold.route(&obs([0, 0, 10, 40])), 2);
        // everything overloaded: the fastest
        assert_eq!(RouterKind::Threshold.route(&obs([600, 300, 200, 64])), 0);
        assert_eq!("always-large".parse(), Ok(RouterKind::Largest));
        assert!("dqn".parse::<RouterKind>().is_err());
    }
}
