//! QUIC variable-length integers (RFC 9000 §16), as HTTP/3 frames and HTTP Datagrams
//! use them.

/// Largest value a varint can carry (2^62 - 1).
pub(crate) const MAX: u64 = (1 << 62) - 1;

/// Append `v` (at most [`MAX`]; larger values are clamped) in the shortest encoding.
pub(crate) fn encode(v: u64, out: &mut Vec<u8>) {
    let v = v.min(MAX);
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Encoded length of `v`.
pub(crate) fn len(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Decode a varint at the start of `buf`: the value and the bytes it took, or `None` if
/// `buf` is too short.
pub(crate) fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let n = 1usize << (first >> 6);
    let bytes = buf.get(..n)?;
    let mut v = u64::from(first & 0x3f);
    for b in bytes.iter().skip(1) {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(v in 0..=MAX) {
            let mut out = Vec::new();
            encode(v, &mut out);
            prop_assert_eq!(out.len(), len(v));
            prop_assert_eq!(decode(&out), Some((v, out.len())));
        }

        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..10)) {
            if let Some((v, n)) = decode(&buf) {
                prop_assert!(v <= MAX);
                prop_assert!(n <= buf.len());
            }
        }
    }

    #[test]
    fn rfc9000_examples() {
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, v) in cases {
            assert_eq!(decode(bytes), Some((v, bytes.len())));
        }
        assert_eq!(decode(&[0x7b]), None);
    }
}
