//! portus 0.9 (the reference CCP agent) and this crate speak the same protocol: portus's
//! compiled programs and messages drive the Quiver datapath, and the datapath's
//! messages parse in portus.

use quiver_ccp::vm::{FlowState, Primitives, Program, Reg};
use quiver_ccp::wire::{Body, Create, Measure, Message};
use std::sync::Arc;

const PROG: &str = "
(def (Report (volatile acked 0) (volatile minrtt +infinity)) (target 0))
(when true
    (:= Report.acked (+ Report.acked Ack.bytes_acked))
    (:= Report.minrtt (min Report.minrtt Flow.rtt_sample_us))
    (fallthrough))
(when (> Micros 10000)
    (:= Cwnd target)
    (report)
    (:= Micros 0))
";

#[test]
fn portus_program_and_messages_drive_the_quiver_vm() {
    let (bin, scope) = portus::lang::compile(PROG.as_bytes(), &[]).expect("portus compiles");
    let install = portus::serialize::install::Msg {
        sid: 0,
        program_uid: scope.program_uid,
        num_events: bin.events.len() as u32,
        num_instrs: bin.instrs.len() as u32,
        instrs: bin,
    };
    let bytes = portus::serialize::serialize(&install).unwrap();

    // INSTALL_EXPR from portus → our codec → our VM's program decoder
    let msg = Message::decode(&bytes).expect("portus INSTALL decodes");
    let Body::Install(i) = msg.body else {
        panic!("not an install: {msg:?}")
    };
    assert_eq!(i.program_uid, scope.program_uid);
    let mut section = Vec::new();
    i.program.encode(&mut section).unwrap();
    assert_eq!(&section[..], &bytes[12..], "re-encoding is byte-identical");
    let program = Arc::new(Program::decode(&section).expect("VM accepts portus's program"));

    // CHANGE_PROG with an update of `target`, as portus's set_program sends it
    let target = scope
        .get("target")
        .expect("portus scope has target")
        .clone();
    let change = portus::serialize::changeprog::Msg {
        sid: 7,
        program_uid: scope.program_uid,
        num_fields: 1,
        fields: vec![(target, 50_000)],
    };
    let msg = Message::decode(&portus::serialize::serialize(&change).unwrap()).unwrap();
    assert_eq!(msg.sid, 7);
    let Body::ChangeProg(c) = msg.body else {
        panic!("not a change: {msg:?}")
    };
    assert_eq!(c.program_uid, scope.program_uid);

    let mut vm = FlowState::new(Arc::clone(&program), 0);
    for u in &c.updates {
        vm.stage_update(Reg::from_wire(u.reg_type, u.index).unwrap(), u.value)
            .unwrap();
    }
    // ACKs every 2 ms: the report fires after 10 ms with Cwnd = target
    let mut report = None;
    for k in 1..=6u64 {
        let p = Primitives {
            bytes_acked: 1000,
            rtt_sample_us: 20_000 - k,
            now_us: k * 2_000,
            cwnd: 12_000,
            ..Primitives::default()
        };
        let out = vm.on_event(&p).unwrap();
        if out.report {
            assert_eq!(out.cwnd, Some(50_000));
            report = Some(vm.last_report().to_vec());
            break;
        }
    }
    let fields = report.expect("a report within 12 ms");

    // our MEASURE parses in portus, and portus finds its fields by name
    let measure = Message::new(
        7,
        Body::Measure(Measure {
            program_uid: scope.program_uid,
            fields: fields.clone(),
        }),
    )
    .to_bytes()
    .unwrap();
    let (m, used) = portus::serialize::Msg::from_buf(&measure).expect("portus parses our MEASURE");
    assert_eq!(used, measure.len());
    let portus::serialize::Msg::Ms(m) = m else {
        panic!("portus saw another type")
    };
    assert_eq!(m.sid, 7);
    let field = |name: &str| match scope.get(name) {
        Some(portus::lang::Reg::Report(i, _, _)) => m.fields[usize::from(*i)],
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(field("Report.acked"), 6000);
    assert_eq!(field("Report.minrtt"), 20_000 - 6);

    // our CREATE parses in portus
    let create = Message::new(
        7,
        Body::Create(Create {
            init_cwnd: 12_000,
            mss: 1200,
            alg: "reno".into(),
            ..Create::default()
        }),
    )
    .to_bytes()
    .unwrap();
    let (m, _) = portus::serialize::Msg::from_buf(&create).expect("portus parses our CREATE");
    let portus::serialize::Msg::Cr(c) = m else {
        panic!("portus saw another type")
    };
    assert_eq!(
        (c.sid, c.init_cwnd, c.mss, c.cong_alg.as_deref()),
        (7, 12_000, 1200, Some("reno"))
    );
}
