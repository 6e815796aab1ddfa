//! Seeded mutation fuzzing of every wire decoder and of a live connection's receive path.
//!
//! A small, dependency-free fuzzer that runs on the stable toolchain (no libFuzzer, no
//! nightly): each [`Target`] supplies a corpus of seeds generated from real encodings and
//! an `exec` function that feeds one input to the code under test and checks invariants;
//! [`run`] mutates corpus entries and executes them, catching panics.
//!
//! Targets ([`codec`] for the pure decoders, [`live`] for connections):
//! - `packet` — datagrams through [`crate::packet::PartialDecode`] (long, short, Retry,
//!   Version Negotiation, coalesced), header-protection removal and AEAD with Initial keys;
//! - `frames` — payloads through [`crate::frame::Iter`], every decoded frame round-tripped;
//! - `transport-params` — [`crate::transport_params::TransportParameters::decode`];
//! - `token` — Retry and NEW_TOKEN tokens through [`crate::token::TokenKey`], both as
//!   sealed bytes and as plaintext behind a valid seal;
//! - `version-info` — [`crate::version::VersionInformation::decode`];
//! - `live-handshake` — a client's Initial payload sealed with its real Initial keys into a
//!   server endpoint, and Initial/Handshake payloads sealed with the real keys of either
//!   side in the middle of a handshake;
//! - `live-1rtt` — 1-RTT payloads sealed with the valid keys of either side of an
//!   established connection pair, so they reach frame processing.
//!
//! Mutations ([`mutate`]): bit flips, byte set to boundary values, byte insert and delete,
//! varint rewrites at field boundaries (the value and its encoded length), chunk
//! duplication, splicing and concatenation with other corpus entries, truncation. Inputs
//! whose outcome signature (what the target reports: decoded frame types, error kinds,
//! close codes) is new join the corpus, a cheap stand-in for coverage feedback.
//!
//! The driver reads no clock (this crate is sans-IO): the caller decides when to stop
//! through the `stop` callback of [`run`]. `quiver bench fuzz` runs it for a wall-clock
//! budget and saves any failing input; the test suite runs a short fixed-seed pass.
//!
//! Extension point: implement [`Target`] for a new decoder and add it to the caller's
//! list (see [`codec::all`] and [`live::LiveConfigs`]).

pub mod codec;
pub mod live;

use crate::coding::VarInt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A small deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// The outcome of one execution that did not violate anything: a signature of what
/// happened (decoded frame types, error kinds, close codes...). Inputs with a signature
/// not seen before are kept in the corpus.
pub type Signature = u64;

/// Something a fuzz target can be fed.
pub trait Target {
    /// Short name, used on the command line (`--target`).
    fn name(&self) -> &'static str;
    /// Seed inputs, generated from real encodings.
    fn seeds(&mut self) -> Vec<Vec<u8>>;
    /// Largest input worth generating.
    fn max_len(&self) -> usize {
        4096
    }
    /// Feed one input. `Err` describes a violated invariant; a panic is caught by
    /// [`run`]. Must be deterministic for a given target state and input.
    fn exec(&mut self, input: &[u8]) -> Result<Signature, String>;
}

/// Why an input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// The code under test panicked.
    Panic,
    /// The target's invariant check failed.
    Invariant,
}

/// A failing input.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Panic or invariant violation.
    pub kind: FindingKind,
    /// The panic message or the violated invariant.
    pub message: String,
    /// The input (replay it with [`replay`]).
    pub input: Vec<u8>,
    /// Which execution of the run found it (0-based).
    pub exec: u64,
}

/// What a [`run`] did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Inputs executed (seeds included).
    pub execs: u64,
    /// Corpus size at the end (seeds plus inputs with new signatures).
    pub corpus: usize,
    /// Distinct outcome signatures seen.
    pub signatures: usize,
    /// The first failing input, if any (the run stops there).
    pub finding: Option<Finding>,
}

/// Largest corpus kept in memory.
const MAX_CORPUS: usize = 8192;

/// Fuzz `target` from `seed`: execute every seed input, then mutated corpus entries until
/// `stop(execs)` returns true (it is asked before each execution) or an input fails.
pub fn run(target: &mut dyn Target, seed: u64, stop: &mut dyn FnMut(u64) -> bool) -> Report {
    let mut rng = Rng::new(seed);
    let mut corpus = target.seeds();
    let mut seen = std::collections::HashSet::new();
    let mut execs = 0u64;
    let max_len = target.max_len();
    let mut finding = None;
    let mut i = 0;
    // Seeds first, unmutated: a failing seed is a bug too.
    while i < corpus.len() {
        if stop(execs) {
            break;
        }
        let input = corpus[i].clone();
        match exec_caught(target, &input, execs) {
            Ok(sig) => {
                seen.insert(sig);
            }
            Err(f) => {
                finding = Some(f);
                break;
            }
        }
        execs += 1;
        i += 1;
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    while finding.is_none() && !stop(execs) {
        let mut input = corpus[rng.below(corpus.len())].clone();
        let rounds = 1 << rng.below(4);
        for _ in 0..rounds {
            mutate(&mut rng, &mut input, &corpus, max_len);
        }
        match exec_caught(target, &input, execs) {
            Ok(sig) => {
                if seen.insert(sig) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(f) => finding = Some(f),
        }
        execs += 1;
    }
    Report {
        target: target.name(),
        execs,
        corpus: corpus.len(),
        signatures: seen.len(),
        finding,
    }
}

/// Execute one input (for reproducing a saved finding); `Err` if it fails.
pub fn replay(target: &mut dyn Target, input: &[u8]) -> Result<Signature, Finding> {
    exec_caught(target, input, 0)
}

fn exec_caught(target: &mut dyn Target, input: &[u8], exec: u64) -> Result<Signature, Finding> {
    match catch_unwind(AssertUnwindSafe(|| target.exec(input))) {
        Ok(Ok(sig)) => Ok(sig),
        Ok(Err(message)) => Err(Finding {
            kind: FindingKind::Invariant,
            message,
            input: input.to_vec(),
            exec,
        }),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(Finding {
                kind: FindingKind::Panic,
                message,
                input: input.to_vec(),
                exec,
            })
        }
    }
}

/// Byte values at the edges of QUIC fields: varint length prefixes, flags, limits.
const INTERESTING_BYTES: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x0f, 0x1f, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff,
];

/// Varint values at the edges of QUIC fields.
const INTERESTING_VALUES: [u64; 14] = [
    0,
    1,
    2,
    20,
    21,
    63,
    64,
    1200,
    16_383,
    16_384,
    (1 << 30) - 1,
    1 << 30,
    (1 << 60) + 1,
    VarInt::MAX.into_inner(),
];

/// Apply one random mutation to `input` (never longer than `max_len` afterwards).
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], max_len: usize) {
    let len = input.len();
    match rng.below(10) {
        // Bit flip.
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        // Byte set to a boundary or random value.
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = if rng.one_in(3) {
                rng.next_u64() as u8
            } else {
                INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
            };
        }
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.below(len);
            let n = (1 + rng.below(8)).min(len - at);
            input.drain(at..at + n);
        }
        // Rewrite a varint at a field boundary.
        4 | 5 => varint_tweak(rng, input),
        // Duplicate a chunk elsewhere (repeats a frame or a parameter).
        6 if len > 0 => {
            let a = rng.below(len);
            let b = a + 1 + rng.below(len - a);
            let chunk = input[a..b].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, chunk);
        }
        // Splice: our prefix, another entry's suffix.
        7 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        // Concatenate another entry (another frame, another coalesced packet).
        8 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            input.extend_from_slice(other);
        }
        // Truncate.
        _ if len > 0 => input.truncate(rng.below(len)),
        _ => input.push(rng.next_u64() as u8),
    }
    input.truncate(max_len);
}

/// Field boundaries found by reading `input` as a run of varints from the start (frame
/// payloads and transport parameters are mostly that) or by picking a random offset.
fn varint_tweak(rng: &mut Rng, input: &mut Vec<u8>) {
    let mut bounds = Vec::new();
    let mut pos = 0;
    while pos < input.len() && bounds.len() < 64 {
        bounds.push(pos);
        pos += 1 << (input[pos] >> 6);
    }
    let at = if !bounds.is_empty() && !rng.one_in(3) {
        bounds[rng.below(bounds.len())]
    } else {
        rng.below(input.len() + 1)
    };
    let old_len = input.get(at).map_or(0, |b| 1usize << (b >> 6));
    let old_len = old_len.min(input.len() - at);
    let old = read_var(&input[at..at + old_len]);
    let rest = input.len() - at - old_len;
    let value = match rng.below(4) {
        0 => (rest as u64 + rng.below(3) as u64).saturating_sub(1),
        1 => old.map_or(0, |v| v.wrapping_add(rng.below(3) as u64).wrapping_sub(1)),
        _ => INTERESTING_VALUES[rng.below(INTERESTING_VALUES.len())],
    };
    let value = value.min(VarInt::MAX.into_inner());
    // Same length when it fits (keeps the layout), else the minimal or a random one.
    let mut enc_len = match rng.below(3) {
        0 => old_len,
        1 => 1 << rng.below(4),
        _ => 0,
    };
    let min_len = match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    };
    if enc_len < min_len {
        enc_len = min_len;
    }
    let tag: u8 = match enc_len {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    };
    let enc_len = 1usize << tag;
    let mut bytes = value.to_be_bytes()[8 - enc_len..].to_vec();
    bytes[0] |= tag << 6;
    input.splice(at..at + old_len, bytes);
}

fn read_var(b: &[u8]) -> Option<u64> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    if b.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for x in &b[1..len] {
        v = (v << 8) | u64::from(*x);
    }
    Some(v)
}

/// Fold a value into a signature (FNV-1a style).
pub(crate) fn fold(sig: Signature, v: u64) -> Signature {
    (sig ^ v).wrapping_mul(0x0100_0000_01b3)
}

/// The initial value for [`fold`].
pub(crate) const SIG_START: Signature = 0xcbf2_9ce4_8422_2325;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_within_max_len_and_are_deterministic() {
        let corpus = vec![vec![1u8, 2, 3], vec![0x40, 0x10, 9, 9, 9]];
        let go = |seed| {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            for i in 0..2000 {
                let mut input = corpus[i % 2].clone();
                for _ in 0..4 {
                    mutate(&mut rng, &mut input, &corpus, 32);
                }
                assert!(input.len() <= 32);
                out.push(input);
            }
            out
        };
        assert_eq!(go(3), go(3));
        assert_ne!(go(3), go(4));
    }

    #[test]
    fn varint_tweak_writes_valid_varints() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let mut input = vec![0x05, 0x41, 0x00, 0x07];
            varint_tweak(&mut rng, &mut input);
            assert!(!input.is_empty());
        }
    }

    struct Panicky;
    impl Target for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn seeds(&mut self) -> Vec<Vec<u8>> {
            vec![b"ab".to_vec()]
        }
        fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
            if input.contains(&b'x') {
                panic!("found it");
            }
            Ok(input.len() as u64)
        }
    }

    #[test]
    fn run_catches_a_panic_and_replay_reproduces_it() {
        let mut t = Panicky;
        let report = run(&mut t, 9, &mut |n| n > 200_000);
        let f = report.finding.expect("the fuzzer finds the panic");
        assert_eq!(f.kind, FindingKind::Panic);
        assert_eq!(f.message, "found it");
        assert!(replay(&mut t, &f.input).is_err());
    }
}
