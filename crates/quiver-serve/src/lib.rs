//! # quiver-serve — QoS-aware LLM serving over Quiver
//!
//! The system of "Quality-of-Service Aware LLM Serving" (issue 13): front-end servers
//! take OpenAI-compatible HTTP requests and forward each over **one long-lived QUIC
//! connection** to a model-serving back-end, **one bidirectional stream per request**,
//! each stream scheduled by the request's traffic class. The back-end holds models of
//! several sizes and a router that picks the model per request.
//!
//! ```text
//!  openai client ──HTTP/SSE──▶ frontend ══ QUIC: stream per request, class ══▶ backend
//!                              (axum)      (EDF / ML / ... scheduler)          router → model pool
//! ```
//!
//! Modules, one idea each:
//! - [`model`] — the [`ModelBackend`](model::ModelBackend) trait; simulated OPT models
//!   (continuous batching in virtual time, [`model::Batcher`]; in real time,
//!   [`model::SimReplica`]); tasks and quality.
//! - [`upstream`] — any OpenAI-compatible server (vLLM, llama.cpp) as a model.
//! - [`wire`] — the versioned, length-checked frames on each request stream.
//! - [`router`] — the [`Router`](router::Router) trait and the static baselines.
//! - [`backend`] — the QUIC server: admission (EDF), routing, dispatch, token streaming.
//! - [`frontend`] — the HTTP ingress, classes from API keys, back-pressure, reconnection.
//! - [`config`] — classes and limits (TOML, embedded defaults).
//! - [`net`] — QUIC endpoint setup (ALPN, scheduler, stream limits).
//!
//! ## Extension points
//! - a new kind of model: implement [`model::ModelBackend`] and put replicas in a
//!   [`backend::ModelPool`];
//! - a new routing policy: implement [`router::Router`] (the learned DQN router of the
//!   issue goes here; not built yet);
//! - classes and tiers: the TOML configuration ([`config::ServeConfig`]);
//! - stream scheduling: any [`quiver::SchedulerKind`] on either endpoint.
//!
//! The `quiver serve backend|frontend` commands put these together.

#![forbid(unsafe_code)]

pub mod backend;
pub mod config;
pub mod frontend;
pub mod model;
pub mod net;
pub mod router;
pub mod upstream;
pub mod wire;
