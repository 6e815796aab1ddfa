//! A **deterministic** rustls crypto provider and clock, for tests and simulations only.
//!
//! Enabled by the `deterministic-crypto` cargo feature of `quiver-proto` (tests turn it on
//! through a dev-dependency; nothing in a normal build links it).
//!
//! A TLS handshake draws randomness in three places and reads the wall clock in one:
//! - rustls' own randomness (client/server random, session IDs, ticket nonces and age
//!   obfuscation) comes from the provider's `secure_random`;
//! - the ephemeral key-exchange keys come from the key-exchange group (ring's groups use
//!   the operating system's generator directly, bypassing `secure_random`);
//! - signatures: Ed25519 is deterministic by construction; ECDSA and RSA-PSS signing in
//!   ring draw from the operating system, so a reproducible run needs an **Ed25519**
//!   certificate (see [`ed25519_pkcs8`] for a key from a seed);
//! - the clock: ticket issue times and ages, and certificate validity, use the config's
//!   `TimeProvider`.
//!
//! [`Deterministic::new`]`(seed)` replaces all of these: a ChaCha-based [`StdRng`] seeded
//! with `seed` feeds `secure_random`, an X25519 group (x25519-dalek, secret scalars drawn
//! from the same generator) replaces ring's key exchange, and a [`VirtualTime`] clock
//! answers the time (fixed at [`VirtualTime::DEFAULT_START`] until the caller moves it,
//! e.g. to follow a simulator's virtual clock). With the endpoint's own
//! `EndpointConfig::rng_seed` set as well, a simulated handshake — tickets, tokens and
//! resumption included — replays bit for bit from its seeds.
//!
//! # Not for production
//! Everything "secret" here is a function of a small seed. The generator also lives as
//! long as the program: rustls wants `&'static` randomness and key-exchange objects, so
//! each [`Deterministic`] leaks two small allocations. Both are fine in a test process and
//! wrong anywhere else.
//!
//! The output is reproducible for a given seed with the same versions of `rand`,
//! `rustls` and `x25519-dalek` (a dependency update may change the bytes, not the
//! property).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, KeyLog, NamedGroup, RootCertStore, ServerConfig};

use super::config::{
    client_config_from, insecure_client_config_from, restrict, server_config_from,
};
use super::{CipherSuiteSelection, CryptoError};

type SharedRng = Arc<Mutex<StdRng>>;

fn fill(rng: &SharedRng, buf: &mut [u8]) {
    // A panic while holding the lock cannot leave a half-updated generator that matters
    // for reproducibility more than the panic itself; keep going.
    rng.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .fill_bytes(buf);
}

/// rustls' randomness drawn from a seeded generator.
struct SeededRandom(SharedRng);

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill(&self.0, buf);
        Ok(())
    }
}

/// X25519 (RFC 7748) whose ephemeral secrets come from a seeded generator.
struct SeededX25519(SharedRng);

impl fmt::Debug for SeededX25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededX25519")
    }
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut scalar = [0u8; 32];
        fill(&self.0, &mut scalar);
        let secret = x25519_dalek::StaticSecret::from(scalar);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| rustls::PeerMisbehaved::InvalidKeyShare)?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // RFC 8446 §7.4.2 / RFC 7748 §6.1: an all-zero result means a low-order point.
        if !shared.was_contributory() {
            return Err(rustls::PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// A wall clock for rustls that moves only when told to: seconds since the Unix epoch,
/// shared between the configurations (and threads) holding it.
#[derive(Debug)]
pub struct VirtualTime {
    secs: AtomicU64,
}

impl VirtualTime {
    /// Where a new clock starts: 2026-01-01T00:00:00Z.
    pub const DEFAULT_START: Duration = Duration::from_secs(1_767_225_600);

    /// A clock showing `since_epoch`.
    pub fn new(since_epoch: Duration) -> Self {
        Self {
            secs: AtomicU64::new(since_epoch.as_secs()),
        }
    }

    /// Set the time (e.g. to the simulator's start plus its elapsed virtual time).
    pub fn set(&self, since_epoch: Duration) {
        self.secs.store(since_epoch.as_secs(), Ordering::Relaxed);
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::Relaxed);
    }

    /// The time shown, as seconds since the Unix epoch.
    pub fn now(&self) -> Duration {
        Duration::from_secs(self.secs.load(Ordering::Relaxed))
    }
}

impl TimeProvider for VirtualTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(self.now()))
    }
}

/// A seeded crypto provider and a virtual clock, and the QUIC configuration builders of
/// [`super`] on top of them. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Deterministic {
    provider: CryptoProvider,
    time: Arc<VirtualTime>,
}

impl Deterministic {
    /// ring's provider (cipher suites, signature algorithms, key loading) with randomness
    /// and X25519 key exchange drawn from a generator seeded with `seed`, and a clock at
    /// [`VirtualTime::DEFAULT_START`].
    pub fn new(seed: u64) -> Self {
        let rng: SharedRng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        // rustls holds these as `&'static dyn`: leak one small object each (test-only).
        let random: &'static SeededRandom = Box::leak(Box::new(SeededRandom(rng.clone())));
        let kx: &'static SeededX25519 = Box::leak(Box::new(SeededX25519(rng)));
        let provider = CryptoProvider {
            kx_groups: vec![kx],
            secure_random: random,
            ..rustls::crypto::ring::default_provider()
        };
        Self {
            provider,
            time: Arc::new(VirtualTime::new(VirtualTime::DEFAULT_START)),
        }
    }

    /// The clock every configuration built from `self` reads.
    pub fn time(&self) -> &Arc<VirtualTime> {
        &self.time
    }

    /// The provider restricted to QUIC's TLS 1.3 suites allowed by `suites` (for building
    /// configurations of other QUIC stacks, e.g. quinn, on the same seeded randomness).
    pub fn provider(&self, suites: CipherSuiteSelection) -> Arc<CryptoProvider> {
        restrict(self.provider.clone(), suites)
    }

    /// Like [`super::server_config`], on the seeded provider and the virtual clock.
    pub fn server_config(
        &self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        alpn: &[&[u8]],
        suites: CipherSuiteSelection,
        key_log: Option<Arc<dyn KeyLog>>,
    ) -> Result<ServerConfig, CryptoError> {
        let builder = ServerConfig::builder_with_details(self.provider(suites), self.time.clone());
        server_config_from(builder, cert_chain, key, alpn, key_log)
    }

    /// Like [`super::client_config`], on the seeded provider and the virtual clock.
    pub fn client_config(
        &self,
        roots: RootCertStore,
        alpn: &[&[u8]],
        suites: CipherSuiteSelection,
        key_log: Option<Arc<dyn KeyLog>>,
    ) -> Result<ClientConfig, CryptoError> {
        let builder = ClientConfig::builder_with_details(self.provider(suites), self.time.clone());
        client_config_from(builder, roots, alpn, key_log)
    }

    /// Like [`super::insecure_client_config`] (accepts any server certificate), on the
    /// seeded provider and the virtual clock.
    pub fn insecure_client_config(
        &self,
        alpn: &[&[u8]],
        suites: CipherSuiteSelection,
        key_log: Option<Arc<dyn KeyLog>>,
    ) -> Result<ClientConfig, CryptoError> {
        let builder = ClientConfig::builder_with_details(self.provider(suites), self.time.clone());
        insecure_client_config_from(builder, alpn, key_log)
    }
}

/// An Ed25519 private key derived from `seed`, as PKCS#8 v1 DER (RFC 8410 §7), for a
/// certificate whose bytes and signatures are the same on every run.
pub fn ed25519_pkcs8(seed: u64) -> Vec<u8> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut key = [0u8; 32];
    StdRng::seed_from_u64(seed).fill_bytes(&mut key);
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(&key);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let draw = |seed| {
            let d = Deterministic::new(seed);
            let p = d.provider(CipherSuiteSelection::All);
            let mut a = [0u8; 48];
            p.secure_random.fill(&mut a).unwrap();
            let kx = p.kx_groups[0].start().unwrap();
            (a, kx.pub_key().to_vec())
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1).0, draw(2).0);
        assert_ne!(draw(1).1, draw(2).1);
    }

    #[test]
    fn x25519_agrees_and_rejects_bad_shares() {
        let a = Deterministic::new(1).provider(CipherSuiteSelection::All);
        let b = Deterministic::new(2).provider(CipherSuiteSelection::All);
        let ka = a.kx_groups[0].start().unwrap();
        let kb = b.kx_groups[0].start().unwrap();
        let pa = ka.pub_key().to_vec();
        let pb = kb.pub_key().to_vec();
        let sa = ka.complete(&pb).unwrap();
        let sb = kb.complete(&pa).unwrap();
        assert_eq!(sa.secret_bytes(), sb.secret_bytes());
        // Wrong length and a low-order point (all zeros) are refused, not panicked on.
        let k = a.kx_groups[0].start().unwrap();
        assert!(k.complete(&[1, 2, 3]).is_err());
        let k = a.kx_groups[0].start().unwrap();
        assert!(k.complete(&[0u8; 32]).is_err());
    }

    #[test]
    fn virtual_time_moves_only_when_told() {
        let d = Deterministic::new(0);
        let t0 = d.time().current_time().unwrap();
        assert_eq!(t0, d.time().current_time().unwrap());
        d.time().advance(Duration::from_secs(10));
        assert_eq!(
            d.time().current_time().unwrap().as_secs(),
            t0.as_secs() + 10
        );
    }

    #[test]
    fn ed25519_key_loads_and_is_stable() {
        let der = ed25519_pkcs8(5);
        assert_eq!(der, ed25519_pkcs8(5));
        assert_ne!(der, ed25519_pkcs8(6));
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(der);
        rustls::crypto::ring::sign::any_eddsa_type(&key).expect("valid Ed25519 PKCS#8");
    }
}
