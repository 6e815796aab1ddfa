//! The model-serving back-end: a Quiver QUIC server taking one request per bidirectional
//! stream (framing: [`crate::wire`]).
//!
//! For each request stream the back-end
//! 1. reads the [`Frame::Request`] and sets the stream's class from the request's class
//!    (so that the connection's scheduler — EDF, ML, ... — orders the token streams),
//! 2. waits for admission: at most `max_active` requests generate at once; waiting
//!    requests are admitted **earliest deadline first** (arrival + the class's deadline;
//!    requests without a deadline after all that have one, by priority, then in order of
//!    arrival), and beyond `queue_limit` waiting requests it answers
//!    [`ErrorCode::Overloaded`],
//! 3. asks the [`Router`] for a model (unless the request named one) and dispatches to
//!    that model's replica with the smallest batch (the thesis's rule),
//! 4. streams [`Frame::Start`], a [`Frame::Token`] per token as produced, and
//!    [`Frame::Done`] with the model's quality for the task.

use crate::config::ServeConfig;
use crate::model::{BackendError, Chunk, GenRequest, ModelBackend};
use crate::router::{ModelView, Observation, Router};
use crate::wire::{write_frame, ErrorCode, Frame, FrameReader};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Replicas of one model.
#[derive(Debug, Clone)]
pub struct ModelPool {
    /// The model's name.
    pub name: String,
    /// Its replicas (at least one).
    pub replicas: Vec<Arc<dyn ModelBackend>>,
}

/// Admission key: deadline first (none last), then priority, then arrival order.
type AdmitKey = (bool, Option<Instant>, u8, u64);

#[derive(Debug, Default)]
struct Admission {
    active: usize,
    waiting: BTreeMap<AdmitKey, oneshot::Sender<()>>,
    arrivals: u64,
}

/// Counters of a running back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendStats {
    /// Requests generating now.
    pub active: usize,
    /// Requests waiting for admission.
    pub waiting: usize,
    /// Requests admitted so far.
    pub admitted: u64,
}

#[derive(Debug)]
struct Inner {
    pools: Vec<ModelPool>,
    router: Arc<dyn Router>,
    config: ServeConfig,
    max_active: usize,
    queue_limit: usize,
    admission: Mutex<Admission>,
    admit_seq: AtomicU64,
    recent: Mutex<VecDeque<Instant>>,
}

/// The back-end; cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    inner: Arc<Inner>,
}

/// A slot among `max_active`; freeing it admits the next waiting request.
struct Permit {
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut a = lock(&self.inner.admission);
        a.active -= 1;
        admit_next(&mut a, self.inner.max_active);
    }
}

fn admit_next(a: &mut Admission, max_active: usize) {
    while a.active < max_active {
        let Some((_, tx)) = a.waiting.pop_first() else {
            return;
        };
        if tx.send(()).is_ok() {
            a.active += 1;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend {
    /// A back-end over `pools` (in router order) with the classes and target of `config`.
    pub fn new(
        pools: Vec<ModelPool>,
        router: Arc<dyn Router>,
        config: ServeConfig,
        max_active: usize,
        queue_limit: usize,
    ) -> Self {
        Backend {
            inner: Arc::new(Inner {
                pools: pools
                    .into_iter()
                    .filter(|p| !p.replicas.is_empty())
                    .collect(),
                router,
                config,
                max_active: max_active.max(1),
                queue_limit,
                admission: Mutex::default(),
                admit_seq: AtomicU64::new(0),
                recent: Mutex::default(),
            }),
        }
    }

    /// Model names served.
    pub fn models(&self) -> Vec<String> {
        self.inner.pools.iter().map(|p| p.name.clone()).collect()
    }

    /// Current counters.
    pub fn stats(&self) -> BackendStats {
        let a = lock(&self.inner.admission);
        BackendStats {
            active: a.active,
            waiting: a.waiting.len(),
            admitted: self.inner.admit_seq.load(Ordering::Relaxed),
        }
    }

    /// Accept connections on `endpoint` and serve their streams until the endpoint closes.
    pub async fn serve(&self, endpoint: &quiver::Endpoint) {
        while let Some(conn) = endpoint.accept().await {
            let me = self.clone();
            tokio::spawn(async move {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let me = me.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.handle_stream(send, recv).await {
                            tracing::debug!("request stream: {e}");
                        }
                    });
                }
            });
        }
    }

    async fn admit(&self, class: u8) -> Result<Permit, ()> {
        let now = Instant::now();
        let def = self.inner.config.class(class);
        let deadline = def
            .and_then(|c| c.deadline_ms)
            .and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        let priority = def.map_or(u8::MAX, |c| c.priority);
        let rx = {
            let mut a = lock(&self.inner.admission);
            if a.active < self.inner.max_active && a.waiting.is_empty() {
                a.active += 1;
                return Ok(Permit {
                    inner: self.inner.clone(),
                });
            }
            if a.waiting.len() >= self.inner.queue_limit {
                return Err(());
            }
            let (tx, rx) = oneshot::channel();
            a.arrivals += 1;
            let key = (deadline.is_none(), deadline, priority, a.arrivals);
            a.waiting.insert(key, tx);
            admit_next(&mut a, self.inner.max_active);
            rx
        };
        // If this future is dropped while waiting, the sender fails and the slot goes to
        // the next request; once sent, the slot is ours.
        match rx.await {
            Ok(()) => Ok(Permit {
                inner: self.inner.clone(),
            }),
            Err(_) => Err(()),
        }
    }

    fn arrival_rate(&self, now: Instant) -> f64 {
        const WINDOW: Duration = Duration::from_secs(10);
        let mut r = lock(&self.inner.recent);
        r.push_back(now);
        while r.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            r.pop_front();
        }
        r.len() as f64 / WINDOW.as_secs_f64()
    }

    /// The router's view of the pools, and the least-loaded replica of each.
    fn observe(&self, task: Option<crate::model::Task>, class: u8) -> (Observation, Vec<usize>) {
        let mut views = Vec::new();
        let mut picks = Vec::new();
        for pool in &self.inner.pools {
            let (ri, rep) = pool
                .replicas
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.batch())
                .map(|(i, r)| (i, r.clone()))
                .unwrap_or_else(|| (0, pool.replicas[0].clone()));
            let batch = rep.batch();
            views.push(ModelView {
                name: pool.name.clone(),
                batch,
                max_batch: rep.max_batch(),
                predicted_token_latency: rep.spec().map(|s| s.token_latency(batch + 1)),
                quality: rep.spec().map_or(1.0, |s| s.quality(task)),
            });
            picks.push(ri);
        }
        let obs = Observation {
            task,
            class,
            arrival_rate: self.arrival_rate(Instant::now()),
            target: self.inner.config.token_target(),
            models: views,
        };
        (obs, picks)
    }

    async fn handle_stream(
        &self,
        mut send: quiver::SendStream,
        recv: quiver::RecvStream,
    ) -> Result<(), crate::wire::StreamError> {
        let mut reader = FrameReader::new(recv);
        let first = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = error(&mut send, ErrorCode::BadRequest, &e.to_string()).await;
                return Err(e);
            }
        };
        let (class, task, max_tokens, model, prompt) = match first {
            Frame::ListModels => {
                write_frame(&mut send, &Frame::Models(self.models())).await?;
                let _ = send.finish();
                return Ok(());
            }
            Frame::Request {
                class,
                task,
                max_tokens,
                model,
                prompt,
            } => (class, task, max_tokens, model, prompt),
            other => {
                let msg = format!("expected a request, got {other:?}");
                return error(&mut send, ErrorCode::BadRequest, &msg).await;
            }
        };
        let Some(def) = self.inner.config.class(class) else {
            return error(&mut send, ErrorCode::BadRequest, "unknown class").await;
        };
        let _ = send.set_class(&def.stream_class());
        let named = if model.is_empty() || model == "auto" {
            None
        } else {
            match self.inner.pools.iter().position(|p| p.name == model) {
                Some(i) => Some(i),
                None => {
                    let msg = format!("the model `{model}` does not exist");
                    return error(&mut send, ErrorCode::UnknownModel, &msg).await;
                }
            }
        };
        if self.inner.pools.is_empty() {
            return error(&mut send, ErrorCode::UnknownModel, "no models").await;
        }
        let Ok(_permit) = self.admit(class).await else {
            return error(&mut send, ErrorCode::Overloaded, "back-end queue full").await;
        };
        let admit_seq = self.inner.admit_seq.fetch_add(1, Ordering::Relaxed);
        let (obs, picks) = self.observe(task, class);
        let mi = named
            .unwrap_or_else(|| self.inner.router.route(&obs))
            .min(self.inner.pools.len() - 1);
        let pool = &self.inner.pools[mi];
        let quality = obs.models[mi].quality;
        // least-loaded replica first, then the others
        let mut order: Vec<usize> = (0..pool.replicas.len()).collect();
        order.sort_by_key(|&i| (i != picks[mi], pool.replicas[i].batch()));
        let request = GenRequest { prompt, max_tokens };
        let mut started = None;
        for ri in order {
            match pool.replicas[ri].generate(request.clone()) {
                Ok(rx) => {
                    started = Some((ri, rx));
                    break;
                }
                Err(BackendError::Full(_)) => continue,
                Err(e) => return error(&mut send, ErrorCode::ModelFailed, &e.to_string()).await,
            }
        }
        let Some((ri, mut rx)) = started else {
            return error(&mut send, ErrorCode::Overloaded, "every replica is full").await;
        };
        let start = Frame::Start {
            model: pool.name.clone(),
            replica: u16::try_from(ri).unwrap_or(u16::MAX),
            admit_seq,
        };
        write_frame(&mut send, &start).await?;
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Ok(Chunk::Token(t)) => write_frame(&mut send, &Frame::Token(t)).await?,
                Ok(Chunk::Done { finish, tokens }) => {
                    let done = Frame::Done {
                        finish,
                        tokens,
                        quality_milli: (quality.clamp(0.0, 1.0) * 1000.0).round() as u16,
                    };
                    write_frame(&mut send, &done).await?;
                    let _ = send.finish();
                    return Ok(());
                }
                Err(e) => return error(&mut send, ErrorCode::ModelFailed, &e.to_string()).await,
            }
        }
        error(&mut send, ErrorCode::ModelFailed, "model stopped").await
    }
}

async fn error(
    send: &mut quiver::SendStream,
    code: ErrorCode,
    message: &str,
) -> Result<(), crate::wire::StreamError> {
    write_frame(
        send,
        &Frame::Error {
            code,
            message: message.to_string(),
        },
    )
    .await?;
    let _ = send.finish();
    Ok(())
}
