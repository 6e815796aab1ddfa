//! Address validation (RFC 9000 §8.1): Retry tokens, NEW_TOKEN tokens and the client's
//! token store.
//!
//! A server proves that a client owns its address with a token the client can only have
//! received at that address:
//! - a **Retry token** answers an Initial without a valid token when
//!   [`ValidationConfig::retry`] is set; it is valid for a few seconds
//!   ([`ValidationConfig::retry_token_lifetime`], 15 s by default), from the same IP
//!   address *and port*, and only for the Initial whose destination CID is the Retry's
//!   source CID. It carries the client's original destination CID, which the server
//!   echoes in `original_destination_connection_id` (RFC 9000 §7.3);
//! - a **NEW_TOKEN token** is sent after the handshake is confirmed
//!   ([`ValidationConfig::new_tokens`]) for the client's *next* connection; it is valid
//!   for a day by default ([`ValidationConfig::new_token_lifetime`]) from the same IP
//!   address (any port: a new connection usually comes from a new port).
//!
//! A server that receives a valid token treats the address as validated: no Retry, and
//! no 3× anti-amplification limit for that connection.
//!
//! ## Format
//! `kind (1) | nonce (12) | AES-256-GCM(plaintext) | tag (16)`. The key is derived with
//! HKDF-SHA256 from a 32-byte server secret ([`ValidationConfig::key`], or a random one
//! per endpoint). The kind byte, the client's IP address and, for Retry tokens, its port
//! are authenticated as associated data, so a token presented from another address fails
//! to open. The plaintext holds the expiry time and, for Retry tokens, the original
//! destination CID and the Retry's source CID.
//!
//! Times are milliseconds on the issuing endpoint's own clock (counted from the first
//! `now` it was given): the core has no wall clock. A token is therefore valid only at
//! the endpoint that issued it, or at a shard of the same server whose clock started
//! within a few milliseconds (the `quiver` runtime's sharded endpoints).
//!
//! ## Invalid tokens (RFC 9000 §8.1.3)
//! The kind byte tells the server which kind a token claims to be. An Initial with a
//! Retry token that does not open, is expired, was issued to another address or for
//! another connection ID is answered with a CONNECTION_CLOSE of `INVALID_TOKEN`: the
//! client will not accept a second Retry, so waiting would only make it time out. A
//! NEW_TOKEN token that fails is ignored (the RFC's "SHOULD proceed as if the client did
//! not have a validated address"): the connection starts unvalidated, with a Retry if
//! the server requires one. A token of unknown kind is ignored the same way.
//!
//! There is no replay protection beyond the address binding and the expiry: a NEW_TOKEN
//! token can be used again from the same IP address until it expires. The client side
//! uses each token once ([`TokenStore::take`]).

use crate::cid::{ConnectionId, MAX_CID_SIZE};
use bytes::Bytes;
use ring::aead;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

/// Kind byte of a Retry token.
const RETRY_KIND: u8 = 0x52;
/// Kind byte of a NEW_TOKEN token.
const NEW_TOKEN_KIND: u8 = 0x4e;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a token secret ([`ValidationConfig::key`]).
pub const TOKEN_KEY_LEN: usize = 32;

/// Server-side address-validation settings ([`crate::config::ServerConfig::validation`]).
#[derive(Clone)]
pub struct ValidationConfig {
    /// Answer every Initial that carries no valid token with a Retry (RFC 9000 §8.1.2),
    /// so that no connection state is created for an unvalidated address. Off by
    /// default: the 3× amplification limit protects others, Retry costs a round trip.
    pub retry: bool,
    /// How long a Retry token stays valid. Default 15 s.
    pub retry_token_lifetime: Duration,
    /// How long a NEW_TOKEN token stays valid. Default 24 h.
    pub new_token_lifetime: Duration,
    /// NEW_TOKEN frames sent once the handshake is confirmed (0 disables). Default 1.
    pub new_tokens: u32,
    /// Secret the token key is derived from. `None`: each endpoint draws its own from
    /// its random source, so tokens are valid only at that endpoint. Servers that run
    /// several endpoints for one address (shards, a cluster) must share a secret.
    pub key: Option<[u8; TOKEN_KEY_LEN]>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            retry: false,
            retry_token_lifetime: Duration::from_secs(15),
            new_token_lifetime: Duration::from_secs(24 * 3600),
            new_tokens: 1,
            key: None,
        }
    }
}

impl std::fmt::Debug for ValidationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidationConfig")
            .field("retry", &self.retry)
            .field("retry_token_lifetime", &self.retry_token_lifetime)
            .field("new_token_lifetime", &self.new_token_lifetime)
            .field("new_tokens", &self.new_tokens)
            .field("key", &self.key.map(|_| "<secret>"))
            .finish()
    }
}

/// A fresh random token secret from the operating system's random source (for servers
/// whose endpoints must share one, see [`ValidationConfig::key`]).
pub fn random_key() -> [u8; TOKEN_KEY_LEN] {
    use rand::RngCore;
    let mut k = [0u8; TOKEN_KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// Which kind a token claims to be (its unauthenticated first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Issued in a Retry packet.
    Retry,
    /// Issued in a NEW_TOKEN frame.
    NewToken,
}

impl TokenKind {
    /// The kind a token claims, `None` for an empty token or an unknown kind byte.
    pub fn of(token: &[u8]) -> Option<Self> {
        match token.first() {
            Some(&RETRY_KIND) => Some(TokenKind::Retry),
            Some(&NEW_TOKEN_KIND) => Some(TokenKind::NewToken),
            _ => None,
        }
    }

    fn byte(self) -> u8 {
        match self {
            TokenKind::Retry => RETRY_KIND,
            TokenKind::NewToken => NEW_TOKEN_KIND,
        }
    }
}

/// Why a token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of the expected kind, or too short.
    #[error("malformed token")]
    Malformed,
    /// Authentication failed: another key, another client address, or altered bytes.
    #[error("token does not authenticate")]
    Unauthentic,
    /// The token's lifetime is over.
    #[error("token expired")]
    Expired,
    /// A Retry token presented in an Initial with another destination CID than the
    /// Retry's source CID.
    #[error("token issued for another connection ID")]
    WrongConnectionId,
}

/// The contents of a Retry token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryToken {
    /// Destination CID of the client's first Initial.
    pub orig_dst_cid: ConnectionId,
    /// Source CID of the Retry packet (the client's next destination CID).
    pub retry_src_cid: ConnectionId,
    /// Expiry, in milliseconds of the issuer's clock.
    pub expires: u64,
}

/// The AEAD key tokens are sealed with.
pub struct TokenKey {
    key: aead::LessSafeKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<secret>)")
    }
}

/// HKDF output length for the AES-256-GCM key.
struct KeyLen;
impl ring::hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl TokenKey {
    /// Derive the token key from a server secret.
    pub fn new(secret: &[u8; TOKEN_KEY_LEN]) -> Self {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"quiver address token");
        let prk = salt.extract(secret);
        let mut raw = [0u8; 32];
        // Expanding 32 bytes from SHA-256 cannot fail (the limit is 255 × 32).
        if let Ok(okm) = prk.expand(&[b"aes-256-gcm"], KeyLen) {
            let _ = okm.fill(&mut raw);
        }
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, &raw)
            .unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key is always valid"));
        Self {
            key: aead::LessSafeKey::new(key),
        }
    }

    /// Seal a Retry token for a client at `remote`. `nonce` must be unique per token
    /// (random).
    pub fn seal_retry(
        &self,
        nonce: [u8; NONCE_LEN],
        remote: SocketAddr,
        token: &RetryToken,
    ) -> Vec<u8> {
        let mut plain = Vec::with_capacity(8 + 2 + 2 * MAX_CID_SIZE);
        plain.extend_from_slice(&token.expires.to_be_bytes());
        plain.push(token.orig_dst_cid.len() as u8);
        plain.extend_from_slice(&token.orig_dst_cid);
        plain.push(token.retry_src_cid.len() as u8);
        plain.extend_from_slice(&token.retry_src_cid);
        self.seal(
            TokenKind::Retry,
            nonce,
            &aad(TokenKind::Retry, remote),
            plain,
        )
    }

    /// Open a Retry token presented by `remote` at time `now` (issuer's clock, ms) in an
    /// Initial whose destination CID is `dst_cid`.
    pub fn open_retry(
        &self,
        remote: SocketAddr,
        dst_cid: &ConnectionId,
        token: &[u8],
        now: u64,
    ) -> Result<RetryToken, TokenError> {
        let plain = self.open(TokenKind::Retry, &aad(TokenKind::Retry, remote), token)?;
        let mut r = plain.as_slice();
        let expires = take_u64(&mut r)?;
        let orig_dst_cid = take_cid(&mut r)?;
        let retry_src_cid = take_cid(&mut r)?;
        if !r.is_empty() {
            return Err(TokenError::Malformed);
        }
        if now >= expires {
            return Err(TokenError::Expired);
        }
        if retry_src_cid != *dst_cid {
            return Err(TokenError::WrongConnectionId);
        }
        Ok(RetryToken {
            orig_dst_cid,
            retry_src_cid,
            expires,
        })
    }

    /// Seal a NEW_TOKEN token for a client at `remote` (only its IP address is bound),
    /// valid until `expires` (issuer's clock, ms).
    pub fn seal_new_token(&self, nonce: [u8; NONCE_LEN], remote: IpAddr, expires: u64) -> Vec<u8> {
        let plain = expires.to_be_bytes().to_vec();
        self.seal(
            TokenKind::NewToken,
            nonce,
            &aad_ip(TokenKind::NewToken, remote),
            plain,
        )
    }

    /// Check a NEW_TOKEN token presented from `remote` at time `now` (issuer's clock,
    /// ms). Returns its expiry.
    pub fn open_new_token(
        &self,
        remote: IpAddr,
        token: &[u8],
        now: u64,
    ) -> Result<u64, TokenError> {
        let plain = self.open(
            TokenKind::NewToken,
            &aad_ip(TokenKind::NewToken, remote),
            token,
        )?;
        let mut r = plain.as_slice();
        let expires = take_u64(&mut r)?;
        if !r.is_empty() {
            return Err(TokenError::Malformed);
        }
        if now >= expires {
            return Err(TokenError::Expired);
        }
        Ok(expires)
    }

    fn seal(
        &self,
        kind: TokenKind,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        mut plain: Vec<u8>,
    ) -> Vec<u8> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut plain,
            )
            .unwrap_or_else(|_| unreachable!("token plaintexts are far below the AEAD limit"));
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(kind.byte());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Seal an arbitrary plaintext as a token of `kind` for `remote` (the fuzzer uses
    /// it to reach the plaintext parsers behind a valid seal).
    pub(crate) fn seal_plain(
        &self,
        kind: TokenKind,
        nonce: [u8; NONCE_LEN],
        remote: SocketAddr,
        plain: Vec<u8>,
    ) -> Vec<u8> {
        let aad = match kind {
            TokenKind::Retry => aad(kind, remote),
            TokenKind::NewToken => aad_ip(kind, remote.ip()),
        };
        self.seal(kind, nonce, &aad, plain)
    }

    fn open(&self, kind: TokenKind, aad: &[u8], token: &[u8]) -> Result<Vec<u8>, TokenError> {
        if TokenKind::of(token) != Some(kind) || token.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[1..1 + NONCE_LEN]);
        let mut in_out = token[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| TokenError::Unauthentic)?;
        Ok(plain.to_vec())
    }
}

/// Associated data: kind, IP address and port.
fn aad(kind: TokenKind, remote: SocketAddr) -> Vec<u8> {
    let mut a = aad_ip(kind, remote.ip());
    a.extend_from_slice(&remote.port().to_be_bytes());
    a
}

/// Associated data: kind and IP address (an IPv4-mapped IPv6 address counts as IPv4, so
/// a dual-stack socket and an IPv4 socket agree).
fn aad_ip(kind: TokenKind, ip: IpAddr) -> Vec<u8> {
    let mut a = vec![kind.byte()];
    match ip.to_canonical() {
        IpAddr::V4(v4) => a.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.extend_from_slice(&v6.octets()),
    }
    a
}

fn take_u64(r: &mut &[u8]) -> Result<u64, TokenError> {
    let (head, rest) = r.split_first_chunk::<8>().ok_or(TokenError::Malformed)?;
    *r = rest;
    Ok(u64::from_be_bytes(*head))
}

fn take_cid(r: &mut &[u8]) -> Result<ConnectionId, TokenError> {
    let (&len, rest) = r.split_first().ok_or(TokenError::Malformed)?;
    let len = usize::from(len);
    let bytes = rest.get(..len).ok_or(TokenError::Malformed)?;
    let cid = ConnectionId::new(bytes).ok_or(TokenError::Malformed)?;
    *r = &rest[len..];
    Ok(cid)
}

// ---------------------------------------------------------------------------------------
// Client side

/// Where a client keeps NEW_TOKEN tokens between connections
/// ([`crate::config::ClientConfig::token_store`]).
///
/// The connection calls [`insert`](Self::insert) for every NEW_TOKEN frame it receives,
/// and the endpoint calls [`take`](Self::take) when it starts a connection to the same
/// server name: the token goes into the Initial packets, so a server that issued it skips
/// Retry and the amplification limit. Implementations must be cheap: both run inside
/// the endpoint.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Keep `token`, received from `server_name`.
    fn insert(&self, server_name: &str, token: Bytes);
    /// Remove and return a token for `server_name` (RFC 9000 §8.1.3: a token is used for
    /// one connection attempt only).
    fn take(&self, server_name: &str) -> Option<Bytes>;
}

/// A bounded in-memory [`TokenStore`]: up to `per_server` tokens (newest used first) for
/// each of up to `max_servers` server names; the server whose tokens were stored
/// longest ago is forgotten first.
#[derive(Debug)]
pub struct TokenMemoryStore {
    max_servers: usize,
    per_server: usize,
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    /// Tokens per server, with the insertion counter of the last insert.
    servers: HashMap<String, (u64, VecDeque<Bytes>)>,
    counter: u64,
}

impl TokenMemoryStore {
    /// A store for `max_servers` server names with `per_server` tokens each.
    pub fn new(max_servers: usize, per_server: usize) -> Self {
        Self {
            max_servers: max_servers.max(1),
            per_server: per_server.max(1),
            inner: Mutex::default(),
        }
    }
}

impl Default for TokenMemoryStore {
    /// 256 servers, 2 tokens each.
    fn default() -> Self {
        Self::new(256, 2)
    }
}

impl TokenStore for TokenMemoryStore {
    fn insert(&self, server_name: &str, token: Bytes) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counter += 1;
        let stamp = inner.counter;
        if !inner.servers.contains_key(server_name) && inner.servers.len() >= self.max_servers {
            let oldest = inner
                .servers
                .iter()
                .min_by_key(|(_, (s, _))| *s)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.servers.remove(&k);
            }
        }
        let entry = inner
            .servers
            .entry(server_name.to_string())
            .or_insert_with(|| (stamp, VecDeque::new()));
        entry.0 = stamp;
        if entry.1.len() >= self.per_server {
            entry.1.pop_front();
        }
        entry.1.push_back(token);
    }

    fn take(&self, server_name: &str) -> Option<Bytes> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (_, tokens) = inner.servers.get_mut(server_name)?;
        let t = tokens.pop_back();
        if tokens.is_empty() {
            inner.servers.remove(server_name);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7u8; 32])
    }
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }
    fn cid(b: u8, len: usize) -> ConnectionId {
        ConnectionId::new(&vec![b; len]).unwrap()
    }

    #[test]
    fn retry_token_round_trip() {
        let t = RetryToken {
            orig_dst_cid: cid(1, 8),
            retry_src_cid: cid(2, 20),
            expires: 15_000,
        };
        let bytes = key().seal_retry([3; 12], addr(4433), &t);
        assert_eq!(TokenKind::of(&bytes), Some(TokenKind::Retry));
        assert_eq!(
            key().open_retry(addr(4433), &cid(2, 20), &bytes, 14_999),
            Ok(t)
        );
    }

    #[test]
    fn retry_token_rejections() {
        let t = RetryToken {
            orig_dst_cid: cid(1, 8),
            retry_src_cid: cid(2, 8),
            expires: 15_000,
        };
        let bytes = key().seal_retry([3; 12], addr(4433), &t);
        let k = key();
        // Expired at its expiry time.
        assert_eq!(
            k.open_retry(addr(4433), &cid(2, 8), &bytes, 15_000),
            Err(TokenError::Expired)
        );
        // Another port, another IP.
        assert_eq!(
            k.open_retry(addr(4434), &cid(2, 8), &bytes, 0),
            Err(TokenError::Unauthentic)
        );
        let other_ip = SocketAddr::from(([192, 0, 2, 2], 4433));
        assert_eq!(
            k.open_retry(other_ip, &cid(2, 8), &bytes, 0),
            Err(TokenError::Unauthentic)
        );
        // Another destination CID.
        assert_eq!(
            k.open_retry(addr(4433), &cid(9, 8), &bytes, 0),
            Err(TokenError::WrongConnectionId)
        );
        // Another key.
        assert_eq!(
            TokenKey::new(&[8u8; 32]).open_retry(addr(4433), &cid(2, 8), &bytes, 0),
            Err(TokenError::Unauthentic)
        );
        // A flipped bit anywhere.
        for i in 1..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(
                k.open_retry(addr(4433), &cid(2, 8), &b, 0),
                Err(TokenError::Unauthentic)
            );
        }
        // A NEW_TOKEN token is not a Retry token.
        let nt = k.seal_new_token([4; 12], addr(4433).ip(), 100);
        assert_eq!(
            k.open_retry(addr(4433), &cid(2, 8), &nt, 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn new_token_binds_ip_not_port() {
        let k = key();
        let bytes = k.seal_new_token([5; 12], addr(1).ip(), 1_000);
        assert_eq!(TokenKind::of(&bytes), Some(TokenKind::NewToken));
        assert_eq!(k.open_new_token(addr(2).ip(), &bytes, 999), Ok(1_000));
        assert_eq!(
            k.open_new_token(addr(2).ip(), &bytes, 1_000),
            Err(TokenError::Expired)
        );
        let other: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            k.open_new_token(other, &bytes, 0),
            Err(TokenError::Unauthentic)
        );
        // IPv4-mapped IPv6 is the same client as plain IPv4.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(k.open_new_token(mapped, &bytes, 0), Ok(1_000));
    }

    #[test]
    fn memory_store_is_bounded_and_single_use() {
        let s = TokenMemoryStore::new(2, 2);
        s.insert("a", Bytes::from_static(b"a1"));
        s.insert("a", Bytes::from_static(b"a2"));
        s.insert("a", Bytes::from_static(b"a3")); // a1 dropped
        s.insert("b", Bytes::from_static(b"b1"));
        s.insert("c", Bytes::from_static(b"c1")); // "a" stored longest ago: forgotten
        assert_eq!(s.take("a"), None);
        assert_eq!(s.take("b").as_deref(), Some(&b"b1"[..]));
        assert_eq!(s.take("b"), None);
        assert_eq!(s.take("c").as_deref(), Some(&b"c1"[..]));
        let s = TokenMemoryStore::new(2, 2);
        s.insert("a", Bytes::from_static(b"a1"));
        s.insert("a", Bytes::from_static(b"a2"));
        s.insert("a", Bytes::from_static(b"a3"));
        assert_eq!(s.take("a").as_deref(), Some(&b"a3"[..]));
        assert_eq!(s.take("a").as_deref(), Some(&b"a2"[..]));
        assert_eq!(s.take("a"), None);
    }

    fn any_cid() -> impl Strategy<Value = ConnectionId> {
        proptest::collection::vec(any::<u8>(), 0..=MAX_CID_SIZE)
            .prop_map(|v| ConnectionId::new(&v).unwrap())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                       port in any::<u16>(), now in any::<u64>()) {
            let k = key();
            let _ = TokenKind::of(&bytes);
            let _ = k.open_retry(addr(port), &ConnectionId::EMPTY, &bytes, now);
            let _ = k.open_new_token(addr(port).ip(), &bytes, now);
            // With a valid kind byte too.
            let mut b = bytes.clone();
            b.insert(0, RETRY_KIND);
            prop_assert!(k.open_retry(addr(port), &ConnectionId::EMPTY, &b, now).is_err());
            b[0] = NEW_TOKEN_KIND;
            prop_assert!(k.open_new_token(addr(port).ip(), &b, now).is_err());
        }

        #[test]
        fn retry_round_trip(odcid in any_cid(), rscid in any_cid(), expires in 1u64.., nonce in any::<[u8; 12]>(),
                            port in any::<u16>(), ip in any::<[u8; 16]>()) {
            let remote = SocketAddr::from((ip, port));
            let t = RetryToken { orig_dst_cid: odcid, retry_src_cid: rscid, expires };
            let bytes = key().seal_retry(nonce, remote, &t);
            prop_assert_eq!(key().open_retry(remote, &rscid, &bytes, expires - 1), Ok(t));
            prop_assert_eq!(key().open_retry(remote, &rscid, &bytes, expires), Err(TokenError::Expired));
            let other = SocketAddr::from((ip, port.wrapping_add(1)));
            prop_assert_eq!(key().open_retry(other, &rscid, &bytes, 0), Err(TokenError::Unauthentic));
        }

        #[test]
        fn new_token_round_trip(expires in 1u64.., nonce in any::<[u8; 12]>(), ip in any::<[u8; 4]>()) {
            let ip = IpAddr::from(ip);
            let bytes = key().seal_new_token(nonce, ip, expires);
            prop_assert_eq!(key().open_new_token(ip, &bytes, expires - 1), Ok(expires));
            prop_assert_eq!(key().open_new_token(ip, &bytes, expires), Err(TokenError::Expired));
            let other = match ip { IpAddr::V4(v) => IpAddr::from(u32::from(v).wrapping_add(1).to_be_bytes()), v6 => v6 };
            prop_assert_eq!(key().open_new_token(other, &bytes, 0), Err(TokenError::Unauthentic));
        }
    }
}
