//! Property tests and a seeded mutation fuzz pass over the parser, checker, program
//! decoder and VM: no input makes them panic, and every run is bounded.

use std::sync::Arc;

use proptest::prelude::*;
use quiver_ccp::lang::compile;
use quiver_ccp::vm::{Event, FlowState, Instr, Op, Primitives, Program, Reg, MAX_INSTRS};

const GOLDEN: [&str; 3] = [
    include_str!("../programs/reno.ccp"),
    include_str!("../programs/aimd.ccp"),
    include_str!("../programs/bbr.ccp"),
];

const VOCAB: &[&str] = &[
    "(",
    "(",
    "(",
    ")",
    ")",
    ")",
    "def",
    "when",
    "Report",
    "volatile",
    ":=",
    "bind",
    "report",
    "fallthrough",
    "+",
    "-",
    "*",
    "/",
    "==",
    ">",
    "<",
    ">=",
    "!=",
    "and",
    "or",
    "not",
    "if",
    "!if",
    "ewma",
    "min",
    "max",
    "wrapped_max",
    "true",
    "false",
    "+infinity",
    "0",
    "1",
    "10",
    "4294967295",
    "99999999999999999999",
    "x",
    "y",
    "Report.x",
    "Cwnd",
    "Rate",
    "Micros",
    "Ack.bytes_acked",
    "Flow.rtt_sample_us",
    "Flow.was_timeout",
    "__r",
    "#c\n",
    "\n",
    "é",
];

fn prims() -> impl Strategy<Value = Primitives> {
    (any::<[u64; 8]>(), any::<bool>(), 0u64..1 << 40).prop_map(|(v, to, now)| Primitives {
        bytes_acked: v[0],
        packets_acked: v[1] >> 32,
        lost_pkts_sample: v[2] & 3,
        rtt_sample_us: v[3] >> 40,
        rate_outgoing: v[4],
        bytes_in_flight: v[5] >> 20,
        cwnd: v[6] >> 30,
        rate: v[7] >> 40,
        was_timeout: to,
        now_us: now,
        ..Primitives::default()
    })
}

/// Runs a program for a few invocations; it must finish (ok or a counted abort).
fn exercise(p: Program, inputs: &[Primitives]) {
    let mut f = FlowState::new(Arc::new(p), 0);
    for (k, x) in inputs.iter().enumerate() {
        let r = f.on_event(x);
        assert_eq!(f.invocations(), k as u64 + 1);
        if let Ok(out) = r {
            if out.report {
                assert_eq!(f.last_report().len(), f.program().num_report_fields());
            }
        }
    }
}

fn check_compiled(src: &str, inputs: &[Primitives]) {
    match compile(src) {
        Ok(p) => {
            let back = Program::decode(&p.encode()).expect("compiled programs decode");
            assert_eq!(back.instrs(), p.instrs());
            let _ = p.to_string();
            exercise(p, inputs);
        }
        Err(e) => {
            // Every rejection explains itself, and rendering it cannot panic either.
            assert!(!e.diagnostics.is_empty());
            assert!(e.render(src, "fuzz.ccp").contains("fuzz.ccp:"));
        }
    }
}

fn any_reg() -> impl Strategy<Value = Reg> {
    (0u8..10, prop_oneof![0u32..16, any::<u32>()])
        .prop_filter_map("valid", |(t, v)| Reg::from_wire(t, v).ok())
}

fn any_instr() -> impl Strategy<Value = Instr> {
    (0u8..15, any_reg(), any_reg(), any_reg()).prop_map(|(op, res, left, right)| Instr {
        op: Op::from_code(op).unwrap_or(Op::Bind),
        res,
        left,
        right,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compile_never_panics_on_text(src in ".{0,300}") {
        let _ = compile(&src);
    }

    #[test]
    fn compile_never_panics_on_token_soup(
        toks in proptest::collection::vec(proptest::sample::select(VOCAB), 0..80),
        inputs in proptest::collection::vec(prims(), 1..4),
    ) {
        check_compiled(&toks.join(" "), &inputs);
    }

    #[test]
    fn decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = Program::decode(&bytes) {
            prop_assert_eq!(p.encode(), bytes);
        }
    }

    #[test]
    fn random_valid_programs_run_bounded(
        instrs in proptest::collection::vec(any_instr(), 0..40),
        events in proptest::collection::vec((0u32..40, 0u32..10, 0u32..40, 0u32..10), 0..6),
        inputs in proptest::collection::vec(prims(), 1..5),
    ) {
        let events = events
            .into_iter()
            .map(|(a, b, c, d)| Event { flag_idx: a, num_flag_instrs: b, body_idx: c, num_body_instrs: d })
            .collect();
        if let Ok(p) = Program::new(events, instrs) {
            let _ = p.to_string();
            let back = Program::decode(&p.encode()).expect("round trip");
            prop_assert_eq!(back.instrs(), p.instrs());
            prop_assert_eq!(back.events(), p.events());
            exercise(p, &inputs);
        }
    }
}

/// xorshift64*: a fixed-seed generator so the fuzz pass is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, alphabet: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(4) {
            0 if at < data.len() => data[at] = alphabet[rng.below(alphabet.len())],
            1 if at < data.len() => {
                data.remove(at);
            }
            2 => data.insert(at, alphabet[rng.below(alphabet.len())]),
            _ if at < data.len() => data[at] ^= 1 << rng.below(8),
            _ => {}
        }
    }
}

#[test]
fn seeded_mutation_fuzz_of_sources_and_encodings() {
    let mut rng = Rng(0x05ee_dcc9_2026);
    let text_alphabet = b"() \n:=+-*/<>!._#0123456789abcdeghilmnoprstuvwxyRACFM";
    let inputs: Vec<Primitives> = (0..3)
        .map(|k| Primitives {
            bytes_acked: 1460 * k,
            rtt_sample_us: 10_000 * k,
            lost_pkts_sample: k & 1,
            now_us: 7_000 * k,
            cwnd: 14_600,
            ..Primitives::default()
        })
        .collect();
    let (mut compiled, mut decoded) = (0, 0);
    for round in 0..1500 {
        let src = GOLDEN[round % GOLDEN.len()];
        let mut bytes = src.as_bytes().to_vec();
        mutate(&mut rng, &mut bytes, text_alphabet);
        let text = String::from_utf8_lossy(&bytes);
        if compile(&text).is_ok() {
            compiled += 1;
        }
        check_compiled(&text, &inputs);

        let mut enc = compile(src).unwrap().encode();
        let all: Vec<u8> = (0..=255).collect();
        mutate(&mut rng, &mut enc, &all);
        if let Ok(p) = Program::decode(&enc) {
            decoded += 1;
            assert!(p.instrs().len() <= MAX_INSTRS);
            exercise(p, &inputs);
        }
    }
    // The pass explores both sides of the accept/reject boundary.
    assert!(compiled > 10 && compiled < 1500, "compiled {compiled}");
    assert!(decoded > 10 && decoded < 1500, "decoded {decoded}");
}
