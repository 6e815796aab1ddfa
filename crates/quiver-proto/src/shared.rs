//! Small types shared across the crate: endpoint side, stream direction, stream IDs,
//! encryption levels (epochs) and packet-number space identifiers.

use crate::coding::VarInt;
use std::fmt;

/// Which end of a connection we are.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum Side {
    /// The endpoint that initiated the connection.
    Client = 0,
    /// The endpoint that accepted the connection.
    Server = 1,
}

impl Side {
    /// Whether this is the client side.
    pub fn is_client(self) -> bool {
        self == Side::Client
    }
    /// Whether this is the server side.
    pub fn is_server(self) -> bool {
        self == Side::Server
    }
}

impl std::ops::Not for Side {
    type Output = Side;
    fn not(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Stream direction.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum Dir {
    /// Data flows both ways.
    Bi = 0,
    /// Data flows only from the initiator.
    Uni = 1,
}

/// A stream identifier (RFC 9000 §2.1): the two low bits give initiator and direction.
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The `index`-th stream of the given initiator and direction.
    pub fn new(initiator: Side, dir: Dir, index: u64) -> Self {
        StreamId((index << 2) | ((dir as u64) << 1) | initiator as u64)
    }
    /// Which side opened the stream.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }
    /// The stream's direction.
    pub fn dir(self) -> Dir {
        if self.0 & 2 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }
    /// Index among streams of the same initiator and direction.
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.initiator().is_client() {
            "c"
        } else {
            "s"
        };
        let dir = if self.dir() == Dir::Bi { "bi" } else { "uni" };
        write!(f, "{}({who}{dir}#{})", self.0, self.index())
    }
}
impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
impl From<StreamId> for VarInt {
    fn from(x: StreamId) -> VarInt {
        VarInt::from_u64_clamped(x.0)
    }
}
impl From<VarInt> for StreamId {
    fn from(v: VarInt) -> StreamId {
        StreamId(v.into_inner())
    }
}

/// Encryption level / epoch (RFC 9001 §4). 0-RTT shares the Data packet-number space.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum Epoch {
    /// Initial keys, derived from the client's first DCID.
    Initial = 0,
    /// Handshake keys.
    Handshake = 1,
    /// 1-RTT (and 0-RTT) application data.
    Data = 2,
}

impl Epoch {
    /// All epochs in order.
    pub const ALL: [Epoch; 3] = [Epoch::Initial, Epoch::Handshake, Epoch::Data];
    /// Array index.
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// Identifier of a network path. Path 0 is the path the handshake ran on.
///
/// The application epoch has one packet-number space per path (draft-ietf-quic-multipath);
/// QDSR gives each real server its own path id so that each sends from its own space.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Default)]
pub struct PathId(pub u32);

impl PathId {
    /// The initial path.
    pub const ZERO: PathId = PathId(0);
    /// The largest path ID (2^32 - 1): the per-path AEAD nonce has room for 32 bits of
    /// path ID (draft-ietf-quic-multipath-21 §2.4).
    pub const MAX: PathId = PathId(u32::MAX);

    /// The path ID of a wire value, `None` above 2^32 - 1.
    pub fn from_wire(v: u64) -> Option<PathId> {
        u32::try_from(v).ok().map(PathId)
    }
}

impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "path {}", self.0)
    }
}

/// The status an endpoint announces for a path with PATH_STATUS_AVAILABLE /
/// PATH_STATUS_BACKUP (draft-ietf-quic-multipath-21 §3.3, §4.3).
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash, Default)]
pub enum PathStatus {
    /// The path may be used for sending (the default of every new path).
    #[default]
    Available,
    /// The sender prefers the path not to be used while an available path works.
    Backup,
}

/// Identifies one packet-number space: the epoch plus, in the Data epoch, the path.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum SpaceId {
    /// Initial packets.
    Initial,
    /// Handshake packets.
    Handshake,
    /// 0-RTT and 1-RTT packets on a path.
    Data(PathId),
}

impl SpaceId {
    /// The epoch this space belongs to.
    pub fn epoch(self) -> Epoch {
        match self {
            SpaceId::Initial => Epoch::Initial,
            SpaceId::Handshake => Epoch::Handshake,
            SpaceId::Data(_) => Epoch::Data,
        }
    }
}

/// Explicit Congestion Notification codepoint of an IP packet (RFC 3168).
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum EcnCodepoint {
    /// ECT(0).
    Ect0 = 0b10,
    /// ECT(1).
    Ect1 = 0b01,
    /// Congestion experienced.
    Ce = 0b11,
}

impl EcnCodepoint {
    /// From the two ECN bits of the IP header; `None` for Not-ECT.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0b11 {
            0b10 => Some(EcnCodepoint::Ect0),
            0b01 => Some(EcnCodepoint::Ect1),
            0b11 => Some(EcnCodepoint::Ce),
            _ => None,
        }
    }

    /// The two ECN bits of this codepoint.
    pub fn bits(self) -> u8 {
        self as u8
    }
}
