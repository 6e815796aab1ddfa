//! `quiver bench aead`: how many QUIC packets one core can seal — the ceiling to hold QUIC
//! throughput against.
//!
//! Packets are protected the way QUIC protects 1-RTT packets (RFC 9001 §5), with the keys
//! rustls hands a QUIC stack (`rustls::quic::Keys`, ring provider — what both Quiver and
//! quinn use): a short header (first byte, 8-byte destination connection ID — Quiver's
//! default length — and a 2-byte packet number) is the AEAD's associated data, the packet
//! number gives the nonce, `PacketKey::encrypt_in_place` seals the payload in place and
//! appends the 16-byte tag, and `HeaderProtectionKey::encrypt_in_place` masks the first
//! byte and packet number with a sample of the ciphertext. The `seal` rows time the
//! packet key alone, the `packet` rows the packet key plus header protection.
//!
//! Sizes are whole packets (header + payload + tag, i.e. the UDP payload), and Mbit/s
//! counts whole packets, so the numbers compare directly with `quiver bench throughput`
//! at the same `--mtu`. One thread; runs are interleaved (every case once per run).

use super::classes::parse_duration;
use super::stats::Spread;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rustls::quic::{HeaderProtectionKey, Keys, PacketKey, Version};
use rustls::Side;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Destination connection ID length of the short header (Quiver's default).
const DCID_LEN: usize = 8;
/// Packet-number length of the short header (a steady-state sender's usual encoding).
const PN_LEN: usize = 2;
/// Short header: first byte, DCID, packet number.
const HEADER_LEN: usize = 1 + DCID_LEN + PN_LEN;
/// AEAD tag of every QUIC cipher suite.
const TAG_LEN: usize = 16;
/// Header-protection sample size of every QUIC cipher suite (RFC 9001 §5.4.2).
const SAMPLE_LEN: usize = 16;
/// The sample starts this far after the start of the packet number (RFC 9001 §5.4.2).
const SAMPLE_PN_OFFSET: usize = 4;
/// Smallest packet the benchmark accepts: the header-protection sample must fit.
pub const MIN_PACKET: u16 = (HEADER_LEN - PN_LEN + SAMPLE_PN_OFFSET + SAMPLE_LEN) as u16;
/// How many packets are sealed between two looks at the clock.
const BATCH: u64 = 64;

/// Arguments of `quiver bench aead`.
#[derive(Args, Debug)]
pub struct AeadArgs {
    /// Length of each run per case, e.g. `1s`, `250ms` (no unit = milliseconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Number of runs; each run measures every case once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Comma-separated packet sizes in bytes (header + payload + tag).
    #[arg(long, default_value = "1200,1452", value_delimiter = ',',
          value_parser = clap::value_parser!(u16).range(i64::from(MIN_PACKET)..=16384))]
    pub sizes: Vec<u16>,
    /// Comma-separated cipher suites.
    #[arg(
        long,
        value_enum,
        default_value = "aes-128-gcm,chacha20-poly1305",
        value_delimiter = ','
    )]
    pub ciphers: Vec<Cipher>,
    /// Write one CSV row per run and case to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A TLS 1.3 cipher suite's QUIC packet protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Cipher {
    /// `TLS13_AES_128_GCM_SHA256`: AES-128-GCM, AES-ECB header protection.
    #[value(name = "aes-128-gcm")]
    #[serde(rename = "AES-128-GCM")]
    Aes128Gcm,
    /// `TLS13_CHACHA20_POLY1305_SHA256`: ChaCha20-Poly1305, ChaCha20 header protection.
    #[value(name = "chacha20-poly1305")]
    #[serde(rename = "ChaCha20-Poly1305")]
    Chacha20Poly1305,
}

impl Cipher {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes128Gcm => "AES-128-GCM",
            Cipher::Chacha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    /// Client-side 1-RTT-style keys of this suite from the ring provider. They are derived
    /// like Initial keys (from a fixed connection ID), which exercises exactly the same
    /// `PacketKey`/`HeaderProtectionKey` implementations as handshake-derived keys.
    fn keys(self) -> anyhow::Result<Keys> {
        let suite = match self {
            Cipher::Aes128Gcm => rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            Cipher::Chacha20Poly1305 => {
                rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256
            }
        };
        let quic = suite
            .tls13()
            .and_then(|s| s.quic_suite())
            .with_context(|| format!("{} has no QUIC support in rustls", self.name()))?;
        Ok(quic.keys(&[0x5a; DCID_LEN], Side::Client, Version::V1))
    }
}

/// What is timed per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `PacketKey::encrypt_in_place` only.
    Seal,
    /// Seal plus header protection: a complete packet.
    Packet,
}

impl Op {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Seal => "seal",
            Op::Packet => "packet",
        }
    }
}

/// One cipher, packet size and operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    cipher: Cipher,
    size: u16,
    op: Op,
}

/// The cases in table order: cipher, then size, then `packet` before `seal`.
fn cases(ciphers: &[Cipher], sizes: &[u16]) -> Vec<Case> {
    let mut v = Vec::new();
    for &cipher in ciphers {
        for &size in sizes {
            for op in [Op::Packet, Op::Seal] {
                v.push(Case { cipher, size, op });
            }
        }
    }
    v
}

/// Write the unprotected short header of packet `pn` into `header`.
fn write_short_header(header: &mut [u8], pn: u64) {
    // Fixed bit set, spin 0, reserved 0, key phase 0, PN length - 1 in the low bits.
    header[0] = 0x40 | (PN_LEN as u8 - 1);
    header[1..1 + DCID_LEN].fill(0x5a);
    let pn_bytes = pn.to_be_bytes();
    header[1 + DCID_LEN..HEADER_LEN].copy_from_slice(&pn_bytes[8 - PN_LEN..]);
}

/// Protect one packet of `buf.len()` bytes with packet number `pn` in place.
fn protect(
    buf: &mut [u8],
    pn: u64,
    packet_key: &dyn PacketKey,
    header_key: Option<&dyn HeaderProtectionKey>,
) -> anyhow::Result<()> {
    let tag_start = buf.len() - TAG_LEN;
    write_short_header(&mut buf[..HEADER_LEN], pn);
    let (header, rest) = buf.split_at_mut(HEADER_LEN);
    let tag = packet_key
        .encrypt_in_place(pn, header, &mut rest[..tag_start - HEADER_LEN])
        .map_err(|e| anyhow::anyhow!("seal: {e}"))?;
    buf[tag_start..].copy_from_slice(tag.as_ref());
    if let Some(hp) = header_key {
        let pn_offset = HEADER_LEN - PN_LEN;
        let (head, tail) = buf.split_at_mut(pn_offset + SAMPLE_PN_OFFSET);
        let sample = &tail[..SAMPLE_LEN];
        let (first, pn_bytes) = head.split_at_mut(pn_offset);
        hp.encrypt_in_place(sample, &mut first[0], &mut pn_bytes[..PN_LEN])
            .map_err(|e| anyhow::anyhow!("header protection: {e}"))?;
    }
    Ok(())
}

/// Packets of one case sealed in a run.
#[derive(Debug, Clone, Copy)]
struct Count {
    packets: u64,
    elapsed: Duration,
}

/// Seal packets of `case` back to back for about `duration`.
fn run_case(case: Case, keys: &Keys, duration: Duration) -> anyhow::Result<Count> {
    let mut buf = vec![0x17u8; usize::from(case.size)];
    let header_key = match case.op {
        Op::Packet => Some(&*keys.local.header),
        Op::Seal => None,
    };
    let packet_key = &*keys.local.packet;
    // One packet outside the clock: checks the case and warms the caches.
    protect(&mut buf, 0, packet_key, header_key)?;
    let mut pn = 1u64;
    let start = Instant::now();
    loop {
        for _ in 0..BATCH {
            protect(black_box(&mut buf), pn, packet_key, header_key)?;
            pn += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            black_box(&buf);
            return Ok(Count {
                packets: pn - 1,
                elapsed,
            });
        }
    }
}

/// One core's rate of complete packets (seal + header protection) of one cipher and size:
/// the throughput ceiling other benchmarks compare against.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ceiling {
    /// The cipher suite.
    pub cipher: Cipher,
    /// Whole packet size in bytes (the UDP payload).
    pub size: u16,
    /// Median over the runs of whole-packet megabits per second.
    pub mbit_per_s: f64,
    /// Median over the runs of packets per second.
    pub packets_per_s: f64,
}

/// Measure [`Ceiling`] of `cipher` at `size`-byte packets on this thread: `runs` runs of
/// `duration / runs` each, medians over the runs.
pub fn packet_ceiling(
    cipher: Cipher,
    size: u16,
    duration: Duration,
    runs: u32,
) -> anyhow::Result<Ceiling> {
    if size < MIN_PACKET {
        bail!("packets of {size} bytes are too small (at least {MIN_PACKET})");
    }
    let keys = cipher.keys()?;
    let case = Case {
        cipher,
        size,
        op: Op::Packet,
    };
    let runs = runs.max(1);
    let mut rates = Vec::new();
    let mut pps = Vec::new();
    for _ in 0..runs {
        let c = run_case(case, &keys, duration / runs)?;
        rates.push(mbit_per_s(c.packets, size, c.elapsed));
        pps.push(packets_per_s(c.packets, c.elapsed));
    }
    Ok(Ceiling {
        cipher,
        size,
        mbit_per_s: Spread::of(&rates).median,
        packets_per_s: Spread::of(&pps).median,
    })
}

fn mbit_per_s(packets: u64, size: u16, elapsed: Duration) -> f64 {
    packets as f64 * f64::from(size) * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

fn packets_per_s(packets: u64, elapsed: Duration) -> f64 {
    packets as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One run of one case.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    run: u32,
    cipher: Cipher,
    size: u16,
    op: Op,
    packets: u64,
    duration_s: f64,
    mbit_per_s: f64,
    packets_per_s: f64,
}

/// One case over all runs.
#[derive(Debug, Clone, serde::Serialize)]
struct Summary {
    cipher: Cipher,
    size: u16,
    op: Op,
    mbit_per_s: Spread,
    packets_per_s: Spread,
    /// Median nanoseconds per packet.
    median_ns_per_packet: f64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    provider: &'static str,
    threads: u32,
    runs: u32,
    duration_s: f64,
    header: &'static str,
    cases: Vec<Summary>,
    samples: Vec<Sample>,
}

fn summarize(case: Case, samples: &[Sample]) -> Summary {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.cipher == case.cipher && s.size == case.size && s.op == case.op)
        .collect();
    let packets_per_s = Spread::of(&mine.iter().map(|s| s.packets_per_s).collect::<Vec<_>>());
    Summary {
        cipher: case.cipher,
        size: case.size,
        op: case.op,
        mbit_per_s: Spread::of(&mine.iter().map(|s| s.mbit_per_s).collect::<Vec<_>>()),
        packets_per_s,
        median_ns_per_packet: 1e9 / packets_per_s.median,
    }
}

/// Run the benchmark; exit code 0 on success.
pub fn run(args: AeadArgs) -> anyhow::Result<i32> {
    if args.sizes.is_empty() || args.ciphers.is_empty() {
        bail!("--sizes and --ciphers need at least one value each");
    }
    let keys: Vec<(Cipher, Keys)> = args
        .ciphers
        .iter()
        .map(|&c| Ok((c, c.keys()?)))
        .collect::<anyhow::Result<_>>()?;
    let keys_of = |c: Cipher| {
        keys.iter()
            .find(|(k, _)| *k == c)
            .map(|(_, keys)| keys)
            .context("keys of a requested cipher")
    };
    let cases = cases(&args.ciphers, &args.sizes);
    let bar = super::progress_bar(u64::from(args.runs) * cases.len() as u64);
    let mut samples = Vec::new();
    for run in 1..=args.runs {
        for &case in &cases {
            bar.set_message(format!(
                "run {run}: {} {} {}",
                case.cipher.name(),
                case.size,
                case.op.name()
            ));
            let c = run_case(case, keys_of(case.cipher)?, args.duration)?;
            samples.push(Sample {
                run,
                cipher: case.cipher,
                size: case.size,
                op: case.op,
                packets: c.packets,
                duration_s: c.elapsed.as_secs_f64(),
                mbit_per_s: mbit_per_s(c.packets, case.size, c.elapsed),
                packets_per_s: packets_per_s(c.packets, c.elapsed),
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let report = Report {
        provider: "rustls 0.23 quic keys, ring",
        threads: 1,
        runs: args.runs,
        duration_s: args.duration.as_secs_f64(),
        header: "short header: 8-byte DCID, 2-byte packet number",
        cases: cases.iter().map(|&c| summarize(c, &samples)).collect(),
        samples,
    };
    super::emit(
        &report,
        args.csv.as_deref(),
        args.json,
        |path| write_csv(path, &report.samples),
        print_table,
    )
}

fn write_csv(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "run,cipher,size,op,packets,duration_s,mbit_per_s,packets_per_s"
    )?;
    for s in samples {
        writeln!(
            f,
            "{},{},{},{},{},{:.6},{:.2},{:.0}",
            s.run,
            s.cipher.name(),
            s.size,
            s.op.name(),
            s.packets,
            s.duration_s,
            s.mbit_per_s,
            s.packets_per_s
        )?;
    }
    f.flush()
}

fn print_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "quiver bench aead: QUIC packet protection on 1 thread, {}, {} run{} x {:.3} s per case",
        r.provider,
        r.runs,
        if r.runs == 1 { "" } else { "s" },
        r.duration_s
    )?;
    writeln!(
        out,
        "packet = PacketKey::encrypt_in_place + HeaderProtectionKey::encrypt_in_place; \
         seal = PacketKey only; {}; Mbit/s counts whole packets (header + payload + tag)",
        r.header
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<18} {:>5} {:<6}  {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}  {:>7}",
        "cipher",
        "bytes",
        "op",
        "min Mb/s",
        "median",
        "max",
        "min pkt/s",
        "median",
        "max",
        "ns/pkt"
    )?;
    for s in &r.cases {
        writeln!(
            out,
            "{:<18} {:>5} {:<6}  {:>9.0} {:>9.0} {:>9.0}   {:>9.0} {:>9.0} {:>9.0}  {:>7.0}",
            s.cipher.name(),
            s.size,
            s.op.name(),
            s.mbit_per_s.min,
            s.mbit_per_s.median,
            s.mbit_per_s.max,
            s.packets_per_s.min,
            s.packets_per_s.median,
            s.packets_per_s.max,
            s.median_ns_per_packet
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AeadArgs,
    }

    #[test]
    fn defaults_and_lists() {
        let a = Cli::parse_from(["x"]).args;
        assert_eq!(a.duration, Duration::from_secs(1));
        assert_eq!(a.runs, 5);
        assert_eq!(a.sizes, vec![1200, 1452]);
        assert_eq!(a.ciphers, vec![Cipher::Aes128Gcm, Cipher::Chacha20Poly1305]);
        let a = Cli::parse_from([
            "x",
            "--duration",
            "50ms",
            "--sizes",
            "1452",
            "--ciphers",
            "chacha20-poly1305",
        ])
        .args;
        assert_eq!(a.duration, Duration::from_millis(50));
        assert_eq!(a.sizes, vec![1452]);
        assert_eq!(a.ciphers, vec![Cipher::Chacha20Poly1305]);
        assert!(Cli::try_parse_from(["x", "--sizes", "20"]).is_err());
        assert!(Cli::try_parse_from(["x", "--runs", "0"]).is_err());
    }

    #[test]
    fn case_order() {
        let c = cases(&[Cipher::Aes128Gcm], &[1200, 1452]);
        let got: Vec<(u16, Op)> = c.iter().map(|c| (c.size, c.op)).collect();
        assert_eq!(
            got,
            vec![
                (1200, Op::Packet),
                (1200, Op::Seal),
                (1452, Op::Packet),
                (1452, Op::Seal)
            ]
        );
    }

    #[test]
    fn units() {
        assert_eq!(mbit_per_s(1000, 1250, Duration::from_secs(1)), 10.0);
        assert_eq!(packets_per_s(500, Duration::from_millis(250)), 2000.0);
    }

    #[test]
    fn ceiling_is_positive() {
        let c = packet_ceiling(Cipher::Aes128Gcm, 1452, Duration::from_millis(10), 2).unwrap();
        assert_eq!((c.cipher, c.size), (Cipher::Aes128Gcm, 1452));
        assert!(c.mbit_per_s > 0.0 && c.packets_per_s > 0.0, "{c:?}");
        assert!(packet_ceiling(Cipher::Aes128Gcm, 20, Duration::from_millis(1), 1).is_err());
    }

    /// The protected packet opens with the peer's keys: the benchmark does real work.
    #[test]
    fn protected_packet_round_trips() {
        for cipher in [Cipher::Aes128Gcm, Cipher::Chacha20Poly1305] {
            let keys = cipher.keys().unwrap();
            let mut buf = vec![0x17u8; usize::from(MIN_PACKET) + 40];
            let pn = 0x1234_5678;
            protect(&mut buf, pn, &*keys.local.packet, Some(&*keys.local.header)).unwrap();
            let server = match cipher {
                Cipher::Aes128Gcm => rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
                Cipher::Chacha20Poly1305 => {
                    rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256
                }
            }
            .tls13()
            .and_then(|s| s.quic_suite())
            .unwrap()
            .keys(&[0x5a; DCID_LEN], Side::Server, Version::V1);
            // Remove header protection, then open.
            let pn_offset = HEADER_LEN - PN_LEN;
            let sample: Vec<u8> = buf[pn_offset + SAMPLE_PN_OFFSET..][..SAMPLE_LEN].to_vec();
            let (first, rest) = buf.split_at_mut(1);
            server
                .remote
                .header
                .decrypt_in_place(&sample, &mut first[0], &mut rest[pn_offset - 1..][..PN_LEN])
                .unwrap();
            assert_eq!(buf[0], 0x40 | (PN_LEN as u8 - 1));
            assert_eq!(&buf[pn_offset..HEADER_LEN], &[0x56, 0x78]);
            let (header, payload) = buf.split_at_mut(HEADER_LEN);
            let plain = server
                .remote
                .packet
                .decrypt_in_place(pn, header, payload)
                .unwrap();
            assert!(plain.iter().all(|&b| b == 0x17));
        }
    }
}
