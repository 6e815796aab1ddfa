//! The OpenAI-compatible upstream back-end against a small fake upstream speaking the
//! OpenAI completions API (server-sent events) over real HTTP on loopback, alone and
//! behind the whole front-end → QUIC → back-end chain.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use quiver_serve::backend::{Backend, ModelPool};
use quiver_serve::config::ServeConfig;
use quiver_serve::frontend::{BackendTarget, Frontend};
use quiver_serve::model::{BackendError, Chunk, FinishReason, GenRequest, ModelBackend};
use quiver_serve::router::RouterKind;
use quiver_serve::upstream::OpenAiUpstream;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// The fake: `POST /v1/completions` with `stream: true` answers `max_tokens` events
/// `" w0"`, `" w1"`, ... (text split across events as a real server does), the last with
/// `finish_reason: "length"`, then `[DONE]`. Model `broken` gets a 500 with an error body.
async fn fake_completions(body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad json").into_response(),
    };
    if v["model"] == "broken" {
        let err = json!({"error": {"message": "model crashed", "type": "server_error"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(err)).into_response();
    }
    assert_eq!(v["stream"], true, "the upstream client always streams");
    let n = v["max_tokens"].as_u64().unwrap_or(16);
    let prompt = v["prompt"].as_str().unwrap_or("").to_string();
    let mut events: Vec<Result<Event, Infallible>> = Vec::new();
    for i in 0..n {
        let finish = (i + 1 == n).then_some("length");
        let text = if i == 0 {
            format!(" [{prompt}] w0")
        } else {
            format!(" w{i}")
        };
        let ev = json!({"id": "x", "object": "text_completion", "model": v["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]});
        events.push(Ok(Event::default().data(ev.to_string())));
    }
    events.push(Ok(Event::default().data("[DONE]")));
    Sse::new(tokio_stream::iter(events)).into_response()
}

async fn fake_upstream() -> SocketAddr {
    let app = axum::Router::new().route("/v1/completions", post(fake_completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<Result<Chunk, BackendError>>,
) -> Result<(String, FinishReason, u32), BackendError> {
    let mut text = String::new();
    while let Some(c) = rx.recv().await {
        match c? {
            Chunk::Token(t) => text.push_str(&t),
            Chunk::Done { finish, tokens } => return Ok((text, finish, tokens)),
        }
    }
    Err(BackendError::Stopped)
}

#[tokio::test]
async fn upstream_streams_tokens_and_reports_errors() {
    let addr = fake_upstream().await;
    let up = OpenAiUpstream::new("tiny", format!("http://{addr}/"), "tiny", 4, None).unwrap();
    let rx = up
        .generate(GenRequest {
            prompt: "hello".into(),
            max_tokens: 3,
        })
        .unwrap();
    let (text, finish, tokens) = collect(rx).await.unwrap();
    assert_eq!(text, " [hello] w0 w1 w2");
    assert_eq!((finish, tokens), (FinishReason::Length, 3));
    assert_eq!(up.batch(), 0, "in-flight count released");

    let broken =
        OpenAiUpstream::new("broken", format!("http://{addr}"), "broken", 4, None).unwrap();
    let rx = broken
        .generate(GenRequest {
            prompt: "x".into(),
            max_tokens: 3,
        })
        .unwrap();
    match collect(rx).await {
        Err(BackendError::Upstream(m)) => {
            assert!(m.contains("500") && m.contains("model crashed"), "{m}")
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }

    // Nothing listens here: a connection error, not a hang or a panic.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone = OpenAiUpstream::new("gone", format!("http://{closed}"), "gone", 4, None).unwrap();
    let rx = gone
        .generate(GenRequest {
            prompt: "x".into(),
            max_tokens: 1,
        })
        .unwrap();
    assert!(matches!(collect(rx).await, Err(BackendError::Upstream(_))));
}

/// HTTP client → front-end → QUIC → back-end → OpenAI upstream → back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_behind_the_whole_chain() {
    let addr = fake_upstream().await;
    let up = OpenAiUpstream::new("tiny", format!("http://{addr}"), "tiny", 4, None).unwrap();
    let backend = Backend::new(
        vec![ModelPool {
            name: "tiny".into(),
            replicas: vec![Arc::new(up)],
        }],
        Arc::new(RouterKind::Threshold),
        ServeConfig::default(),
        16,
        16,
    );
    let (certs, key) = quiver::tls::self_signed(&["localhost"]).unwrap();
    let cert = certs[0].clone();
    let ep = Arc::new(
        quiver_serve::net::server_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            quiver::SchedulerKind::RoundRobin,
            certs,
            key,
        )
        .unwrap(),
    );
    let (b, e) = (backend.clone(), ep.clone());
    tokio::spawn(async move { b.serve(&e).await });
    let front = Frontend::start(
        ServeConfig::default(),
        BackendTarget {
            addr: ep.local_addr().unwrap(),
            server_name: "localhost".into(),
            cert,
            scheduler: quiver::SchedulerKind::RoundRobin,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { front.serve(listener).await });

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let body = json!({"model": "tiny", "prompt": "hi", "max_tokens": 2}).to_string();
    let req = hyper::Request::post(format!("http://{http}/v1/completions"))
        .header("authorization", "Bearer k")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["choices"][0]["text"], " [hi] w0 w1");
    assert_eq!(v["model"], "tiny");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}
