//! # quiver-proto — the sans-IO QUIC core of Quiver
//!
//! This crate implements QUIC v1 (RFC 9000, 9001, 9002) with DATAGRAM (RFC 9221) as a
//! pure state machine: it takes bytes and time in and gives bytes and deadlines out.
//! It never reads a clock, opens a socket or spawns a task; everything is driven by the
//! caller (the `quiver` crate's tokio runtime, a simulator, or a fast path).
//!
//! ## Call contract
//! An [`Endpoint`] owns its connections. The driver:
//! 1. feeds every received UDP datagram to [`Endpoint::handle`];
//! 2. drains [`Endpoint::poll_transmit`] and sends what it returns;
//! 3. arms one timer at [`Endpoint::poll_timeout`] and calls
//!    [`Endpoint::handle_timeout`] when it fires;
//! 4. drains application events with [`Endpoint::poll_event`] and uses
//!    [`Endpoint::connection_mut`] for stream and datagram operations.
//!
//! After any call that changes state, steps 2–3 must be repeated.
//!
//! ## Extension points
//! Each hook is a trait or an explicit API in one module. Hooks that replace a behaviour
//! are plugged in one way: an `Arc<dyn …Factory>` in the configuration, always set (a
//! default is built in), asked for a fresh object per connection, path or endpoint (see
//! [`config`]); observers ([`qlog::SubscriberFactory`]) are optional.
//! - [`sched::Scheduler`] — which stream fills the next STREAM frame (FCFS, RR, EDF with
//!   deadline drop, ABS, multi-level, PIFO built in); each stream carries a
//!   [`sched::StreamClass`] given at [`connection::Connection::open_with`];
//! - [`cc::Controller`] — congestion control (window and pacing rate) fed per-ACK samples;
//! - [`cid::ConnectionIdGenerator`] ([`cid::CidGeneratorFactory`]) — how connection IDs
//!   are minted (routing in CIDs);
//! - [`qlog::EventSubscriber`] — a typed stream of connection events (packets, frames,
//!   loss, recovery metrics, keys, state), serialised as qlog by [`qlog::JsonSeqWriter`];
//! - the data model keeps one packet-number space per path in the application epoch
//!   ([`shared::SpaceId::Data`], [`packet::PartialEncode::finish_for_path`]) so that
//!   multipath and stream hand-off need no rewrite.
//!
//! ## Module map
//! | module | what |
//! |---|---|
//! | [`coding`], [`frame`], [`packet`], [`transport_params`] | wire codecs (each with round-trip and no-panic property tests) |
//! | [`crypto`] | TLS 1.3 via `rustls::quic`, Initial keys, config builders; with the `deterministic-crypto` feature, `crypto::deterministic`: a seeded provider and virtual clock so simulated runs replay bit for bit (tests only) |
//! | [`connection`] | the per-connection state machine (send/recv paths, CIDs, timers) |
//! | [`endpoint`] | CID routing, version negotiation, stateless reset, Retry, accepting |
//! | [`version`] | QUIC v1/v2, Version Negotiation, compatible negotiation (RFC 9368) |
//! | [`token`] | address validation: Retry and NEW_TOKEN tokens, the client's token store |
//! | [`streams`], [`sched`] | stream state, flow control, scheduling |
//! | [`recovery`], [`cc`] | RFC 9002 loss detection, RTT, ACK tracking; congestion control and pacing |
//! | [`qlog`] | typed connection events, the subscriber hook, qlog JSON-SEQ serialisation |
//! | [`fuzz`] | seeded mutation fuzzing of the decoders and of live connections |
//!
//! ## Session resumption, 0-RTT and replay
//! Servers built with [`crypto::server_config`] send two single-use session tickets after
//! each handshake; clients built with [`crypto::client_config`] keep them in memory in
//! their rustls configuration, with the server's transport parameters (RFC 9000 §7.4.1),
//! and resume when they connect again with the same configuration. A client that resumes
//! with a ticket allowing early data may write streams and datagrams before the
//! handshake ends; they go out in 0-RTT packets (see [`connection::ZeroRttStatus`]). If
//! the server rejects them they are resent in 1-RTT packets, so data arrives exactly
//! once either way.
//!
//! 0-RTT data is not protected against replay by TLS (RFC 9001 §9.2, RFC 8446 §8).
//! What Quiver does: a server accepts early data only from a ticket issued by **this**
//! rustls `ServerConfig` instance (the session store is in memory, stateful, never
//! shared between processes), and a ticket can be used **once** (it is removed from the
//! store when used, RFC 8446 §8.1), within its age tolerance. A replayed ClientHello
//! therefore finds no session and its early data is rejected, as long as the replay
//! reaches the same server instance; a deployment running several server instances
//! behind one name gives each its own store, so a ticket is usable only where it was
//! issued. What Quiver leaves to the application: deciding which requests are safe to
//! act on before the handshake completes (idempotence). A server turns 0-RTT off with
//! [`config::ServerConfig::zero_rtt`] (early data rejected, sessions still resumed) or by
//! setting the rustls `max_early_data_size` to 0 (tickets no longer allow early data).
//!
//! ## Key update and AEAD limits
//! Peer key updates are followed; [`connection::Connection::initiate_key_update`] starts
//! one (RFC 9001 §6), and a connection starts one by itself after 3/4 of the AEAD
//! confidentiality limit ([`config::TransportConfig::confidentiality_limit`]). An update
//! waits until the handshake is confirmed and a packet of the current key phase was
//! acknowledged; the previous receive key is kept for three PTOs for reordered packets.
//! Packets failing authentication are counted across all keys; beyond the integrity
//! limit ([`config::TransportConfig::integrity_limit`]) the connection closes with
//! AEAD_LIMIT_REACHED (RFC 9001 §6.6). A peer that updates keys before we acknowledged a
//! packet it sent in the current phase (twice in a row, or on its first 1-RTT packets)
//! is closed with KEY_UPDATE_ERROR (RFC 9001 §6.1, §6.2).
//!
//! ## Fuzzing
//! [`fuzz`] is a seeded mutation fuzzer on the stable toolchain for every wire decoder
//! and for live connections (payloads sealed with the real Initial, Handshake and 1-RTT
//! keys). The test suite runs a short fixed-seed pass (`tests/fuzz.rs`);
//! `quiver bench fuzz --target all --secs N` runs it for N seconds per target.
//!
//! ## Migration and path validation
//! PATH_CHALLENGE/PATH_RESPONSE validate a path (RFC 9000 §8.2,
//! [`connection::PathState`]); a server follows a peer's new address (NAT rebinding)
//! only on the packet with the largest number, limits the unvalidated address to 3×
//! what it received, and reverts to the last validated path when validation fails; a
//! client migrates with [`connection::Connection::migrate`] (refused when the peer sent
//! `disable_active_migration`) and moves to a server's preferred address
//! ([`config::ServerConfig::preferred_address`]) once validated. Details and choices are
//! in the `connection::paths` module source.
//!
//! ## Address validation
//! A server validates client addresses with Retry ([`token::ValidationConfig::retry`])
//! and NEW_TOKEN tokens (encrypted, address-bound, expiring; see [`token`]); until then it
//! sends at most 3× what it received. Clients follow one Retry, check
//! `original_destination_connection_id` / `retry_source_connection_id`, and keep
//! NEW_TOKEN tokens in [`config::ClientConfig::token_store`] for the next connection.
//!
//! ## What is not implemented yet
//! The multipath extension in the connection: its wire codec exists (the draft-21
//! frames in [`frame`], `initial_max_path_id` in [`transport_params`]), but a
//! connection neither offers nor accepts it yet, so a peer's multipath frames close the
//! connection as unknown frames (FRAME_ENCODING_ERROR). A client following a compatible version upgrade
//! (RFC 9368: a Quiver server upgrades clients from v1 to v2, a Quiver client keeps the
//! version it started with, because rustls fixes the key labels when the session is
//! created). Path-MTU discovery
//! is implemented: see [`config::MtuDiscoveryConfig`].

#![forbid(unsafe_code)]

pub mod cc;
pub mod cid;
pub mod coding;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod fuzz;
pub mod packet;
pub mod qlog;
pub mod range_set;
pub mod recovery;
pub mod sched;
pub mod shared;
pub mod streams;
pub mod token;
pub mod transport_params;
pub mod version;

pub use cid::{CidGeneratorFactory, ConnectionId, ConnectionIdGenerator, RandomCidGenerator};
pub use coding::VarInt;
pub use endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
pub use error::{TransportError, TransportErrorCode};
pub use shared::{Dir, EcnCodepoint, Epoch, PathId, PathStatus, Side, SpaceId, StreamId};
