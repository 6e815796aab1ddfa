//! A validator for qlog 0.3 JSON-SEQ files, written from the CDDL of
//! draft-ietf-quic-qlog-main-schema-05 (§6 `QlogFileSeq`/`TraceSeq`, §7 `Event`,
//! `RawInfo`) and draft-ietf-quic-qlog-quic-events-03 (the QUIC event data, the
//! `PacketHeader` and the frame definitions): the version qvis reads as "0.3".
//!
//! Event data maps are checked closed: a member not in the event's definition is an
//! error, so a misspelt field name fails, not only a missing one. Only the events and
//! frames this implementation emits are known; any other event name fails too.

#![allow(dead_code)]

use serde_json::{Map, Value};

/// Types of CDDL members used by the QUIC event definitions.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `uint8` … `uint64` with the given bit width.
    Uint(u32),
    /// `float32` / `float64`.
    Float,
    Text,
    /// `hexstring`: even-length lower-case hex (possibly empty).
    Hex,
    Bool,
    /// One of the listed strings.
    OneOf(&'static [&'static str]),
    /// `TransportError / CryptoError / uint32`.
    TransportCode,
    /// `IPAddress` (text or hexstring; any text).
    Ip,
    Header,
    Raw,
    Frames,
    /// `Token` (a map).
    Token,
}

/// (member, required, type)
type Members = &'static [(&'static str, bool, Ty)];

const PACKET_TYPES: &[&str] = &[
    "initial",
    "handshake",
    "0RTT",
    "1RTT",
    "retry",
    "version_negotiation",
    "stateless_reset",
    "unknown",
];
const CONNECTION_STATES: &[&str] = &[
    "attempted",
    "peer_validated",
    "handshake_started",
    "early_write",
    "handshake_complete",
    "handshake_confirmed",
    "closing",
    "draining",
    "closed",
];
const KEY_TYPES: &[&str] = &[
    "server_initial_secret",
    "client_initial_secret",
    "server_handshake_secret",
    "client_handshake_secret",
    "server_0rtt_secret",
    "client_0rtt_secret",
    "server_1rtt_secret",
    "client_1rtt_secret",
];
const TRANSPORT_ERRORS: &[&str] = &[
    "no_error",
    "internal_error",
    "connection_refused",
    "flow_control_error",
    "stream_limit_error",
    "stream_state_error",
    "final_size_error",
    "frame_encoding_error",
    "transport_parameter_error",
    "connection_id_limit_error",
    "protocol_violation",
    "invalid_token",
    "application_error",
    "crypto_buffer_exceeded",
];
const STREAM_TYPES: &[&str] = &["unidirectional", "bidirectional"];

const CONNECTION_STARTED: Members = &[
    ("ip_version", false, Ty::OneOf(&["v4", "v6"])),
    ("src_ip", true, Ty::Ip),
    ("dst_ip", true, Ty::Ip),
    ("protocol", false, Ty::Text),
    ("src_port", false, Ty::Uint(16)),
    ("dst_port", false, Ty::Uint(16)),
    ("src_cid", false, Ty::Hex),
    ("dst_cid", false, Ty::Hex),
];
const CONNECTION_CLOSED: Members = &[
    ("owner", false, Ty::OneOf(&["local", "remote"])),
    ("connection_code", false, Ty::TransportCode),
    ("application_code", false, Ty::Uint(32)),
    ("internal_code", false, Ty::Uint(32)),
    ("reason", false, Ty::Text),
    (
        "trigger",
        false,
        Ty::OneOf(&[
            "clean",
            "handshake_timeout",
            "idle_timeout",
            "error",
            "stateless_reset",
            "version_mismatch",
            "application",
        ]),
    ),
];
const CONNECTION_STATE_UPDATED: Members = &[
    ("old", false, Ty::OneOf(CONNECTION_STATES)),
    ("new", true, Ty::OneOf(CONNECTION_STATES)),
];
const PARAMETERS_SET: Members = &[
    ("owner", false, Ty::OneOf(&["local", "remote"])),
    ("resumption_allowed", false, Ty::Bool),
    ("early_data_enabled", false, Ty::Bool),
    ("tls_cipher", false, Ty::Text),
    ("aead_tag_length", false, Ty::Uint(8)),
    ("original_destination_connection_id", false, Ty::Hex),
    ("initial_source_connection_id", false, Ty::Hex),
    ("retry_source_connection_id", false, Ty::Hex),
    ("stateless_reset_token", false, Ty::Hex),
    ("disable_active_migration", false, Ty::Bool),
    ("max_idle_timeout", false, Ty::Uint(64)),
    ("max_udp_payload_size", false, Ty::Uint(32)),
    ("ack_delay_exponent", false, Ty::Uint(16)),
    ("max_ack_delay", false, Ty::Uint(16)),
    ("active_connection_id_limit", false, Ty::Uint(32)),
    ("initial_max_data", false, Ty::Uint(64)),
    ("initial_max_stream_data_bidi_local", false, Ty::Uint(64)),
    ("initial_max_stream_data_bidi_remote", false, Ty::Uint(64)),
    ("initial_max_stream_data_uni", false, Ty::Uint(64)),
    ("initial_max_streams_bidi", false, Ty::Uint(64)),
    ("initial_max_streams_uni", false, Ty::Uint(64)),
    // RFC 9221's parameter (defined by later drafts of the QUIC events).
    ("max_datagram_frame_size", false, Ty::Uint(64)),
];
const PACKET_SENT: Members = &[
    ("header", true, Ty::Header),
    ("frames", false, Ty::Frames),
    ("is_coalesced", false, Ty::Bool),
    ("raw", false, Ty::Raw),
    ("datagram_id", false, Ty::Uint(32)),
    ("is_mtu_probe_packet", false, Ty::Bool),
];
const PACKET_RECEIVED: Members = &[
    ("header", true, Ty::Header),
    ("frames", false, Ty::Frames),
    ("is_coalesced", false, Ty::Bool),
    ("raw", false, Ty::Raw),
    ("datagram_id", false, Ty::Uint(32)),
    ("trigger", false, Ty::OneOf(&["keys_available"])),
];
const PACKET_DROPPED: Members = &[
    ("header", false, Ty::Header),
    ("raw", false, Ty::Raw),
    ("datagram_id", false, Ty::Uint(32)),
    (
        "trigger",
        false,
        Ty::OneOf(&[
            "key_unavailable",
            "unknown_connection_id",
            "header_parse_error",
            "payload_decrypt_error",
            "protocol_violation",
            "dos_prevention",
            "unsupported_version",
            "unexpected_packet",
            "unexpected_source_connection_id",
            "unexpected_version",
            "duplicate",
            "invalid_initial",
        ]),
    ),
];
const METRICS_UPDATED: Members = &[
    ("min_rtt", false, Ty::Float),
    ("smoothed_rtt", false, Ty::Float),
    ("latest_rtt", false, Ty::Float),
    ("rtt_variance", false, Ty::Float),
    ("pto_count", false, Ty::Uint(16)),
    ("congestion_window", false, Ty::Uint(64)),
    ("bytes_in_flight", false, Ty::Uint(64)),
    ("ssthresh", false, Ty::Uint(64)),
    ("packets_in_flight", false, Ty::Uint(64)),
    ("pacing_rate", false, Ty::Uint(64)),
];
const CONGESTION_STATE_UPDATED: Members = &[
    ("old", false, Ty::Text),
    ("new", true, Ty::Text),
    (
        "trigger",
        false,
        Ty::OneOf(&["persistent_congestion", "ECN"]),
    ),
];
const PACKET_LOST: Members = &[
    ("header", false, Ty::Header),
    ("frames", false, Ty::Frames),
    ("is_mtu_probe_packet", false, Ty::Bool),
    (
        "trigger",
        false,
        Ty::OneOf(&["reordering_threshold", "time_threshold", "pto_expired"]),
    ),
];
const KEY_UPDATED: Members = &[
    ("key_type", true, Ty::OneOf(KEY_TYPES)),
    ("old", false, Ty::Hex),
    ("new", true, Ty::Hex),
    ("generation", false, Ty::Uint(32)),
    (
        "trigger",
        false,
        Ty::OneOf(&["tls", "remote_update", "local_update"]),
    ),
];

const PACKET_HEADER: Members = &[
    ("packet_type", true, Ty::OneOf(PACKET_TYPES)),
    ("packet_number", false, Ty::Uint(64)),
    ("flags", false, Ty::Uint(8)),
    ("token", false, Ty::Token),
    ("length", false, Ty::Uint(16)),
    ("version", false, Ty::Hex),
    ("scil", false, Ty::Uint(8)),
    ("dcil", false, Ty::Uint(8)),
    ("scid", false, Ty::Hex),
    ("dcid", false, Ty::Hex),
];
const RAW_INFO: Members = &[
    ("length", false, Ty::Uint(64)),
    ("payload_length", false, Ty::Uint(64)),
    ("data", false, Ty::Hex),
];
const TOKEN: Members = &[
    ("type", false, Ty::OneOf(&["retry", "resumption"])),
    ("length", false, Ty::Uint(32)),
    ("data", false, Ty::Hex),
];

/// The definition of the data of event `name`.
fn event_members(name: &str) -> Option<Members> {
    Some(match name {
        "connectivity:connection_started" => CONNECTION_STARTED,
        "connectivity:connection_closed" => CONNECTION_CLOSED,
        "connectivity:connection_state_updated" => CONNECTION_STATE_UPDATED,
        "transport:parameters_set" => PARAMETERS_SET,
        "transport:packet_sent" => PACKET_SENT,
        "transport:packet_received" => PACKET_RECEIVED,
        "transport:packet_dropped" => PACKET_DROPPED,
        "recovery:metrics_updated" => METRICS_UPDATED,
        "recovery:congestion_state_updated" => CONGESTION_STATE_UPDATED,
        "recovery:packet_lost" => PACKET_LOST,
        "security:key_updated" => KEY_UPDATED,
        _ => return None,
    })
}

/// The definition of a frame by its `frame_type` (the `frame_type` member excluded).
fn frame_members(frame_type: &str) -> Option<Members> {
    const LEN: (&str, bool, Ty) = ("length", false, Ty::Uint(32));
    const PLEN: (&str, bool, Ty) = ("payload_length", false, Ty::Uint(32));
    Some(match frame_type {
        "padding" => &[LEN, ("payload_length", true, Ty::Uint(32))],
        "ping" => &[LEN, PLEN],
        "ack" => &[
            ("ack_delay", false, Ty::Float),
            ("acked_ranges", false, Ty::Frames), // checked separately
            ("ect1", false, Ty::Uint(64)),
            ("ect0", false, Ty::Uint(64)),
            ("ce", false, Ty::Uint(64)),
            LEN,
            PLEN,
        ],
        "reset_stream" => &[
            ("stream_id", true, Ty::Uint(64)),
            ("error_code", true, Ty::Uint(32)),
            ("final_size", true, Ty::Uint(64)),
            LEN,
            PLEN,
        ],
        "stop_sending" => &[
            ("stream_id", true, Ty::Uint(64)),
            ("error_code", true, Ty::Uint(32)),
            LEN,
            PLEN,
        ],
        "crypto" => &[
            ("offset", true, Ty::Uint(64)),
            ("length", true, Ty::Uint(64)),
            PLEN,
        ],
        "new_token" => &[("token", true, Ty::Token)],
        "stream" => &[
            ("stream_id", true, Ty::Uint(64)),
            ("offset", true, Ty::Uint(64)),
            ("length", true, Ty::Uint(64)),
            ("fin", false, Ty::Bool),
            ("raw", false, Ty::Hex),
        ],
        "max_data" => &[("maximum", true, Ty::Uint(64))],
        "max_stream_data" => &[
            ("stream_id", true, Ty::Uint(64)),
            ("maximum", true, Ty::Uint(64)),
        ],
        "max_streams" => &[
            ("stream_type", true, Ty::OneOf(STREAM_TYPES)),
            ("maximum", true, Ty::Uint(64)),
        ],
        "data_blocked" => &[("limit", true, Ty::Uint(64))],
        "stream_data_blocked" => &[
            ("stream_id", true, Ty::Uint(64)),
            ("limit", true, Ty::Uint(64)),
        ],
        "streams_blocked" => &[
            ("stream_type", true, Ty::OneOf(STREAM_TYPES)),
            ("limit", true, Ty::Uint(64)),
        ],
        "new_connection_id" => &[
            ("sequence_number", true, Ty::Uint(32)),
            ("retire_prior_to", true, Ty::Uint(32)),
            ("connection_id_length", false, Ty::Uint(8)),
            ("connection_id", true, Ty::Hex),
            ("stateless_reset_token", false, Ty::Hex),
        ],
        "retire_connection_id" => &[("sequence_number", true, Ty::Uint(32))],
        "path_challenge" | "path_response" => &[("data", false, Ty::Hex)],
        "connection_close" => &[
            (
                "error_space",
                false,
                Ty::OneOf(&["transport", "application"]),
            ),
            ("error_code", false, Ty::TransportCode),
            ("raw_error_code", false, Ty::Uint(32)),
            ("reason", false, Ty::Text),
            ("trigger_frame_type", false, Ty::Uint(64)),
        ],
        "handshake_done" => &[],
        // RFC 9221 DATAGRAM, as in later drafts of the QUIC events.
        "datagram" => &[("length", false, Ty::Uint(64)), ("raw", false, Ty::Raw)],
        _ => return None,
    })
}

fn is_hex(s: &str) -> bool {
    s.len().is_multiple_of(2)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_value(path: &str, v: &Value, ty: Ty) -> Result<(), String> {
    let bad = || Err(format!("{path}: {v} is not a {ty:?}"));
    match ty {
        Ty::Uint(bits) => match v.as_u64() {
            Some(n) if bits == 64 || n < (1u64 << bits) => Ok(()),
            _ => bad(),
        },
        Ty::Float => match v.as_f64() {
            Some(f) if f.is_finite() => Ok(()),
            _ => bad(),
        },
        Ty::Text | Ty::Ip => v.as_str().map(|_| ()).ok_or(()).or_else(|_| bad()),
        Ty::Hex => match v.as_str() {
            Some(s) if is_hex(s) => Ok(()),
            _ => bad(),
        },
        Ty::Bool => v.as_bool().map(|_| ()).ok_or(()).or_else(|_| bad()),
        Ty::OneOf(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => bad(),
        },
        Ty::TransportCode => match v {
            Value::String(s) if TRANSPORT_ERRORS.contains(&s.as_str()) => Ok(()),
            Value::String(s)
                if s.len() == 18 && s.starts_with("crypto_error_0x1") && is_hex(&s[16..]) =>
            {
                Ok(())
            }
            Value::Number(n) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => Ok(()),
            _ => bad(),
        },
        Ty::Header => check_map(path, v, PACKET_HEADER),
        Ty::Raw => check_map(path, v, RAW_INFO),
        Ty::Token => check_map(path, v, TOKEN),
        Ty::Frames => {
            let Some(frames) = v.as_array() else {
                return bad();
            };
            for (i, f) in frames.iter().enumerate() {
                check_frame(&format!("{path}[{i}]"), f)?;
            }
            Ok(())
        }
    }
}

fn check_map(path: &str, v: &Value, members: Members) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err(format!("{path}: not a map: {v}"));
    };
    check_members(path, map, members, &[])
}

fn check_members(
    path: &str,
    map: &Map<String, Value>,
    members: Members,
    skip: &[&str],
) -> Result<(), String> {
    for (name, required, _) in members {
        if *required && !map.contains_key(*name) {
            return Err(format!("{path}: required member {name} missing"));
        }
    }
    for (key, value) in map {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let Some((_, _, ty)) = members.iter().find(|(n, _, _)| n == key) else {
            return Err(format!("{path}: member {key} is not defined"));
        };
        check_value(&format!("{path}.{key}"), value, *ty)?;
    }
    Ok(())
}

fn check_frame(path: &str, f: &Value) -> Result<(), String> {
    let map = f.as_object().ok_or(format!("{path}: frame is not a map"))?;
    let ty = map
        .get("frame_type")
        .and_then(Value::as_str)
        .ok_or(format!("{path}: frame_type missing"))?;
    let members = frame_members(ty).ok_or(format!("{path}: unknown frame_type {ty}"))?;
    check_members(path, map, members, &["frame_type", "acked_ranges"])?;
    if ty == "ack" {
        // AckRange = [1*2 uint64], from <= to.
        if let Some(ranges) = map.get("acked_ranges") {
            let ranges = ranges.as_array().ok_or(format!("{path}: acked_ranges"))?;
            if ranges.is_empty() {
                return Err(format!("{path}: acked_ranges is [+ AckRange]"));
            }
            for r in ranges {
                let nums: Vec<u64> = r
                    .as_array()
                    .ok_or(format!("{path}: AckRange {r}"))?
                    .iter()
                    .map(|n| n.as_u64().ok_or(format!("{path}: AckRange {r}")))
                    .collect::<Result<_, _>>()?;
                match nums[..] {
                    [_] => {}
                    [a, b] if a <= b => {}
                    _ => return Err(format!("{path}: AckRange {r}")),
                }
            }
        }
    }
    Ok(())
}

/// Summary of a validated file.
#[derive(Debug, Default)]
pub struct Trace {
    /// The header record.
    pub header: Value,
    /// Every event record, in file order.
    pub events: Vec<Value>,
}

impl Trace {
    /// Events named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["name"] == name)
    }
}

/// Validate a qlog 0.3 JSON-SEQ file; returns its records.
pub fn validate(bytes: &[u8]) -> Result<Trace, String> {
    // RFC 7464: every record is RS, a JSON text, LF.
    if bytes.first() != Some(&0x1e) {
        return Err("the file does not start with a record separator".into());
    }
    let mut records = Vec::new();
    for (i, r) in bytes.split(|b| *b == 0x1e).skip(1).enumerate() {
        if r.last() != Some(&b'\n') {
            return Err(format!("record {i} does not end with a line feed"));
        }
        let v: Value =
            serde_json::from_slice(r).map_err(|e| format!("record {i} is not JSON: {e}"))?;
        records.push(v);
    }
    let mut it = records.into_iter();
    let header = it.next().ok_or("empty file")?;
    check_header(&header)?;
    let mut last = 0.0;
    let mut events = Vec::new();
    for (i, e) in it.enumerate() {
        let path = format!("event {i}");
        let map = e.as_object().ok_or(format!("{path}: not a map"))?;
        let time = map
            .get("time")
            .and_then(Value::as_f64)
            .ok_or(format!("{path}: time (float64) missing"))?;
        // Relative time: milliseconds since reference_time, never going back.
        if time < last {
            return Err(format!("{path}: time {time} before {last}"));
        }
        last = time;
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .ok_or(format!("{path}: name missing"))?;
        let data = map.get("data").ok_or(format!("{path}: data missing"))?;
        let members = event_members(name).ok_or(format!("{path}: unknown event {name}"))?;
        check_map(&format!("{path} ({name}).data"), data, members)?;
        for key in map.keys() {
            if !["time", "name", "data"].contains(&key.as_str()) {
                return Err(format!("{path}: unexpected member {key}"));
            }
        }
        events.push(e);
    }
    Ok(Trace { header, events })
}

fn check_header(h: &Value) -> Result<(), String> {
    let bad = |m: &str| Err(format!("header: {m} in {h}"));
    if h["qlog_format"] != "JSON-SEQ" {
        return bad("qlog_format is not JSON-SEQ");
    }
    if h["qlog_version"] != "0.3" {
        return bad("qlog_version is not 0.3");
    }
    for key in ["title", "description"] {
        if !h[key].is_null() && !h[key].is_string() {
            return bad(key);
        }
    }
    let trace = &h["trace"];
    if !trace.is_object() {
        return bad("trace (TraceSeq) missing");
    }
    if trace.get("events").is_some() {
        return bad("a JSON-SEQ trace carries no events array");
    }
    let vp = &trace["vantage_point"];
    let vp_type = vp["type"].as_str().unwrap_or("");
    if !["client", "server", "network", "unknown"].contains(&vp_type) {
        return bad("vantage_point.type");
    }
    let common = &trace["common_fields"];
    match common["time_format"].as_str() {
        Some("relative") => {}
        _ => return bad("common_fields.time_format is not relative"),
    }
    if common["reference_time"].as_f64().is_none() {
        return bad("common_fields.reference_time (float64) missing");
    }
    if !common["ODCID"].as_str().is_some_and(is_hex) {
        return bad("common_fields.ODCID");
    }
    if !common["protocol_type"].is_null()
        && !common["protocol_type"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
    {
        return bad("common_fields.protocol_type");
    }
    Ok(())
}

/// Packets of a trace's `event` ("transport:packet_sent"/"…_received") as
/// (packet_type, packet_number) → raw length.
pub fn packets(trace: &Trace, event: &str) -> std::collections::BTreeMap<(String, u64), u64> {
    trace
        .named(event)
        .map(|e| {
            let h = &e["data"]["header"];
            (
                (
                    h["packet_type"].as_str().unwrap().to_string(),
                    h["packet_number"].as_u64().unwrap(),
                ),
                e["data"]["raw"]["length"].as_u64().unwrap(),
            )
        })
        .collect()
}
