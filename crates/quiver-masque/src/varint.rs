//! QUIC variable-length integers on plain byte slices, with "need more bytes" kept apart
//! from "malformed" (a varint cannot be malformed, only incomplete).

use quiver_proto::VarInt;

/// Decode a varint at the start of `buf`: `Some((value, length))`, or `None` if `buf`
/// ends inside it.
pub(crate) fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let mut r = buf;
    let v = VarInt::decode(&mut r).ok()?;
    Some((v.into_inner(), buf.len() - r.len()))
}

/// Append `x` (which must be below 2^62; larger values are clamped) to `out`.
pub(crate) fn encode(x: u64, out: &mut Vec<u8>) {
    VarInt::from_u64_clamped(x).encode(out);
}

/// The encoded size of `x`.
pub(crate) fn size(x: u64) -> usize {
    quiver_proto::coding::size_of_varint(x)
}
