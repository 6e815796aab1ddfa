//! Models: the [`ModelBackend`] trait, the simulated OPT family ([`ModelSpec`],
//! [`Batcher`], [`SimReplica`]) and the tasks whose quality the router trades against
//! latency.
//!
//! ## Two clocks, one model
//! A simulated model is a [`Batcher`]: a continuous-batching engine in *virtual* time.
//! [`Batcher::step`] runs one decoding iteration — every active sequence produces one
//! token — and says how long that iteration took for the current batch
//! ([`ModelSpec::token_latency`]). A simulator or the router's training environment adds
//! that duration to its own clock; [`SimReplica`] (a [`ModelBackend`]) sleeps it on the
//! tokio clock (scaled by `time_scale`) and streams the tokens, so the live back-end and
//! the simulator share one latency model.
//!
//! ## Latency model (an estimate, not a measurement)
//! Decoding one token for a batch of `b` sequences takes
//! `token_latency(b) = base + per_seq × b`. `base` is the per-iteration cost that does
//! not depend on the batch: reading the fp16 weights once from GPU memory (parameters ×
//! 2 bytes ÷ ~1.5 TB/s on an A100-40GB: 0.17 ms for 125M, 1.7 ms for 1.3B, 3.6 ms for
//! 2.7B, 8.9 ms for 6.7B) plus a fixed scheduling and kernel-launch overhead of a Python
//! serving loop (~5 ms). `per_seq` is the marginal cost of one more sequence (attention
//! over its KV cache and its share of the matrix products), grown with model width.
//! `max_batch` is the number of sequences whose KV cache fits next to the weights.
//!
//! These parameters were **not** fitted to a published per-model vLLM measurement: this
//! session found no published per-token latency table for OPT-125M…6.7B under vLLM (the
//! vLLM paper, Kwon et al., SOSP 2023, measures OPT-13B/66B/175B). They are a roofline
//! estimate, chosen so that the thesis's regime holds: under the 40 ms per-token target
//! the largest model saturates at about 30 concurrent sequences and the smallest at
//! several hundred. Replace them ([`ModelSpec`] is plain data) when measurements exist.
//!
//! ## Quality
//! Per-task quality is the thesis's Table 1 (accuracy relative to OPT-6.7B): HellaSwag
//! 0.45/0.78/1.00, COPA 0.80/0.95/1.00, PIQA 0.82/0.96/1.00, OpenBookQA 0.70/0.94/1.00
//! for 125M/1.3B/6.7B. The thesis has no 2.7B column; its values here are interpolated
//! linearly in log(parameters) between 1.3B and 6.7B and marked as such.
//!
//! ## Generated text
//! The simulated models do not run a neural network: each token is a word drawn from a
//! fixed vocabulary by a hash of the request's seed and the token index, so a response is
//! reproducible. Use an OpenAI-compatible upstream ([`crate::upstream`]) for real text.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// A benchmark task of the thesis; quality differs per task and model.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// HellaSwag (commonsense sentence completion).
    HellaSwag,
    /// COPA (choice of plausible alternatives).
    Copa,
    /// PIQA (physical commonsense).
    Piqa,
    /// OpenBookQA (elementary science questions).
    OpenBookQa,
}

impl Task {
    /// Every task, in the order of the quality table.
    pub const ALL: [Task; 4] = [Task::HellaSwag, Task::Copa, Task::Piqa, Task::OpenBookQa];

    /// The name [`FromStr`] accepts.
    pub const fn name(self) -> &'static str {
        match self {
            Task::HellaSwag => "hellaswag",
            Task::Copa => "copa",
            Task::Piqa => "piqa",
            Task::OpenBookQa => "openbookqa",
        }
    }

    /// Index into [`Task::ALL`] and [`ModelSpec::quality`].
    pub const fn index(self) -> usize {
        match self {
            Task::HellaSwag => 0,
            Task::Copa => 1,
            Task::Piqa => 2,
            Task::OpenBookQa => 3,
        }
    }

    /// The task with index `i`, if any.
    pub fn from_index(i: usize) -> Option<Task> {
        Task::ALL.get(i).copied()
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A task name that [`Task::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task {0:?} (expected hellaswag, copa, piqa or openbookqa)")]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Task::ALL
            .into_iter()
            .find(|t| t.name() == lower)
            .ok_or_else(|| UnknownTask(s.to_string()))
    }
}

/// A simulated model: latency parameters and per-task quality (see the module docs for
/// where each number comes from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Model name as clients request it (`opt-125m`, ...).
    pub name: String,
    /// Parameters, for display and ordering (small to large).
    pub params: u64,
    /// Per-iteration cost independent of the batch, in milliseconds.
    pub base_ms: f64,
    /// Marginal per-iteration cost of one more sequence, in milliseconds.
    pub per_seq_ms: f64,
    /// Most sequences decoded at once (KV-cache capacity).
    pub max_batch: usize,
    /// Quality per task, indexed by [`Task::index`] (1.0 = OPT-6.7B).
    pub quality: [f64; 4],
}

impl ModelSpec {
    /// Duration of one decoding iteration with `batch` active sequences (each gets one
    /// token); a batch of 0 costs the same as 1.
    pub fn token_latency(&self, batch: usize) -> Duration {
        let b = batch.max(1) as f64;
        Duration::from_secs_f64((self.base_ms + self.per_seq_ms * b) / 1000.0)
    }

    /// Quality for `task`; for no task, the mean over tasks.
    pub fn quality(&self, task: Option<Task>) -> f64 {
        match task {
            Some(t) => self.quality[t.index()],
            None => self.quality.iter().sum::<f64>() / self.quality.len() as f64,
        }
    }

    /// Largest batch whose per-token latency stays within `target` (0 if none).
    pub fn capacity_within(&self, target: Duration) -> usize {
        let t = target.as_secs_f64() * 1000.0;
        if t < self.base_ms + self.per_seq_ms {
            return 0;
        }
        let b = ((t - self.base_ms) / self.per_seq_ms).floor() as usize;
        b.min(self.max_batch)
    }
}

/// The four OPT models of the thesis, small to large (numbers: module docs).
pub fn opt_family() -> Vec<ModelSpec> {
    // 2.7B quality: 1.3B + (6.7B − 1.3B) × ln(2.7/1.3)/ln(6.7/1.3) ≈ 0.447 of the way.
    let interp = |q13: f64, q67: f64| {
        let w = (2.7f64 / 1.3).ln() / (6.7f64 / 1.3).ln();
        ((q13 + (q67 - q13) * w) * 1000.0).round() / 1000.0
    };
    vec![
        ModelSpec {
            name: "opt-125m".into(),
            params: 125_000_000,
            base_ms: 5.2,
            per_seq_ms: 0.08,
            max_batch: 512,
            quality: [0.45, 0.80, 0.82, 0.70],
        },
        ModelSpec {
            name: "opt-1.3b".into(),
            params: 1_300_000_000,
            base_ms: 6.7,
            per_seq_ms: 0.25,
            max_batch: 256,
            quality: [0.78, 0.95, 0.96, 0.94],
        },
        ModelSpec {
            name: "opt-2.7b".into(),
            params: 2_700_000_000,
            base_ms: 8.6,
            per_seq_ms: 0.5,
            max_batch: 128,
            quality: [
                interp(0.78, 1.0),
                interp(0.95, 1.0),
                interp(0.96, 1.0),
                interp(0.94, 1.0),
            ],
        },
        ModelSpec {
            name: "opt-6.7b".into(),
            params: 6_700_000_000,
            base_ms: 13.9,
            per_seq_ms: 0.85,
            max_batch: 64,
            quality: [1.0, 1.0, 1.0, 1.0],
        },
    ]
}

/// Why a sequence stopped.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// `max_tokens` reached.
    Length,
    /// The model ended the sequence.
    Stop,
}

impl FinishReason {
    /// The OpenAI API spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
        }
    }
}

/// A sequence a [`Batcher`] could not take: it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch full ({0} sequences)")]
pub struct BatchFull(pub usize);

#[derive(Debug)]
struct Seq {
    id: u64,
    seed: u64,
    produced: u32,
    max_tokens: u32,
}

/// One token of one sequence, produced by a [`Batcher::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepToken {
    /// The sequence.
    pub id: u64,
    /// The token's text (a word and its leading space).
    pub text: String,
    /// `Some` on the sequence's last token.
    pub finished: Option<FinishReason>,
}

/// The result of one decoding iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// How long the iteration took (virtual time).
    pub duration: Duration,
    /// One token per sequence that was active.
    pub tokens: Vec<StepToken>,
}

/// Continuous batching in virtual time: sequences join at any iteration and leave when
/// done; every iteration gives each active sequence one token and costs
/// [`ModelSpec::token_latency`] of the batch size.
#[derive(Debug)]
pub struct Batcher {
    spec: ModelSpec,
    active: Vec<Seq>,
}

const VOCAB: [&str; 32] = [
    "the", "model", "answers", "with", "a", "token", "stream", "over", "quic", "each", "request",
    "has", "its", "own", "class", "and", "deadline", "while", "batch", "work", "waits", "for",
    "capacity", "so", "latency", "stays", "low", "under", "load", "router", "picks", "size",
];

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Batcher {
    /// An idle engine for `spec`.
    pub fn new(spec: ModelSpec) -> Self {
        Batcher {
            spec,
            active: Vec::new(),
        }
    }

    /// The model.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Sequences being decoded.
    pub fn batch(&self) -> usize {
        self.active.len()
    }

    /// Add a sequence producing `max_tokens` tokens (at least 1); its words come from
    /// `seed`.
    pub fn admit(&mut self, id: u64, max_tokens: u32, seed: u64) -> Result<(), BatchFull> {
        if self.active.len() >= self.spec.max_batch {
            return Err(BatchFull(self.active.len()));
        }
        self.active.push(Seq {
            id,
            seed,
            produced: 0,
            max_tokens: max_tokens.max(1),
        });
        Ok(())
    }

    /// Drop a sequence (its client went away); true if it was active.
    pub fn cancel(&mut self, id: u64) -> bool {
        let before = self.active.len();
        self.active.retain(|s| s.id != id);
        before != self.active.len()
    }

    /// Run one iteration, or `None` when no sequence is active.
    pub fn step(&mut self) -> Option<Step> {
        if self.active.is_empty() {
            return None;
        }
        let duration = self.spec.token_latency(self.active.len());
        let mut tokens = Vec::with_capacity(self.active.len());
        for s in &mut self.active {
            let h = mix(s.seed ^ mix(u64::from(s.produced)));
            let word = VOCAB[(h % VOCAB.len() as u64) as usize];
            s.produced += 1;
            let finished = (s.produced >= s.max_tokens).then_some(FinishReason::Length);
            tokens.push(StepToken {
                id: s.id,
                text: format!(" {word}"),
                finished,
            });
        }
        self.active.retain(|s| s.produced < s.max_tokens);
        Some(Step { duration, tokens })
    }
}

/// What a back-end is asked to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// The prompt text.
    pub prompt: String,
    /// Most tokens to produce.
    pub max_tokens: u32,
}

/// A piece of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Text of one or more tokens.
    Token(String),
    /// End of the response.
    Done {
        /// Why it ended.
        finish: FinishReason,
        /// Tokens produced.
        tokens: u32,
    },
}

/// Errors of a model back-end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The back-end is full; retry later.
    #[error("model {0} is at capacity")]
    Full(String),
    /// The back-end stopped.
    #[error("model back-end stopped")]
    Stopped,
    /// An upstream server failed or answered something unusable.
    #[error("upstream: {0}")]
    Upstream(String),
}

/// A model replica that generates tokens: simulated ([`SimReplica`]) or remote
/// ([`crate::upstream::OpenAiUpstream`]). The back-end routes to one by name and by load.
pub trait ModelBackend: Send + Sync + fmt::Debug {
    /// Model name (clients request it; the router's actions are model names).
    fn name(&self) -> &str;
    /// Sequences in flight on this replica (the "batch size" the router sees).
    fn batch(&self) -> usize;
    /// Most sequences in flight before [`generate`](Self::generate) refuses.
    fn max_batch(&self) -> usize;
    /// The simulated model's parameters, if it is simulated or declared (for the router's
    /// latency prediction and quality).
    fn spec(&self) -> Option<&ModelSpec>;
    /// Start generating; chunks arrive on the receiver, ending with [`Chunk::Done`] or an
    /// error. Dropping the receiver cancels the request.
    fn generate(
        &self,
        request: GenRequest,
    ) -> Result<mpsc::Receiver<Result<Chunk, BackendError>>, BackendError>;
}

#[derive(Debug, Default)]
struct ReplicaState {
    batcher: Option<Batcher>,
    sinks: HashMap<u64, mpsc::Sender<Result<Chunk, BackendError>>>,
    produced: HashMap<u64, u32>,
    next_id: u64,
}

/// A simulated model running in real time: a [`Batcher`] driven by a tokio task that
/// sleeps each iteration's latency × `time_scale`.
#[derive(Debug)]
pub struct SimReplica {
    spec: ModelSpec,
    state: Arc<Mutex<ReplicaState>>,
    wake: Arc<Notify>,
}

impl SimReplica {
    /// Start a replica of `spec` on the current tokio runtime; `time_scale` multiplies
    /// every iteration's latency (1.0 = the model's speed, 0.1 = ten times faster for
    /// tests). The driver task ends when the replica is dropped.
    pub fn spawn(spec: ModelSpec, time_scale: f64) -> Self {
        let state = Arc::new(Mutex::new(ReplicaState {
            batcher: Some(Batcher::new(spec.clone())),
            ..ReplicaState::default()
        }));
        let wake = Arc::new(Notify::new());
        let weak = Arc::downgrade(&state);
        let w = wake.clone();
        let scale = if time_scale.is_finite() && time_scale >= 0.0 {
            time_scale
        } else {
            1.0
        };
        tokio::spawn(async move {
            loop {
                let Some(state) = weak.upgrade() else { return };
                let step = {
                    let mut st = lock(&state);
                    drop_cancelled(&mut st);
                    st.batcher.as_mut().and_then(Batcher::step)
                };
                let Some(step) = step else {
                    drop(state);
                    w.notified().await;
                    continue;
                };
                drop(state);
                tokio::time::sleep(step.duration.mul_f64(scale)).await;
                let Some(state) = weak.upgrade() else { return };
                let mut st = lock(&state);
                for t in step.tokens {
                    let n = {
                        let n = st.produced.entry(t.id).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let Some(tx) = st.sinks.get(&t.id).cloned() else {
                        continue;
                    };
                    // A full channel means a slow reader: the token waits in the channel's
                    // capacity (as large as max_tokens), so try_send only fails if closed.
                    let _ = tx.try_send(Ok(Chunk::Token(t.text)));
                    if let Some(finish) = t.finished {
                        let _ = tx.try_send(Ok(Chunk::Done { finish, tokens: n }));
                        st.sinks.remove(&t.id);
                        st.produced.remove(&t.id);
                    }
                }
            }
        });
        SimReplica { spec, state, wake }
    }
}

fn lock(m: &Mutex<ReplicaState>) -> std::sync::MutexGuard<'_, ReplicaState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn drop_cancelled(st: &mut ReplicaState) {
    let gone: Vec<u64> = st
        .sinks
        .iter()
        .filter(|(_, tx)| tx.is_closed())
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        st.sinks.remove(&id);
        st.produced.remove(&id);
        if let Some(b) = st.batcher.as_mut() {
            b.cancel(id);
        }
    }
}

impl ModelBackend for SimReplica {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn batch(&self) -> usize {
        lock(&self.state).batcher.as_ref().map_or(0, Batcher::batch)
    }

    fn max_batch(&self) -> usize {
        self.spec.max_batch
    }

    fn spec(&self) -> Option<&ModelSpec> {
        Some(&self.spec)
    }

    fn generate(
        &self,
        request: GenRequest,
    ) -> Result<mpsc::Receiver<Result<Chunk, BackendError>>, BackendError> {
        let mut st = lock(&self.state);
        drop_cancelled(&mut st);
        let id = st.next_id;
        st.next_id += 1;
        let seed = request
            .prompt
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        let max_tokens = request.max_tokens.max(1);
        let batcher = st.batcher.as_mut().ok_or(BackendError::Stopped)?;
        batcher
            .admit(id, max_tokens, seed)
            .map_err(|_| BackendError::Full(self.spec.name.clone()))?;
        // Capacity for every token plus the end marker: the driver never blocks on a
        // slow reader.
        let (tx, rx) = mpsc::channel(max_tokens as usize + 2);
        st.sinks.insert(id, tx);
        drop(st);
        self.wake.notify_one();
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_grows_with_batch_and_largest_saturates_first() {
        let fam = opt_family();
        for m in &fam {
            assert!(m.token_latency(10) > m.token_latency(1));
        }
        let target = Duration::from_millis(40);
        let caps: Vec<usize> = fam.iter().map(|m| m.capacity_within(target)).collect();
        assert!(caps.windows(2).all(|w| w[0] > w[1]), "{caps:?}");
        assert!((25..=35).contains(&caps[3]), "{caps:?}");
        assert_eq!(fam[2].quality[0], 0.878);
    }

    #[test]
    fn batcher_interleaves_sequences_and_finishes_each() {
        let mut b = Batcher::new(opt_family().remove(0));
        b.admit(1, 2, 7).unwrap();
        b.admit(2, 3, 8).unwrap();
        let s1 = b.step().unwrap();
        assert_eq!(s1.tokens.len(), 2);
        assert_eq!(s1.duration, b.spec().token_latency(2));
        let s2 = b.step().unwrap();
        assert_eq!(s2.tokens[0].finished, Some(FinishReason::Length));
        assert_eq!(b.batch(), 1);
        let s3 = b.step().unwrap();
        assert_eq!(s3.duration, b.spec().token_latency(1));
        assert!(s3.tokens[0].finished.is_some());
        assert!(b.step().is_none());
    }

    #[test]
    fn batcher_refuses_beyond_max_batch() {
        let mut spec = opt_family().remove(3);
        spec.max_batch = 1;
        let mut b = Batcher::new(spec);
        b.admit(1, 1, 0).unwrap();
        assert_eq!(b.admit(2, 1, 0), Err(BatchFull(1)));
    }

    #[tokio::test]
    async fn sim_replica_streams_tokens_in_real_time() {
        let r = SimReplica::spawn(opt_family().remove(0), 0.01);
        let mut rx = r
            .generate(GenRequest {
                prompt: "hi".into(),
                max_tokens: 3,
            })
            .unwrap();
        let mut tokens = 0;
        loop {
            match rx.recv().await.unwrap().unwrap() {
                Chunk::Token(_) => tokens += 1,
                Chunk::Done { finish, tokens: n } => {
                    assert_eq!((finish, n), (FinishReason::Length, 3));
                    break;
                }
            }
        }
        assert_eq!(tokens, 3);
        assert_eq!(r.batch(), 0);
    }
}
