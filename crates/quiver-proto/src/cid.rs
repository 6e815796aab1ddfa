//! Connection IDs (RFC 9000 §5.1) and the pluggable CID generator.

use rand::RngCore;
use std::fmt;

/// Maximum length of a connection ID in QUIC v1/v2.
pub const MAX_CID_SIZE: usize = 20;
/// Length of a stateless reset token.
pub const RESET_TOKEN_SIZE: usize = 16;

/// A QUIC connection ID of 0..=20 bytes, stored inline.
#[derive(Clone, Copy, Eq, PartialEq, Hash, Ord, PartialOrd)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_SIZE],
}

impl ConnectionId {
    /// Build from a slice. Returns `None` when longer than 20 bytes.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_CID_SIZE {
            return None;
        }
        let mut res = ConnectionId {
            len: bytes.len() as u8,
            bytes: [0; MAX_CID_SIZE],
        };
        res.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(res)
    }

    /// The empty connection ID.
    pub const EMPTY: ConnectionId = ConnectionId {
        len: 0,
        bytes: [0; MAX_CID_SIZE],
    };

    /// A random CID of `len` bytes (clamped to 20).
    pub fn random<R: RngCore + ?Sized>(rng: &mut R, len: usize) -> Self {
        let len = len.min(MAX_CID_SIZE);
        let mut res = ConnectionId {
            len: len as u8,
            bytes: [0; MAX_CID_SIZE],
        };
        rng.fill_bytes(&mut res.bytes[..len]);
        res
    }

    /// Length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The ID's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A stateless reset token (RFC 9000 §10.3).
#[derive(Clone, Copy, Eq, PartialEq, Hash, Debug, Default)]
pub struct ResetToken(pub [u8; RESET_TOKEN_SIZE]);

impl ResetToken {
    /// Whether `bytes` equal this token, compared in constant time (RFC 9000 §10.3.1:
    /// the comparison must not reveal how many leading bytes matched).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        if bytes.len() != RESET_TOKEN_SIZE {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(bytes)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// Extension point: how an endpoint mints the connection IDs it issues.
///
/// Load balancers (QDSR) and relays encode routing information in CIDs; implement this
/// trait and set it on the endpoint config to do so. All CIDs minted by one generator
/// must have the same length, since short headers do not carry the DCID length.
pub trait ConnectionIdGenerator: Send + Sync {
    /// Mint a fresh connection ID.
    fn generate(&mut self, rng: &mut dyn RngCore) -> ConnectionId;
    /// Length of the CIDs this generator mints.
    fn cid_len(&self) -> usize;
}

/// Builds the [`ConnectionIdGenerator`] of an endpoint (the CID hook; set in
/// [`crate::config::EndpointConfig::cid_generator`]). A load balancer that routes by CID
/// plugs its own encoding in here.
pub trait CidGeneratorFactory: Send + Sync + std::fmt::Debug {
    /// A fresh generator for a new endpoint.
    fn build(&self) -> Box<dyn ConnectionIdGenerator>;
}

/// Uniformly random CIDs of a fixed length (8 bytes by default).
#[derive(Debug, Clone, Copy)]
pub struct RandomCidGenerator {
    len: usize,
}

impl RandomCidGenerator {
    /// A generator for CIDs of `len` bytes (clamped to 0..=20).
    pub fn new(len: usize) -> Self {
        Self {
            len: len.min(MAX_CID_SIZE),
        }
    }
}

impl Default for RandomCidGenerator {
    fn default() -> Self {
        Self::new(8)
    }
}

impl CidGeneratorFactory for RandomCidGenerator {
    fn build(&self) -> Box<dyn ConnectionIdGenerator> {
        Box::new(*self)
    }
}

impl ConnectionIdGenerator for RandomCidGenerator {
    fn generate(&mut self, rng: &mut dyn RngCore) -> ConnectionId {
        ConnectionId::random(rng, self.len)
    }
    fn cid_len(&self) -> usize {
        self.len
    }
}
