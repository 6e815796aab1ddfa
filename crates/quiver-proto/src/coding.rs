//! Wire coding primitives: QUIC variable-length integers (RFC 9000 §16) and
//! bounds-checked readers/writers used by every codec in the crate.
//!
//! Nothing here panics on untrusted input: every read returns
//! [`UnexpectedEnd`] when the buffer is too short.

use bytes::{Buf, BufMut};
use std::fmt;

/// The buffer ended before a complete value could be read.
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("unexpected end of buffer")]
pub struct UnexpectedEnd;

/// Result of a decode step.
pub type Result<T> = std::result::Result<T, UnexpectedEnd>;

/// A QUIC variable-length integer: an unsigned value below 2^62.
#[derive(Default, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct VarInt(u64);

/// A value was too large to be encoded as a [`VarInt`].
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("value too large for a QUIC varint")]
pub struct VarIntBoundsExceeded;

impl VarInt {
    /// The largest representable value, 2^62 - 1.
    pub const MAX: VarInt = VarInt((1 << 62) - 1);
    /// Largest value that fits in `u32`-sized encodings (for convenience).
    pub const MAX_SIZE: usize = 8;

    /// Construct from a `u32`; infallible.
    pub const fn from_u32(x: u32) -> Self {
        VarInt(x as u64)
    }

    /// Construct from a `u64`, failing if it is 2^62 or larger.
    pub fn from_u64(x: u64) -> std::result::Result<Self, VarIntBoundsExceeded> {
        if x < (1 << 62) {
            Ok(VarInt(x))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// Construct from a `u64` without checking the bound.
    ///
    /// The caller guarantees `x < 2^62`; a larger value is clamped to [`VarInt::MAX`].
    pub const fn from_u64_clamped(x: u64) -> Self {
        if x < (1 << 62) {
            VarInt(x)
        } else {
            VarInt((1 << 62) - 1)
        }
    }

    /// The integer value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Number of bytes the encoding of this value takes (1, 2, 4 or 8).
    pub const fn size(self) -> usize {
        size_of_varint(self.0)
    }

    /// Decode a varint from `r`.
    pub fn decode<B: Buf>(r: &mut B) -> Result<Self> {
        if !r.has_remaining() {
            return Err(UnexpectedEnd);
        }
        let first = r.chunk()[0];
        let len = 1usize << (first >> 6);
        if r.remaining() < len {
            return Err(UnexpectedEnd);
        }
        let v = match len {
            1 => u64::from(r.get_u8() & 0x3f),
            2 => u64::from(r.get_u16() & 0x3fff),
            4 => u64::from(r.get_u32() & 0x3fff_ffff),
            _ => r.get_u64() & 0x3fff_ffff_ffff_ffff,
        };
        Ok(VarInt(v))
    }

    /// Encode into `w` using the shortest encoding.
    pub fn encode<B: BufMut>(self, w: &mut B) {
        let x = self.0;
        if x < (1 << 6) {
            w.put_u8(x as u8);
        } else if x < (1 << 14) {
            w.put_u16(0x4000 | x as u16);
        } else if x < (1 << 30) {
            w.put_u32(0x8000_0000 | x as u32);
        } else {
            w.put_u64(0xc000_0000_0000_0000 | x);
        }
    }
}

/// Encoded size of `x` as a varint (values ≥ 2^62 report 8).
pub const fn size_of_varint(x: u64) -> usize {
    if x < (1 << 6) {
        1
    } else if x < (1 << 14) {
        2
    } else if x < (1 << 30) {
        4
    } else {
        8
    }
}

impl From<u8> for VarInt {
    fn from(x: u8) -> Self {
        VarInt(x.into())
    }
}
impl From<u16> for VarInt {
    fn from(x: u16) -> Self {
        VarInt(x.into())
    }
}
impl From<u32> for VarInt {
    fn from(x: u32) -> Self {
        VarInt(x.into())
    }
}
impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: u64) -> std::result::Result<Self, Self::Error> {
        VarInt::from_u64(x)
    }
}
impl TryFrom<usize> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: usize) -> std::result::Result<Self, Self::Error> {
        VarInt::from_u64(x as u64)
    }
}
impl From<VarInt> for u64 {
    fn from(x: VarInt) -> u64 {
        x.0
    }
}
impl fmt::Debug for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Bounds-checked reads on any [`Buf`].
pub trait BufExt {
    /// Read a varint as `u64`.
    fn get_var(&mut self) -> Result<u64>;
    /// Read one byte.
    fn get_u8_checked(&mut self) -> Result<u8>;
    /// Read a big-endian u16.
    fn get_u16_checked(&mut self) -> Result<u16>;
    /// Read a big-endian u32.
    fn get_u32_checked(&mut self) -> Result<u32>;
    /// Read exactly `n` bytes into a new [`bytes::Bytes`].
    fn get_bytes_checked(&mut self, n: usize) -> Result<bytes::Bytes>;
}

impl<B: Buf> BufExt for B {
    fn get_var(&mut self) -> Result<u64> {
        VarInt::decode(self).map(u64::from)
    }
    fn get_u8_checked(&mut self) -> Result<u8> {
        if self.remaining() < 1 {
            return Err(UnexpectedEnd);
        }
        Ok(self.get_u8())
    }
    fn get_u16_checked(&mut self) -> Result<u16> {
        if self.remaining() < 2 {
            return Err(UnexpectedEnd);
        }
        Ok(self.get_u16())
    }
    fn get_u32_checked(&mut self) -> Result<u32> {
        if self.remaining() < 4 {
            return Err(UnexpectedEnd);
        }
        Ok(self.get_u32())
    }
    fn get_bytes_checked(&mut self, n: usize) -> Result<bytes::Bytes> {
        if self.remaining() < n {
            return Err(UnexpectedEnd);
        }
        Ok(self.copy_to_bytes(n))
    }
}

/// Writes on any [`BufMut`].
pub trait BufMutExt {
    /// Write a varint. Values ≥ 2^62 are a programming error and are clamped.
    fn put_var(&mut self, x: u64);
}

impl<B: BufMut> BufMutExt for B {
    fn put_var(&mut self, x: u64) {
        debug_assert!(x < (1 << 62), "varint out of range: {x}");
        VarInt::from_u64_clamped(x).encode(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_appendix_a_examples() {
        let cases: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            (&[0x40, 0x25], 37),
        ];
        for (bytes, value) in cases {
            let mut r = *bytes;
            assert_eq!(r.get_var().unwrap(), *value);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn short_input_is_error() {
        let mut r: &[u8] = &[0xc2, 0x19];
        assert_eq!(r.get_var(), Err(UnexpectedEnd));
        let mut e: &[u8] = &[];
        assert_eq!(e.get_var(), Err(UnexpectedEnd));
    }

    proptest! {
        #[test]
        fn roundtrip(x in 0u64..(1 << 62)) {
            let v = VarInt::from_u64(x).unwrap();
            let mut buf = Vec::new();
            v.encode(&mut buf);
            prop_assert_eq!(buf.len(), v.size());
            let mut r = &buf[..];
            prop_assert_eq!(VarInt::decode(&mut r).unwrap(), v);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
            let mut r = &bytes[..];
            let _ = r.get_var();
        }
    }
}
