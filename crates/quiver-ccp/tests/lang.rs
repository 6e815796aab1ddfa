//! The datapath language: golden programs, portus byte compatibility, error messages.

use quiver_ccp::lang::{compile, compile_with_warnings, Severity};
use quiver_ccp::vm::{Implicit, Op, Program, Reg};

const RENO: &str = include_str!("../programs/reno.ccp");
const AIMD: &str = include_str!("../programs/aimd.ccp");
const BBR: &str = include_str!("../programs/bbr.ccp");

#[test]
fn golden_programs_compile_without_warnings_and_round_trip() {
    for (name, src) in [("reno", RENO), ("aimd", AIMD), ("bbr", BBR)] {
        let c = compile_with_warnings(src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.render(src, name)));
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        let bytes = c.program.encode();
        assert_eq!(bytes.len(), c.program.encoded_len());
        let back = Program::decode(&bytes).expect("decode");
        assert_eq!(back.events(), c.program.events());
        assert_eq!(back.instrs(), c.program.instrs());
        assert_eq!(back.num_report_fields(), c.program.num_report_fields());
    }
}

/// The bytes portus 0.9 puts in an INSTALL message for the same program (its
/// `serialize_install_msg` test, after the 8-byte header and `program_uid`).
#[test]
fn encoding_matches_portus() {
    let p = compile("(def (Report (volatile foo 0)))\n(when true\n (bind Report.foo 4))").unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        1, 0, 0, 0, // num_events
        3, 0, 0, 0, // num_instrs
        1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
        2, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        1, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 1, 0, 0, 0,
        1, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1, 4, 0, 0, 0,
    ];
    assert_eq!(p.encode(), want);
}

/// portus's `commands` test program: the same events and instruction stream.
#[test]
fn instructions_match_portus_compiler() {
    // portus's own test program, verbatim (`Report.foo` declared outside `(Report ...)`).
    let p = compile(
        "(def (Report.foo 0))
         (when true (bind Report.foo 4) (fallthrough))
         (when (> Micros 3000) (bind Report.foo 5) (report) (:= Micros 0))",
    )
    .unwrap();
    let foo = Reg::Report {
        index: 0,
        volatile: false,
    };
    let imp = Reg::Implicit;
    let ops: Vec<(Op, Reg, Reg)> = p.instrs().iter().map(|i| (i.op, i.res, i.right)).collect();
    assert_eq!(
        ops,
        vec![
            (Op::Def, foo, Reg::Imm(0)),
            (Op::Bind, imp(Implicit::EventFlag), Reg::Imm(1)),
            (Op::Bind, foo, Reg::Imm(4)),
            (Op::Bind, imp(Implicit::ShouldFallthrough), Reg::Imm(1)),
            (Op::Gt, imp(Implicit::EventFlag), Reg::Imm(3000)),
            (Op::Bind, foo, Reg::Imm(5)),
            (Op::Bind, imp(Implicit::ShouldReport), Reg::Imm(1)),
            (Op::Bind, imp(Implicit::Micros), Reg::Imm(0)),
        ]
    );
    let ev: Vec<_> = p
        .events()
        .iter()
        .map(|e| (e.flag_idx, e.num_flag_instrs, e.body_idx, e.num_body_instrs))
        .collect();
    assert_eq!(ev, vec![(1, 1, 2, 2), (4, 1, 5, 3)]);
    assert_eq!(p.report_field_index("foo"), Some(0));
    assert_eq!(p.update_target("Cwnd"), Some(Reg::Implicit(Implicit::Cwnd)));
    assert_eq!(p.update_target("Report.foo"), None);
}

fn errors(src: &str) -> Vec<String> {
    let e = compile(src).expect_err("must not compile");
    e.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn error_messages_name_the_problem_and_the_place() {
    let src = "(def (Report (volatile acked 0)) (state 0))
(when true
    (:= Report.acked (+ Report.ackd Ack.bytes_acked))
    (:= Ack.bytes_acked 3)
    (:= state (> 1 2))
    (:= Cwnd Flow.was_timeout))
(when (+ 1 2) (report))";
    let errs = errors(src);
    assert_eq!(
        errs,
        vec![
            "3:25: error: undeclared name `Report.ackd` (did you mean `Report.acked`?)",
            "4:9: error: cannot assign to `Ack.bytes_acked`: it is a read-only measurement primitive (copy it into a variable instead)",
            "5:15: error: type mismatch: `state` is a number, but this value is a boolean",
            "6:14: error: type mismatch: `Cwnd` is a number, but this value is a boolean",
            "7:7: error: a `when` condition must be a boolean, found a number (compare it, e.g. `(> x 0)`)",
        ]
    );
    let rendered = compile(src).unwrap_err().render(src, "t.ccp");
    assert!(
        rendered.starts_with(
            "error: undeclared name `Report.ackd`\n --> t.ccp:3:25\n  |\n3 |     (:= Report.acked (+ Report.ackd Ack.bytes_acked))\n  |                         ^^^^^^^^^^^ did you mean `Report.acked`?\n"
        ),
        "{rendered}"
    );
}

#[test]
fn syntax_and_structure_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "(def (x 0))\n(when true (:= x 1)",
            "2:1: error: unclosed `(`",
        ),
        ("(def (x 0)))", "1:12: error: unmatched `)`"),
        (
            "(def (x 0))\n(when true (:= x 1) (frob 2))",
            "2:21: error: expected a statement",
        ),
        (
            "(def (x 0))\n(when true (:= x (frob 1 2)))",
            "2:19: error: unknown operator `frob`",
        ),
        (
            "(def (x 0))\n(when true (:= x (- 1 2 3)))",
            "2:18: error: `-` takes 2 operand(s), found 3",
        ),
        (
            "(def (x 0))\n(when true (:= x (+ (if true 1) 2)))",
            "2:21: error: `if` can only be the value of an assignment",
        ),
        (
            "(def (x 0))\n(when true (:= x (ewma 11 Ack.now)))",
            "2:24: error: `ewma` weight must be between 0 and 10",
        ),
        (
            "(def (x 0))\n(when true (:= x 4294967295))",
            "2:18: error: literal 4294967295 does not fit in a 32-bit immediate",
        ),
        (
            "(def (x 0) (x 1))\n(when true (:= x 1))",
            "1:13: error: `x` is declared twice",
        ),
        (
            "(def (Cwnd 0))\n(when true (:= Cwnd 1))",
            "1:7: error: `Cwnd` is a built-in name",
        ),
        (
            "(def (x 0))\n(when true (:= x @))",
            "2:18: error: unexpected character '@'",
        ),
        ("(def (x 0))", "a program needs at least one `(when"),
        (
            "(def (x 0))\n(when true (:= x y))",
            "2:18: error: undeclared name `y`",
        ),
        (
            "(def (x 0))\n(when true (:= Report.x 1))",
            "2:16: error: undeclared name `Report.x`",
        ),
        ("(def (x 0))\n(when true (:= __x 1))", "reserved"),
        (
            "(def (x 0))\n(when true (:= x (and 1 true)))",
            "2:23: error: type mismatch: `and` expects a boolean, found a number",
        ),
    ];
    for (src, want) in cases {
        let got = errors(src);
        assert!(
            got.iter().any(|e| e.contains(want)),
            "{src:?}: want {want:?}, got {got:?}"
        );
    }
    // Each level holds its left operand in a temporary while computing the right one.
    let mut e = String::from("x");
    for _ in 0..9 {
        e = format!("(+ (+ x 1) {e})");
    }
    let got = errors(&format!("(def (x 0))\n(when true (:= x {e}))"));
    assert!(got[0].contains("expression too deep"), "{got:?}");
    let deep = "(".repeat(100);
    assert!(errors(&deep)[0].contains("nested deeper than 64"));
    let long = format!("(def (x 0))\n(when true {})", "(:= x (+ x 1)) ".repeat(300));
    assert!(errors(&long)[0].contains("program too long"));
}

#[test]
fn locals_and_warnings() {
    let c = compile_with_warnings("(def (Report (volatile a 0)))\n(when true (:= t (+ Ack.bytes_acked 1)) (:= Report.a t) (:= unused 3))").unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0]
        .to_string()
        .contains("`unused` is assigned but never read"));
    assert!(matches!(c.program.reg_of("t"), Some(Reg::Local(0))));
    // A name differing from a built-in only in case is not silently a new local.
    assert!(
        errors("(def (x 0))\n(when true (:= cwnd 3) (:= x cwnd))")[0]
            .contains("differs from a known name only in case")
    );
}

#[test]
fn program_converts_to_and_from_the_wire_section() {
    for src in [RENO, AIMD, BBR] {
        let p = compile(src).unwrap();
        let section = quiver_ccp::wire::ProgramSection::from(&p);
        // The wire codec's program section encodes to exactly Program::encode's bytes.
        let mut bytes = Vec::new();
        section.encode(&mut bytes).unwrap();
        assert_eq!(bytes, p.encode());
        let back = Program::try_from(&section).unwrap();
        assert_eq!(back.instrs(), p.instrs());
        assert_eq!(back.events(), p.events());
    }
}
