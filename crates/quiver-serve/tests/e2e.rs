//! End to end on loopback: HTTP client → front-end (axum) → one QUIC connection → back-end
//! (simulated OPT models in scaled real time).
//!
//! Assertions are on the back-end's admission order (`quiver.admit_seq` in each
//! response), which the test makes deterministic by filling the back-end first and
//! checking its counters, never on wall-clock speed.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use quiver::SchedulerKind;
use quiver_serve::backend::{Backend, ModelPool};
use quiver_serve::config::ServeConfig;
use quiver_serve::frontend::{BackendTarget, Frontend};
use quiver_serve::model::{opt_family, ModelBackend, SimReplica};
use quiver_serve::router::RouterKind;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type Http = Client<HttpConnector, Full<Bytes>>;

type Identity = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

struct Stack {
    backend: Backend,
    identity: Identity,
    endpoint: Arc<quiver::Endpoint>,
    http: SocketAddr,
    client: Http,
}

fn pools(models: &[&str], time_scale: f64) -> Vec<ModelPool> {
    opt_family()
        .into_iter()
        .filter(|m| models.contains(&m.name.as_str()))
        .map(|m| ModelPool {
            name: m.name.clone(),
            replicas: vec![Arc::new(SimReplica::spawn(m, time_scale)) as Arc<dyn ModelBackend>],
        })
        .collect()
}

fn config() -> ServeConfig {
    let mut c = ServeConfig::default();
    c.keys.insert("gold".into(), "latency".into());
    c.keys.insert("bulk".into(), "batch".into());
    c
}

async fn start_backend(
    addr: SocketAddr,
    backend: &Backend,
    identity: &Identity,
) -> (
    Arc<quiver::Endpoint>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let (certs, key) = (identity.0.clone(), identity.1.clone_key());
    let cert = certs[0].clone();
    let ep = Arc::new(
        quiver_serve::net::server_endpoint(
            addr,
            SchedulerKind::MultiLevel { drop: false },
            certs,
            key,
        )
        .unwrap(),
    );
    let (b, e) = (backend.clone(), ep.clone());
    tokio::spawn(async move { b.serve(&e).await });
    (ep, cert)
}

async fn stack(backend: Backend, config: ServeConfig) -> Stack {
    let identity = quiver::tls::self_signed(&["localhost"]).unwrap();
    let (endpoint, cert) = start_backend("127.0.0.1:0".parse().unwrap(), &backend, &identity).await;
    let target = BackendTarget {
        addr: endpoint.local_addr().unwrap(),
        server_name: "localhost".into(),
        cert,
        scheduler: SchedulerKind::MultiLevel { drop: false },
    };
    let front = Frontend::start(config, target);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { front.serve(listener).await });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Stack {
        backend,
        identity,
        endpoint,
        http,
        client,
    }
}

async fn post(
    client: &Http,
    addr: SocketAddr,
    key: &str,
    class: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = hyper::Request::post(format!("http://{addr}/v1/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    if let Some(c) = class {
        req = req.header("x-quiver-class", c);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn admit_seq(v: &Value) -> u64 {
    v["quiver"]["admit_seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no admit_seq in {v}"))
}

/// A flood of batch requests fills the back-end; latency-class requests that arrive later
/// are admitted before every waiting batch request (EDF admission), standard-class ones
/// after the latency ones and before the batch ones; every request completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_class_overtakes_batch_flood() {
    // Only OPT-6.7B, 2 generating at once: a batch request of 300 tokens takes
    // 300 × 15.6 ms × 0.2 ≈ 0.9 s, so the queue stays full while the test submits.
    let backend = Backend::new(
        pools(&["opt-6.7b"], 0.2),
        Arc::new(RouterKind::Largest),
        config(),
        2,
        100,
    );
    let s = stack(backend, config()).await;
    let batch_body = serde_json::json!({"model": "auto", "prompt": "bulk job", "max_tokens": 300});
    let mut batch = Vec::new();
    for _ in 0..6 {
        let (c, a) = (s.client.clone(), s.http);
        let body = batch_body.clone();
        batch.push(tokio::spawn(async move {
            post(&c, a, "gold", Some("batch"), body).await
        }));
    }
    let b = s.backend.clone();
    wait_for("the batch flood to fill the back-end", || {
        let st = b.stats();
        st.active == 2 && st.waiting == 4
    })
    .await;
    let mut latency = Vec::new();
    for i in 0..3 {
        let (c, a) = (s.client.clone(), s.http);
        let body = serde_json::json!({"model": "auto", "prompt": format!("chat {i}"), "max_tokens": 4, "task": "openbookqa"});
        latency.push(tokio::spawn(async move {
            post(&c, a, "gold", None, body).await
        }));
    }
    wait_for("the latency requests to queue", || b.stats().waiting == 7).await;
    let (c, a) = (s.client.clone(), s.http);
    let standard = tokio::spawn(async move {
        post(
            &c,
            a,
            "someone",
            None,
            serde_json::json!({"model": "auto", "prompt": "std", "max_tokens": 4}),
        )
        .await
    });

    let mut lat_seqs = Vec::new();
    for h in latency {
        let (status, v) = h.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["quiver"]["class"], "latency");
        assert_eq!(v["model"], "opt-6.7b");
        assert_eq!(v["usage"]["completion_tokens"], 4);
        lat_seqs.push(admit_seq(&v));
    }
    lat_seqs.sort_unstable();
    assert_eq!(
        lat_seqs,
        vec![2, 3, 4],
        "latency requests wait behind no batch request"
    );
    let (status, v) = standard.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["quiver"]["class"], "standard");
    assert_eq!(admit_seq(&v), 5);
    let mut batch_seqs = Vec::new();
    for h in batch {
        let (status, v) = h.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["quiver"]["class"], "batch");
        assert_eq!(v["usage"]["completion_tokens"], 300);
        batch_seqs.push(admit_seq(&v));
    }
    batch_seqs.sort_unstable();
    assert_eq!(batch_seqs, vec![0, 1, 6, 7, 8, 9]);
    assert_eq!(s.backend.stats().admitted, 10);
}

/// The back-end goes away and comes back on the same address: requests sent while it is
/// down wait in the front-end's queue and complete on the new connection. The router's
/// choice follows the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_without_losing_queued_requests() {
    let fam = ["opt-125m", "opt-1.3b", "opt-2.7b", "opt-6.7b"];
    let backend = Backend::new(
        pools(&fam, 0.01),
        Arc::new(RouterKind::Threshold),
        config(),
        64,
        100,
    );
    let s = stack(backend.clone(), config()).await;
    let body = serde_json::json!({"model": "auto", "prompt": "x", "max_tokens": 3, "task": "piqa"});
    let (status, v) = post(&s.client, s.http, "k", None, body.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["model"], "opt-6.7b",
        "idle system: the threshold router takes the best model"
    );
    assert_eq!(v["quiver"]["quality"], 1.0);

    let addr = s.endpoint.local_addr().unwrap();
    s.endpoint.close(0u32.into(), b"restart");
    s.endpoint.wait_idle().await;
    drop(s.endpoint);
    let mut pending = Vec::new();
    for _ in 0..3 {
        let (c, a, b) = (s.client.clone(), s.http, body.clone());
        pending.push(tokio::spawn(async move { post(&c, a, "k", None, b).await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admitted_before = backend.stats().admitted;
    let (_ep2, _) = start_backend(addr, &backend, &s.identity).await;
    for h in pending {
        let (status, v) = h.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["usage"]["completion_tokens"], 3);
    }
    assert_eq!(backend.stats().admitted, admitted_before + 3);
}

/// A full front-end queue answers 429 with Retry-After and an OpenAI error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_429() {
    let backend = Backend::new(
        // Half real time: the first request generates for seconds, so it cannot finish (and
        // free the queue) while the test probes, however slow the machine is.
        pools(&["opt-6.7b"], 0.5),
        Arc::new(RouterKind::Largest),
        config(),
        8,
        100,
    );
    let mut cfg = config();
    cfg.queue = 1;
    cfg.max_inflight = 1;
    let s = stack(backend.clone(), cfg).await;
    let body = serde_json::json!({"model": "auto", "prompt": "x", "max_tokens": 200});
    let (c, a, b) = (s.client.clone(), s.http, body.clone());
    let first = tokio::spawn(async move { post(&c, a, "k", None, b).await });
    wait_for("the first request to be generating", || {
        backend.stats().active == 1
    })
    .await;
    let (c, a, b) = (s.client.clone(), s.http, body.clone());
    let second = tokio::spawn(async move { post(&c, a, "k", None, b).await });
    // Let the second reach the queue before any probe can take its place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The second waits in the queue (its permit is held by the first); poll until a
    // third is refused.
    let mut refused = None;
    for _ in 0..200 {
        let req = hyper::Request::post(format!("http://{}/v1/completions", s.http))
            .header("authorization", "Bearer k")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = s.client.request(req).await.unwrap();
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resp = refused.expect("a third request is refused while the queue is full");
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200);
}
