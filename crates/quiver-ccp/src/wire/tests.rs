use super::*;
use proptest::prelude::*;

fn arb_update() -> impl Strategy<Value = Update> {
    (
        prop_oneof![Just(0u8), Just(2u8), Just(8u8)],
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(reg_type, index, value)| Update {
            reg_type,
            index,
            value,
        })
}

fn arb_program() -> impl Strategy<Value = ProgramSection> {
    (0usize..20).prop_flat_map(|ni| {
        let n = ni as u32;
        let expr = (0..=n, 0..=n).prop_flat_map(move |(cs, es)| {
            (Just(cs), 0..=(n - cs), Just(es), 0..=(n - es)).prop_map(
                |(cond_start, num_cond, event_start, num_event)| Expression {
                    cond_start,
                    num_cond,
                    event_start,
                    num_event,
                },
            )
        });
        let operand = (any::<u8>(), any::<u32>()).prop_map(|(typ, index)| Operand { typ, index });
        let instr = (any::<u8>(), operand.clone(), operand.clone(), operand).prop_map(
            |(op, result, left, right)| Instruction {
                op,
                result,
                left,
                right,
            },
        );
        (
            prop::collection::vec(expr, 0..8),
            prop::collection::vec(instr, ni..=ni),
        )
            .prop_map(|(expressions, instructions)| ProgramSection {
                expressions,
                instructions,
            })
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let create = (any::<[u32; 6]>(), "[a-z0-9_-]{0,63}").prop_map(|(v, alg)| {
        Body::Create(Create {
            init_cwnd: v[0],
            mss: v[1],
            src_ip: v[2],
            src_port: v[3],
            dst_ip: v[4],
            dst_port: v[5],
            alg,
        })
    });
    let measure = (
        any::<u32>(),
        prop::collection::vec(any::<u64>(), 0..=MAX_REPORT_FIELDS),
    )
        .prop_map(|(program_uid, fields)| {
            Body::Measure(Measure {
                program_uid,
                fields,
            })
        });
    let install = (any::<u32>(), arb_program()).prop_map(|(program_uid, program)| {
        Body::Install(Install {
            program_uid,
            program,
        })
    });
    let update = prop::collection::vec(arb_update(), 0..40)
        .prop_map(|updates| Body::UpdateFields(UpdateFields { updates }));
    let change = (any::<u32>(), prop::collection::vec(arb_update(), 0..40)).prop_map(
        |(program_uid, updates)| {
            Body::ChangeProg(ChangeProg {
                program_uid,
                updates,
            })
        },
    );
    let ready = any::<u32>().prop_map(|id| Body::Ready(Ready { id }));
    let unknown = (6u16.., prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(typ, bytes)| Body::Unknown { typ, bytes });
    (
        any::<u32>(),
        prop_oneof![create, measure, install, update, change, ready, unknown],
    )
        .prop_map(|(sid, body)| Message { sid, body })
}

proptest! {
    #[test]
    fn round_trip(m in arb_message()) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(usize::from(u16::from_le_bytes([bytes[2], bytes[3]])), bytes.len());
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::decode(&bytes) {
            // whatever decodes re-encodes and decodes to the same message
            prop_assert_eq!(Message::decode(&m.to_bytes().unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn truncation_is_an_error(m in arb_message(), cut in 1usize..64) {
        let bytes = m.to_bytes().unwrap();
        let cut = cut.min(bytes.len());
        prop_assert!(Message::decode(&bytes[..bytes.len() - cut]).is_err());
    }
}

/// libccp's own byte layout, written out by hand from serialize.h.
#[test]
fn golden_layouts() {
    let ready = Message::new(0, Body::Ready(Ready { id: 7 }))
        .to_bytes()
        .unwrap();
    assert_eq!(ready, [5, 0, 12, 0, 0, 0, 0, 0, 7, 0, 0, 0]);

    let create = Message::new(
        3,
        Body::Create(Create {
            init_cwnd: 14_720,
            mss: 1472,
            alg: "reno".into(),
            ..Default::default()
        }),
    )
    .to_bytes()
    .unwrap();
    assert_eq!(create.len(), 96); // libccp CREATE_MSG_SIZE
    assert_eq!(&create[..8], &[0, 0, 96, 0, 3, 0, 0, 0]);
    assert_eq!(&create[8..12], &14_720u32.to_le_bytes());
    assert_eq!(&create[32..37], b"reno\0");

    let measure = Message::new(
        1,
        Body::Measure(Measure {
            program_uid: 2,
            fields: vec![9, 10],
        }),
    )
    .to_bytes()
    .unwrap();
    assert_eq!(measure.len(), 8 + 8 + 16);
    assert_eq!(&measure[8..16], &[2, 0, 0, 0, 2, 0, 0, 0]);

    let upd = Message::new(
        1,
        Body::UpdateFields(UpdateFields {
            updates: vec![Update::cwnd(5000)],
        }),
    )
    .to_bytes()
    .unwrap();
    assert_eq!(upd.len(), 8 + 4 + 13);
    assert_eq!(&upd[12..17], &[2, 4, 0, 0, 0]);

    let install = Message::new(
        0,
        Body::Install(Install {
            program_uid: 1,
            program: ProgramSection {
                expressions: vec![Expression {
                    cond_start: 0,
                    num_cond: 1,
                    event_start: 1,
                    num_event: 1,
                }],
                instructions: vec![Instruction::default(); 2],
            },
        }),
    )
    .to_bytes()
    .unwrap();
    assert_eq!(install.len(), 8 + 12 + 16 + 2 * 16);
}

#[test]
fn limits_and_bad_values_are_typed_errors() {
    // header length smaller than the header
    assert!(matches!(
        Message::decode(&[5, 0, 4, 0, 0, 0, 0, 0]),
        Err(DecodeError::LengthMismatch { .. })
    ));
    // MEASURE claiming 111 fields
    let mut m = vec![1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&111u32.to_le_bytes());
    assert!(matches!(
        Message::decode(&m),
        Err(DecodeError::TooMany { .. })
    ));
    // UPDATE of a primitive register
    let mut u = Message::new(
        1,
        Body::UpdateFields(UpdateFields {
            updates: vec![Update::cwnd(1)],
        }),
    )
    .to_bytes()
    .unwrap();
    u[12] = reg_type::PRIMITIVE;
    assert_eq!(Message::decode(&u), Err(DecodeError::BadUpdateRegister(4)));
    // an expression pointing past the instructions
    let mut p = Vec::new();
    ProgramSection {
        expressions: vec![Expression {
            cond_start: 0,
            num_cond: 1,
            event_start: 0,
            num_event: 1,
        }],
        instructions: vec![Instruction::default()],
    }
    .encode(&mut p)
    .unwrap();
    p[12] = 2; // num_cond = 2 > 1 instruction
    assert!(matches!(
        ProgramSection::decode(&p),
        Err(DecodeError::BadProgram(_))
    ));
    // encode refuses values the wire cannot hold
    let long = Message::new(
        0,
        Body::Create(Create {
            alg: "x".repeat(64),
            ..Default::default()
        }),
    );
    assert_eq!(long.to_bytes(), Err(EncodeError::BadAlgName));
    let many = Message::new(
        0,
        Body::Measure(Measure {
            program_uid: 0,
            fields: vec![0; 111],
        }),
    );
    assert!(many.to_bytes().is_err());
}

/// A seeded fuzz pass: mutate valid messages (bit flips, byte sets, truncation,
/// extension, length-field rewrites) and decode; nothing may panic, and whatever
/// decodes must re-encode to the same bytes.
#[test]
fn seeded_fuzz_mutations() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let corpus: Vec<Vec<u8>> = vec![
        Message::new(
            1,
            Body::Create(Create {
                alg: "cubic".into(),
                ..Default::default()
            }),
        ),
        Message::new(
            1,
            Body::Measure(Measure {
                program_uid: 3,
                fields: vec![1, 2, 3],
            }),
        ),
        Message::new(
            0,
            Body::Install(Install {
                program_uid: 1,
                program: ProgramSection {
                    expressions: vec![Expression {
                        cond_start: 0,
                        num_cond: 1,
                        event_start: 1,
                        num_event: 2,
                    }],
                    instructions: vec![Instruction::default(); 3],
                },
            }),
        ),
        Message::new(
            1,
            Body::UpdateFields(UpdateFields {
                updates: vec![Update::rate(9), Update::control(0, 1)],
            }),
        ),
        Message::new(
            1,
            Body::ChangeProg(ChangeProg {
                program_uid: 1,
                updates: vec![Update::cwnd(3)],
            }),
        ),
        Message::new(0, Body::Ready(Ready { id: 1 })),
    ]
    .into_iter()
    .map(|m| m.to_bytes().unwrap())
    .collect();
    let mut decoded = 0;
    for _ in 0..50_000 {
        let mut b = corpus[(next() % corpus.len() as u64) as usize].clone();
        for _ in 0..=(next() % 4) {
            let len = b.len().max(1);
            match next() % 6 {
                0 => {
                    let i = (next() as usize) % len;
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << (next() % 8);
                    }
                }
                1 => {
                    let i = (next() as usize) % len;
                    if let Some(x) = b.get_mut(i) {
                        *x = next() as u8;
                    }
                }
                2 => b.truncate((next() as usize) % len),
                3 => b.extend((0..next() % 20).map(|_| next() as u8)),
                4 if b.len() >= 4 => {
                    let l = (next() % 300) as u16;
                    b[2..4].copy_from_slice(&l.to_le_bytes());
                }
                _ if b.len() >= 12 => {
                    let c = (next() % 300) as u32;
                    b[8..12].copy_from_slice(&c.to_le_bytes());
                }
                _ => {}
            }
        }
        if let Ok(m) = Message::decode(&b) {
            decoded += 1;
            let again = m.to_bytes().unwrap();
            assert_eq!(Message::decode(&again).unwrap(), m);
            if !matches!(m.body, Body::Create(_)) {
                // only CREATE has bytes (after the name's NUL) that do not round-trip
                assert_eq!(again, b);
            }
        }
    }
    assert!(
        decoded > 1000,
        "the mutator should leave many messages valid: {decoded}"
    );
}
