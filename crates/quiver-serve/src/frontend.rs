//! The OpenAI-compatible front-end: HTTP ingress (axum) → one QUIC connection to the
//! back-end, one stream per request with the request's class.
//!
//! Endpoints: `POST /v1/completions`, `POST /v1/chat/completions` (both with
//! `"stream": true` for server-sent events, or a single JSON body), `GET /v1/models`.
//!
//! - **Class**: from the API key (`Authorization: Bearer KEY`) via the configuration's
//!   `[keys]` tiers; the header `X-Quiver-Class: NAME` may pick a class no more urgent than
//!   the key's (see [`crate::config`]).
//! - **Task** (for the router's quality estimate): the body field `"task"` (the `openai`
//!   Python client sends it with `extra_body`) or the header `X-Quiver-Task`; one of
//!   `hellaswag`, `copa`, `piqa`, `openbookqa`.
//! - **Model**: `auto` lets the back-end's router choose; a model name forces it. The
//!   response's `model` is the model that served it; an extra `quiver` object carries
//!   the class, the model's quality for the task and the back-end's admission order.
//! - **Back-pressure**: at most `max_inflight` requests are on the QUIC connection; up to
//!   `queue` more wait; beyond that the answer is 429 with `Retry-After`. The back-end's
//!   own overload answer also becomes 429.
//! - **Reconnection**: a single task owns the connection. When it is lost, requests that
//!   had not been started by the back-end go back to the front of the queue and are sent
//!   again on the next connection; requests already streaming fail (their tokens cannot be
//!   replayed).
//! - **Errors** have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`:
//!   401 missing/unknown key, 400 malformed JSON or bad field, 400
//!   `context_length_exceeded` for a prompt above `max_prompt_bytes`, 404
//!   `model_not_found`, 429 `rate_limit_exceeded`, 502/503 when the back-end fails or is
//!   unreachable.
//!
//! Token counts: `completion_tokens` is exact (one per token the model produced);
//! `prompt_tokens` counts whitespace-separated words (no tokenizer is loaded).

use crate::config::ServeConfig;
use crate::model::{FinishReason, Task};
use crate::wire::{write_frame, ErrorCode, Frame, FrameReader};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router as HttpRouter};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

/// What the back-end said about a request, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Admitted and routed.
    Start {
        /// The model serving it.
        model: String,
        /// Order of admission at the back-end.
        admit_seq: u64,
    },
    /// Generated text.
    Token(String),
    /// Finished.
    Done {
        /// Why.
        finish: FinishReason,
        /// Tokens produced.
        tokens: u32,
        /// The model's quality for the task (0..1).
        quality: f64,
    },
    /// Failed.
    Error {
        /// The back-end's code, or `None` for a transport failure.
        code: Option<ErrorCode>,
        /// Detail.
        message: String,
    },
}

/// A request on its way to the back-end.
#[derive(Debug)]
struct Job {
    frame: Frame,
    class: u8,
    reply: mpsc::Sender<Reply>,
}

/// Where the front-end finds its back-end.
#[derive(Debug, Clone)]
pub struct BackendTarget {
    /// Back-end address.
    pub addr: SocketAddr,
    /// TLS server name.
    pub server_name: String,
    /// The back-end's certificate (trusted as the only root).
    pub cert: rustls::pki_types::CertificateDer<'static>,
    /// Scheduler for the request streams the front-end sends.
    pub scheduler: quiver::SchedulerKind,
}

#[derive(Debug)]
struct FrontState {
    config: ServeConfig,
    jobs: mpsc::Sender<Job>,
    models: RwLock<Vec<String>>,
}

/// The front-end: an axum router and the task owning the back-end connection.
#[derive(Debug, Clone)]
pub struct Frontend {
    state: Arc<FrontState>,
}

impl Frontend {
    /// Start the connection task towards `target` (it connects, and reconnects, in the
    /// background) and return the front-end.
    pub fn start(config: ServeConfig, target: BackendTarget) -> Self {
        let (tx, rx) = mpsc::channel(config.queue);
        let state = Arc::new(FrontState {
            config,
            jobs: tx,
            models: RwLock::new(Vec::new()),
        });
        tokio::spawn(connection_task(state.clone(), target, rx));
        Frontend { state }
    }

    /// The HTTP routes.
    pub fn router(&self) -> HttpRouter {
        let limit = self.state.config.max_prompt_bytes.saturating_mul(2) + 64 * 1024;
        HttpRouter::new()
            .route("/v1/models", get(list_models))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat_completions))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self.state.clone())
    }

    /// Serve HTTP on `listener` until it fails.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Models the back-end announced on the last connection (empty before the first).
    pub fn models(&self) -> Vec<String> {
        read_models(&self.state)
    }
}

fn read_models(state: &FrontState) -> Vec<String> {
    state.models.read().map(|m| m.clone()).unwrap_or_default()
}

async fn connect(endpoint: &quiver::Endpoint, t: &BackendTarget) -> Option<quiver::Connection> {
    match endpoint.connect(t.addr, &t.server_name) {
        Ok(connecting) => match connecting.await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("back-end {}: {e}", t.addr);
                None
            }
        },
        Err(e) => {
            tracing::warn!("back-end {}: {e}", t.addr);
            None
        }
    }
}

async fn fetch_models(conn: &quiver::Connection) -> Option<Vec<String>> {
    let (mut send, recv) = conn.open_bi().await.ok()?;
    write_frame(&mut send, &Frame::ListModels).await.ok()?;
    send.finish().ok()?;
    match FrameReader::new(recv).next().await {
        Ok(Some(Frame::Models(m))) => Some(m),
        _ => None,
    }
}

/// Owns the QUIC connection: takes jobs (retries first), opens a stream per job, and
/// reconnects with back-off when the connection is lost.
async fn connection_task(
    state: Arc<FrontState>,
    target: BackendTarget,
    mut jobs: mpsc::Receiver<Job>,
) {
    let endpoint =
        match crate::net::client_endpoint(target.addr, target.scheduler, target.cert.clone()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("front-end endpoint: {e}");
                return;
            }
        };
    let inflight = Arc::new(Semaphore::new(state.config.max_inflight));
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<Job>();
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Job> = None;
    loop {
        let Some(conn) = connect(&endpoint, &target).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        backoff = Duration::from_millis(50);
        if let Some(m) = fetch_models(&conn).await {
            if let Ok(mut w) = state.models.write() {
                *w = m;
            }
        }
        loop {
            let Ok(permit) = inflight.clone().acquire_owned().await else {
                return;
            };
            let job = match pending.take() {
                Some(j) => j,
                None => tokio::select! {
                    biased;
                    Some(j) = retry_rx.recv() => j,
                    j = jobs.recv() => match j {
                        Some(j) => j,
                        None => return,
                    },
                    _ = conn.closed() => break,
                },
            };
            if job.reply.is_closed() {
                continue; // the HTTP client left while queued
            }
            let class = state
                .config
                .class(job.class)
                .map(|c| c.stream_class())
                .unwrap_or_default();
            match conn.open_bi_with(class).await {
                Ok((send, recv)) => {
                    let retry = retry_tx.clone();
                    tokio::spawn(async move {
                        run_stream(job, send, recv, retry).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("back-end connection lost: {e}");
                    pending = Some(job);
                    break;
                }
            }
        }
    }
}

/// One request on one stream. Before the back-end's `Start`, a failure of the stream or
/// connection puts the job back (it is re-sent after reconnecting).
async fn run_stream(
    job: Job,
    mut send: quiver::SendStream,
    recv: quiver::RecvStream,
    retry: mpsc::UnboundedSender<Job>,
) {
    let sent = write_frame(&mut send, &job.frame).await.is_ok() && send.finish().is_ok();
    if !sent {
        let _ = retry.send(job);
        return;
    }
    let mut reader = FrameReader::new(recv);
    let mut started = false;
    loop {
        let reply = match reader.next().await {
            Ok(Some(Frame::Start {
                model, admit_seq, ..
            })) => {
                started = true;
                Reply::Start { model, admit_seq }
            }
            Ok(Some(Frame::Token(t))) => Reply::Token(t),
            Ok(Some(Frame::Done {
                finish,
                tokens,
                quality_milli,
            })) => Reply::Done {
                finish,
                tokens,
                quality: f64::from(quality_milli) / 1000.0,
            },
            Ok(Some(Frame::Error { code, message })) => Reply::Error {
                code: Some(code),
                message,
            },
            Ok(Some(other)) => Reply::Error {
                code: None,
                message: format!("unexpected frame from back-end: {other:?}"),
            },
            Ok(None) => Reply::Error {
                code: None,
                message: "back-end ended the stream early".into(),
            },
            Err(e) if !started && matches!(e, crate::wire::StreamError::Read(_)) => {
                let _ = retry.send(job);
                return;
            }
            Err(e) => Reply::Error {
                code: None,
                message: format!("back-end stream: {e}"),
            },
        };
        let last = matches!(reply, Reply::Done { .. } | Reply::Error { .. });
        if job.reply.send(reply).await.is_err() {
            let _ = reader.stream_mut().stop(0u32.into());
            return;
        }
        if last {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP side

/// An OpenAI-style error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<&'static str>,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                message,
            )
        }
    }

    fn rate_limited(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                message,
            )
        }
    }

    fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        r
    }
}

fn backend_error(code: Option<ErrorCode>, message: String) -> ApiError {
    match code {
        Some(ErrorCode::UnknownModel) => ApiError {
            param: Some("model"),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                message,
            )
        },
        Some(ErrorCode::Overloaded) => {
            ApiError::rate_limited(format!("back-end overloaded: {message}"))
        }
        Some(ErrorCode::BadRequest) => ApiError::invalid("prompt", message),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "server_error", None, message),
    }
}

fn class_of(state: &FrontState, headers: &HeaderMap) -> Result<u8, ApiError> {
    let unauth = |m: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            m,
        )
    };
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(ApiError {
            code: None,
            ..unauth("You didn't provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_KEY).")
        });
    };
    let c = &state.config;
    let tier = match c.keys.get(key) {
        Some(class) => c.class_index(class),
        None if c.accept_unknown_keys => c.class_index(&c.default_class),
        None => return Err(unauth("Incorrect API key provided.")),
    };
    let tier = tier.unwrap_or(0);
    let Some(h) = headers.get("x-quiver-class") else {
        return Ok(tier);
    };
    let name = h.to_str().unwrap_or("");
    let Some(asked) = c.class_index(name) else {
        return Err(ApiError::invalid(
            "x-quiver-class",
            format!("unknown class {name:?}"),
        ));
    };
    match (c.class(asked), c.class(tier)) {
        (Some(a), Some(t)) if a.urgency() < t.urgency() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("class_not_allowed"),
            format!(
                "class {name:?} is more urgent than this key's tier {:?}",
                t.name
            ),
        )),
        _ => Ok(asked),
    }
}

/// The common part of a parsed request.
struct Parsed {
    model: String,
    prompt: String,
    max_tokens: u32,
    stream: bool,
    task: Option<Task>,
    class: u8,
}

fn parse_common(
    state: &FrontState,
    headers: &HeaderMap,
    body: &Bytes,
    chat: bool,
) -> Result<(Parsed, Value), ApiError> {
    let class = class_of(state, headers)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "body",
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(ApiError::invalid(
            "body",
            "The request body must be a JSON object.",
        ));
    }
    let model = match v.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(ApiError::invalid(
                "model",
                "you must provide a model parameter",
            ))
        }
    };
    let prompt = if chat {
        let Some(Value::Array(msgs)) = v.get("messages") else {
            return Err(ApiError::invalid(
                "messages",
                "'messages' must be a non-empty array",
            ));
        };
        if msgs.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                "'messages' must be a non-empty array",
            ));
        }
        let mut p = String::new();
        for m in msgs {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("messages", "each message needs a 'role'"))?;
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                Some(Value::Null) | None => String::new(),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "messages",
                        "'content' must be a string or an array of parts",
                    ))
                }
            };
            p.push_str(role);
            p.push_str(": ");
            p.push_str(&content);
            p.push('\n');
        }
        p
    } else {
        match v.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                a[0].as_str().unwrap_or_default().to_string()
            }
            Some(Value::Array(_)) => {
                return Err(ApiError::invalid(
                    "prompt",
                    "only a single prompt per request is supported",
                ))
            }
            None => String::new(),
            Some(_) => return Err(ApiError::invalid("prompt", "'prompt' must be a string")),
        }
    };
    if prompt.len() > state.config.max_prompt_bytes {
        return Err(ApiError {
            param: Some(if chat { "messages" } else { "prompt" }),
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(
                "prompt",
                format!(
                    "This model's maximum context length is {} bytes; your prompt has {} bytes.",
                    state.config.max_prompt_bytes,
                    prompt.len()
                ),
            )
        });
    }
    let default_tokens = if chat { 64 } else { 16 };
    let max_tokens = match v
        .get("max_completion_tokens")
        .or_else(|| v.get("max_tokens"))
    {
        None | Some(Value::Null) => default_tokens,
        Some(n) => match n.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(state.config.max_tokens_limit) => n as u32,
            _ => {
                return Err(ApiError::invalid(
                    "max_tokens",
                    format!(
                        "max_tokens must be an integer from 1 to {}",
                        state.config.max_tokens_limit
                    ),
                ))
            }
        },
    };
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream", "'stream' must be a boolean")),
    };
    let task_name = v
        .get("task")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("x-quiver-task")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
    let task = match task_name {
        Some(t) => Some(
            t.parse::<Task>()
                .map_err(|e| ApiError::invalid("task", e.to_string()))?,
        ),
        None => None,
    };
    let known = read_models(state);
    if model != "auto" && !known.is_empty() && !known.contains(&model) {
        return Err(backend_error(
            Some(ErrorCode::UnknownModel),
            format!("The model `{model}` does not exist"),
        ));
    }
    Ok((
        Parsed {
            model,
            prompt,
            max_tokens,
            stream,
            task,
            class,
        },
        v,
    ))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn request_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}-{:x}{:06x}",
        now_secs(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Enqueue and wait for the back-end's first answer.
async fn submit(
    state: &FrontState,
    p: &Parsed,
) -> Result<(mpsc::Receiver<Reply>, String, u64), ApiError> {
    let (tx, mut rx) = mpsc::channel(64);
    let job = Job {
        frame: Frame::Request {
            class: p.class,
            task: p.task,
            max_tokens: p.max_tokens,
            model: p.model.clone(),
            prompt: p.prompt.clone(),
        },
        class: p.class,
        reply: tx,
    };
    match state.jobs.try_send(job) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Err(ApiError::rate_limited(
                "Too many requests queued; retry later.",
            ));
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                "back-end connection task stopped",
            ));
        }
    }
    match rx.recv().await {
        Some(Reply::Start { model, admit_seq }) => Ok((rx, model, admit_seq)),
        Some(Reply::Error { code, message }) => Err(backend_error(code, message)),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            None,
            format!("unexpected reply {other:?}"),
        )),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            None,
            "back-end unavailable",
        )),
    }
}

fn words(s: &str) -> u32 {
    u32::try_from(s.split_whitespace().count()).unwrap_or(u32::MAX)
}

async fn list_models(State(state): State<Arc<FrontState>>, headers: HeaderMap) -> Response {
    if let Err(e) = class_of(&state, &headers) {
        return e.into_response();
    }
    let created = now_secs();
    let mut names = vec!["auto".to_string()];
    names.extend(read_models(&state));
    let data: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": n, "object": "model", "created": created, "owned_by": "quiver"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn completions(
    State(state): State<Arc<FrontState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(
    State(state): State<Arc<FrontState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    state: Arc<FrontState>,
    headers: HeaderMap,
    body: Bytes,
    chat: bool,
) -> Result<Response, ApiError> {
    let (p, _) = parse_common(&state, &headers, &body, chat)?;
    let (mut rx, model, admit_seq) = submit(&state, &p).await?;
    let id = request_id(if chat { "chatcmpl" } else { "cmpl" });
    let created = now_secs();
    let class_name = state
        .config
        .class(p.class)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let prompt_tokens = words(&p.prompt);
    let meta = move |quality: Option<f64>| json!({"class": class_name, "admit_seq": admit_seq, "quality": quality});
    if !p.stream {
        let mut text = String::new();
        loop {
            match rx.recv().await {
                Some(Reply::Token(t)) => text.push_str(&t),
                Some(Reply::Done {
                    finish,
                    tokens,
                    quality,
                }) => {
                    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens.saturating_add(tokens)});
                    let choice = if chat {
                        json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish.as_str()})
                    } else {
                        json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish.as_str()})
                    };
                    let object = if chat {
                        "chat.completion"
                    } else {
                        "text_completion"
                    };
                    return Ok(Json(json!({
                        "id": id, "object": object, "created": created, "model": model,
                        "choices": [choice], "usage": usage, "quiver": meta(Some(quality)),
                    }))
                    .into_response());
                }
                Some(Reply::Error { code, message }) => return Err(backend_error(code, message)),
                Some(Reply::Start { .. }) => {}
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        None,
                        "back-end stream lost",
                    ))
                }
            }
        }
    }
    let (etx, erx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let chunk = |delta: Value, finish: Option<&str>, extra: Option<Value>| {
            let choice = if chat {
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            } else {
                json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "logprobs": null, "finish_reason": finish})
            };
            let mut v = json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice]});
            if let (Some(extra), Some(o)) = (extra, v.as_object_mut()) {
                o.insert("quiver".into(), extra);
            }
            Event::default().data(v.to_string())
        };
        if chat
            && etx
                .send(Ok(chunk(
                    json!({"role": "assistant", "content": ""}),
                    None,
                    None,
                )))
                .await
                .is_err()
        {
            return;
        }
        loop {
            let ev = match rx.recv().await {
                Some(Reply::Token(t)) => chunk(json!({"content": t}), None, None),
                Some(Reply::Done {
                    finish, quality, ..
                }) => {
                    let _ = etx
                        .send(Ok(chunk(
                            json!({}),
                            Some(finish.as_str()),
                            Some(meta(Some(quality))),
                        )))
                        .await;
                    let _ = etx.send(Ok(Event::default().data("[DONE]"))).await;
                    return;
                }
                Some(Reply::Start { .. }) => continue,
                Some(Reply::Error { code, message }) => {
                    let _ = etx
                        .send(Ok(
                            Event::default().data(backend_error(code, message).body().to_string())
                        ))
                        .await;
                    return;
                }
                None => return,
            };
            if etx.send(Ok(ev)).await.is_err() {
                return; // client went away; dropping rx stops the QUIC stream
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(erx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FrontState {
        let (tx, _rx) = mpsc::channel(1);
        let mut config = ServeConfig::default();
        config.keys.insert("gold".into(), "latency".into());
        config.keys.insert("bulk".into(), "batch".into());
        FrontState {
            config,
            jobs: tx,
            models: RwLock::new(vec!["opt-125m".into()]),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn class_from_key_and_header() {
        let s = state();
        assert_eq!(
            class_of(&s, &headers(&[("authorization", "Bearer gold")])).unwrap(),
            0
        );
        assert_eq!(
            class_of(&s, &headers(&[("authorization", "Bearer other")])).unwrap(),
            1
        );
        let h = headers(&[
            ("authorization", "Bearer gold"),
            ("x-quiver-class", "batch"),
        ]);
        assert_eq!(class_of(&s, &h).unwrap(), 2);
        let h = headers(&[
            ("authorization", "Bearer bulk"),
            ("x-quiver-class", "latency"),
        ]);
        assert_eq!(class_of(&s, &h).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(
            class_of(&s, &headers(&[])).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn request_validation() {
        let s = state();
        let h = headers(&[("authorization", "Bearer k")]);
        let parse =
            |b: &str, chat| parse_common(&s, &h, &Bytes::from(b.to_string()), chat).map(|(p, _)| p);
        let p = parse(r#"{"model":"auto","prompt":"a b c","task":"copa"}"#, false)
            .ok()
            .unwrap();
        assert_eq!(
            (p.max_tokens, p.task, p.stream),
            (16, Some(Task::Copa), false)
        );
        let p = parse(
            r#"{"model":"opt-125m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            true,
        )
        .ok()
        .unwrap();
        assert_eq!(p.prompt, "user: hi\n");
        assert!(p.stream);
        let status = |b: &str, chat| parse(b, chat).err().map(|e| (e.status, e.code));
        assert_eq!(status("{", false).unwrap().0, StatusCode::BAD_REQUEST);
        assert_eq!(
            status(r#"{"model":"gpt-9","prompt":"x"}"#, false),
            Some((StatusCode::NOT_FOUND, Some("model_not_found")))
        );
        let big = format!(r#"{{"model":"auto","prompt":"{}"}}"#, "x".repeat(40_000));
        assert_eq!(
            status(&big, false),
            Some((StatusCode::BAD_REQUEST, Some("context_length_exceeded")))
        );
        assert_eq!(
            status(r#"{"model":"auto","prompt":"x","max_tokens":0}"#, false)
                .unwrap()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(r#"{"model":"auto","prompt":"x","task":"chess"}"#, false)
                .unwrap()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(r#"{"model":"auto","messages":[]}"#, true).unwrap().0,
            StatusCode::BAD_REQUEST
        );
    }
}
