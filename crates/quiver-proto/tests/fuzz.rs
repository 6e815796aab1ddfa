//! Short fixed-seed pass of every fuzz target (`quiver_proto::fuzz`), the table of
//! hand-made bad inputs and their RFC error codes, and the regression inputs the fuzzer
//! found. `QUIVER_FUZZ_SECS=N` runs each target for N seconds instead (wall clock, so
//! only for a long run by hand; `quiver bench fuzz` is the command for that).

mod common;

use quiver_proto::config::TransportConfig;
use quiver_proto::fuzz::{self, codec, live, Target};
use std::time::{Duration, Instant};

fn configs() -> live::LiveConfigs {
    live::LiveConfigs::new(
        common::server_config(TransportConfig::default()),
        common::client_config(TransportConfig::default()),
    )
}

/// Executions per target in the default suite, or a wall-clock budget.
fn budget(default_execs: u64) -> Box<dyn FnMut(u64) -> bool> {
    match std::env::var("QUIVER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(secs) => {
            let end = Instant::now() + Duration::from_secs(secs);
            Box::new(move |n| n.is_multiple_of(16) && Instant::now() >= end)
        }
        None => Box::new(move |n| n >= default_execs),
    }
}

fn check(target: &mut dyn Target, seed: u64, execs: u64) {
    let mut stop = budget(execs);
    let report = fuzz::run(target, seed, &mut *stop);
    eprintln!(
        "{}: {} execs, corpus {}, {} signatures",
        report.target, report.execs, report.corpus, report.signatures
    );
    if let Some(f) = report.finding {
        panic!(
            "{} {:?} after {} execs: {}\ninput (hex): {}",
            report.target,
            f.kind,
            f.exec,
            f.message,
            hex(&f.input)
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn decoders_short_pass() {
    for (i, mut t) in codec::all().into_iter().enumerate() {
        check(&mut *t, 1000 + i as u64, 20_000);
    }
}

#[test]
fn live_1rtt_short_pass() {
    let mut t = live::Live1RttTarget::new(configs(), Instant::now());
    check(&mut t, 7, 400);
}

#[test]
fn live_handshake_short_pass() {
    let mut t = live::LiveHandshakeTarget::new(configs(), Instant::now());
    check(&mut t, 11, 120);
}

#[test]
fn bad_inputs_close_with_the_rfc_error_code() {
    let c = configs();
    let base = Instant::now();
    let failures: Vec<String> = live::expectations()
        .iter()
        .filter_map(|e| live::check_expectation(&c, base, e).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

/// Inputs the fuzzer found, replayed on every run: (target, why it failed, input).
const REGRESSIONS: &[(&str, &str, &str)] = &[(
    "live-handshake",
    "a client Initial whose CRYPTO frame lies inside a buffered segment: \
     CryptoRecv::insert asked BTreeMap::range for start > end and panicked",
    "00060040fc010000f8030312c64df9ccb650b02b4de88fa2091c4693b99e04e6cf845b9819e9862f566ca037b571000006130213011303010000c9000b00020100002b00030203040039003301025388030245c00404800186a0050243e8060243e8070343e80801040901040e01040f08e463bcb1a6e5728820048000ffff002d000281add86b06a70c3101010005000501000000000010000e000c0b7175697665722d74657374003300260024001d0020f9188a14121d9bf461975e58ee6dd320c2a63d5ef68f4f25a3fb04ab67bc5849000a00080006001d00170018001700000000000e000c0000096c6f63616c686f7374000d001400120503040308070806080508040601050104010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001b0000000000000000000000000000000000000000000000000000",
)];

#[test]
fn regressions_found_by_the_fuzzer() {
    let c = configs();
    let base = Instant::now();
    let mut targets: Vec<Box<dyn Target>> = codec::all();
    targets.push(Box::new(live::LiveHandshakeTarget::new(c.clone(), base)));
    let mut t1 = live::Live1RttTarget::new(c, base);
    t1.fresh_each_time();
    targets.push(Box::new(t1));
    for (name, why, input) in REGRESSIONS {
        let t = targets
            .iter_mut()
            .find(|t| t.name() == *name)
            .expect("target exists");
        if let Err(f) = fuzz::replay(&mut **t, &unhex(input)) {
            panic!("{name} ({why}): {:?} {}", f.kind, f.message);
        }
    }
}
