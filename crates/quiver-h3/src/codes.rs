//! HTTP/3 error codes used by this crate (RFC 9114 §8.1, RFC 9297 §2.1).

/// No error.
pub const H3_NO_ERROR: u32 = 0x100;
/// A stream ID was used wrongly (also RFC 9218 §7.1 for PRIORITY_UPDATE).
pub const H3_ID_ERROR: u32 = 0x108;
/// The request was not processed; safe to retry.
pub const H3_REQUEST_REJECTED: u32 = 0x10b;
/// A malformed HTTP Datagram (RFC 9297 §2.1).
pub const H3_DATAGRAM_ERROR: u32 = 0x33;
