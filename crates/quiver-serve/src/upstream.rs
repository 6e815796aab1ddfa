//! A model served by any OpenAI-compatible server (vLLM, llama.cpp's `llama-server`, ...)
//! given by URL: [`OpenAiUpstream`], a [`ModelBackend`].
//!
//! Each request becomes `POST {base}/v1/completions` with `"stream": true`; the
//! server-sent events (`data: {json}` lines, ended by `data: [DONE]`) are parsed as they
//! arrive and each `choices[0].text` is forwarded as a token. Plain `http://` only (the
//! upstream normally sits next to the back-end); the load the router sees is the number of
//! requests in flight to the upstream, capped at `max_batch`.

use crate::model::{BackendError, Chunk, FinishReason, GenRequest, ModelBackend, ModelSpec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An OpenAI-compatible upstream serving one model.
#[derive(Debug)]
pub struct OpenAiUpstream {
    name: String,
    remote_model: String,
    base: String,
    max_batch: usize,
    spec: Option<ModelSpec>,
    inflight: Arc<AtomicUsize>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Largest SSE line accepted from an upstream (a line is one event's data).
const MAX_LINE: usize = 1 << 20;

impl OpenAiUpstream {
    /// An upstream at `base` (e.g. `http://127.0.0.1:8000`), served to clients as `name`
    /// and asked for `remote_model`. `spec` (optional) gives the router a latency model
    /// and per-task quality for it.
    pub fn new(
        name: impl Into<String>,
        base: impl Into<String>,
        remote_model: impl Into<String>,
        max_batch: usize,
        spec: Option<ModelSpec>,
    ) -> Result<Self, BackendError> {
        let base: String = base.into();
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(BackendError::Upstream(format!(
                "{base}: only http:// upstreams are supported"
            )));
        }
        base.parse::<hyper::Uri>()
            .map_err(|e| BackendError::Upstream(format!("{base}: {e}")))?;
        Ok(OpenAiUpstream {
            name: name.into(),
            remote_model: remote_model.into(),
            base,
            max_batch: max_batch.max(1),
            spec,
            inflight: Arc::new(AtomicUsize::new(0)),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }
}

struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One parsed SSE data line of a completion stream.
#[derive(Debug, PartialEq)]
enum Event {
    Text(String, Option<FinishReason>),
    Done,
}

fn parse_line(line: &str) -> Result<Option<Event>, BackendError> {
    let line = line.trim_end_matches('\r');
    let Some(data) = line.strip_prefix("data:") else {
        return Ok(None); // comments, event names, blank separators
    };
    let data = data.trim_start();
    if data == "[DONE]" {
        return Ok(Some(Event::Done));
    }
    let v: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| BackendError::Upstream(format!("bad event: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(BackendError::Upstream(err.to_string()));
    }
    let choice = v.get("choices").and_then(|c| c.get(0));
    let text = choice
        .and_then(|c| c.get("text"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    let finish = match choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(|f| f.as_str())
    {
        Some("length") => Some(FinishReason::Length),
        Some(_) => Some(FinishReason::Stop),
        None => None,
    };
    Ok(Some(Event::Text(text, finish)))
}

async fn run(
    client: Client<HttpConnector, Full<Bytes>>,
    uri: String,
    body: Vec<u8>,
    tx: mpsc::Sender<Result<Chunk, BackendError>>,
) -> Result<(), BackendError> {
    let up = |e: &dyn std::fmt::Display| BackendError::Upstream(e.to_string());
    let req = hyper::Request::post(&uri)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| up(&e))?;
    let resp = client.request(req).await.map_err(|e| up(&e))?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
        return Err(BackendError::Upstream(format!("{uri}: {status}: {text}")));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut tokens = 0u32;
    let mut finish = FinishReason::Stop;
    loop {
        let Some(frame) = body.frame().await else {
            return Err(BackendError::Upstream("stream ended without [DONE]".into()));
        };
        let frame = frame.map_err(|e| up(&e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            match parse_line(&line)? {
                None => {}
                Some(Event::Done) => {
                    let _ = tx.send(Ok(Chunk::Done { finish, tokens })).await;
                    return Ok(());
                }
                Some(Event::Text(text, f)) => {
                    if let Some(f) = f {
                        finish = f;
                    }
                    if !text.is_empty() {
                        tokens += 1;
                        if tx.send(Ok(Chunk::Token(text))).await.is_err() {
                            return Ok(()); // the client went away: drop the upstream
                        }
                    }
                }
            }
        }
        if buf.len() > MAX_LINE {
            return Err(BackendError::Upstream("event line too long".into()));
        }
    }
}

impl ModelBackend for OpenAiUpstream {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn spec(&self) -> Option<&ModelSpec> {
        self.spec.as_ref()
    }

    fn generate(
        &self,
        request: GenRequest,
    ) -> Result<mpsc::Receiver<Result<Chunk, BackendError>>, BackendError> {
        let prev = self.inflight.fetch_add(1, Ordering::Relaxed);
        let guard = InflightGuard(self.inflight.clone());
        if prev >= self.max_batch {
            return Err(BackendError::Full(self.name.clone()));
        }
        let body = serde_json::json!({
            "model": self.remote_model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "stream": true,
        });
        let body = serde_json::to_vec(&body).map_err(|e| BackendError::Upstream(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        let uri = format!("{}/v1/completions", self.base);
        let client = self.client.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = run(client, uri, body, tx.clone()).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sse_lines() {
        assert_eq!(parse_line(": keep-alive").unwrap(), None);
        assert_eq!(parse_line("data: [DONE]").unwrap(), Some(Event::Done));
        assert_eq!(
            parse_line(r#"data: {"choices":[{"text":" hi","finish_reason":null}]}"#).unwrap(),
            Some(Event::Text(" hi".into(), None))
        );
        assert_eq!(
            parse_line(r#"data:{"choices":[{"text":"","finish_reason":"length"}]}"#).unwrap(),
            Some(Event::Text(String::new(), Some(FinishReason::Length)))
        );
        assert!(parse_line("data: {oops").is_err());
        assert!(parse_line(r#"data: {"error":{"message":"x"}}"#).is_err());
    }

    #[test]
    fn refuses_https_and_garbage() {
        assert!(OpenAiUpstream::new("m", "https://x", "m", 1, None).is_err());
        assert!(OpenAiUpstream::new("m", "http://a b", "m", 1, None).is_err());
    }
}
