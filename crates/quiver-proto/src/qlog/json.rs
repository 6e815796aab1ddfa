//! qlog 0.3 JSON-SEQ serialisation (draft-ietf-quic-qlog-main-schema §6, RFC 7464).

use super::{
    CloseTrigger, ConnectionInfo, Event, EventSubscriber, FrameInfo, KeyUpdateTrigger, LossTrigger,
    Metrics, Owner, PacketHeader,
};
use crate::shared::{Dir, Side};
use crate::transport_params::TransportParameters;
use crate::TransportErrorCode;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// ASCII Record Separator, which starts every JSON-SEQ record (RFC 7464 §2.2).
const RS: u8 = 0x1e;

/// An [`EventSubscriber`] that writes one connection's events as a qlog 0.3 JSON-SEQ
/// trace to `W` (see the [module docs](super)).
///
/// The first record is the header (`qlog_version`, `qlog_format`, and a `trace` with
/// `common_fields` — `ODCID`, `time_format: "relative"`, `reference_time` — and the
/// `vantage_point`); every event follows as `{"time", "name", "data"}` with `time` in
/// milliseconds since the connection was created. Write errors stop the trace (the
/// first one is kept, see [`JsonSeqWriter::error`]); they never reach the connection.
/// The writer flushes `W` after connection state changes and the close, so a buffered
/// file is complete once the connection ended.
pub struct JsonSeqWriter<W: Write> {
    out: W,
    start: Instant,
    error: Option<io::Error>,
    line: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for JsonSeqWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSeqWriter")
            .field("start", &self.start)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<W: Write> JsonSeqWriter<W> {
    /// Start a trace for the connection `info` and write its header record.
    ///
    /// `reference_time_ms` is the wall-clock time of `info.created` in milliseconds
    /// since the Unix epoch (the caller reads the clock; this crate does not); `title`
    /// names the trace.
    pub fn new(
        mut out: W,
        info: &ConnectionInfo,
        reference_time_ms: f64,
        title: &str,
    ) -> io::Result<Self> {
        let odcid = hex(info.odcid.as_bytes());
        let vantage = match info.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        let header = json!({
            "qlog_version": "0.3",
            "qlog_format": "JSON-SEQ",
            "title": title,
            "description": "quiver connection trace",
            "trace": {
                "title": format!("{vantage} {odcid}"),
                "common_fields": {
                    "ODCID": odcid,
                    "group_id": odcid,
                    "protocol_type": ["QUIC"],
                    "time_format": "relative",
                    "reference_time": reference_time_ms,
                },
                "vantage_point": { "name": "quiver", "type": vantage },
            },
        });
        let mut line = Vec::with_capacity(512);
        record(&mut line, &header)?;
        out.write_all(&line)?;
        out.flush()?;
        Ok(Self {
            out,
            start: info.created,
            error: None,
            line,
        })
    }

    /// Write one event record.
    pub fn write_event(&mut self, time: Instant, event: &Event) -> io::Result<()> {
        let ms = time.saturating_duration_since(self.start).as_secs_f64() * 1000.0;
        let value = json!({
            "time": ms,
            "name": event.name(),
            "data": event_data(event),
        });
        self.line.clear();
        record(&mut self.line, &value)?;
        self.out.write_all(&self.line)?;
        if matches!(
            event,
            Event::ConnectionClosed(_) | Event::ConnectionStateUpdated { .. }
        ) {
            self.out.flush()?;
        }
        Ok(())
    }

    /// The first write error, after which nothing more was written.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The underlying writer (flushed).
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Send> EventSubscriber for JsonSeqWriter<W> {
    fn on_event(&mut self, time: Instant, event: &Event) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.write_event(time, event) {
            tracing::warn!(%e, "qlog trace stopped");
            self.error = Some(e);
        }
    }
}

/// One JSON-SEQ record: RS, the JSON text, LF.
fn record(buf: &mut Vec<u8>, value: &Value) -> io::Result<()> {
    buf.push(RS);
    serde_json::to_writer(&mut *buf, value).map_err(io::Error::other)?;
    buf.push(b'\n');
    Ok(())
}

/// Lower-case hex, qlog's `hexstring`.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn owner(o: Owner) -> &'static str {
    match o {
        Owner::Local => "local",
        Owner::Remote => "remote",
    }
}

fn stream_type(dir: Dir) -> &'static str {
    match dir {
        Dir::Bi => "bidirectional",
        Dir::Uni => "unidirectional",
    }
}

/// qlog `TransportError` / `CryptoError` spelling, or the number for unknown codes.
fn transport_code(code: TransportErrorCode) -> Value {
    if (0x100..0x200).contains(&code.0) {
        return Value::from(format!("crypto_error_{:#x}", code.0));
    }
    match code.name() {
        Some(name) if code.0 <= 0xd => Value::from(name.to_ascii_lowercase()),
        _ => Value::from(code.0),
    }
}

fn header(h: &PacketHeader) -> Value {
    let mut m = Map::new();
    m.insert("packet_type".into(), h.packet_type.as_str().into());
    if let Some(pn) = h.packet_number {
        m.insert("packet_number".into(), pn.into());
    }
    if let Some(v) = h.version {
        m.insert("version".into(), format!("{v:08x}").into());
    }
    if let Some(c) = &h.scid {
        m.insert("scil".into(), c.len().into());
        m.insert("scid".into(), hex(c.as_bytes()).into());
    }
    if let Some(c) = &h.dcid {
        m.insert("dcil".into(), c.len().into());
        m.insert("dcid".into(), hex(c.as_bytes()).into());
    }
    Value::Object(m)
}

fn ack_json(
    name: &str,
    ack_delay: std::time::Duration,
    acked_ranges: &[(u64, u64)],
    ecn: Option<(u64, u64, u64)>,
) -> Value {
    let ranges: Vec<Value> = acked_ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                json!([lo])
            } else {
                json!([lo, hi])
            }
        })
        .collect();
    let mut v = json!({
        "frame_type": name,
        "ack_delay": ms(ack_delay),
        "acked_ranges": ranges,
    });
    if let Some((ect0, ect1, ce)) = ecn {
        v["ect0"] = ect0.into();
        v["ect1"] = ect1.into();
        v["ce"] = ce.into();
    }
    v
}

fn frame(f: &FrameInfo) -> Value {
    match f {
        FrameInfo::Padding { length } => {
            json!({"frame_type": "padding", "length": length, "payload_length": length})
        }
        FrameInfo::Ping => json!({"frame_type": "ping"}),
        FrameInfo::Ack {
            ack_delay,
            acked_ranges,
            ecn,
        } => ack_json("ack", *ack_delay, acked_ranges, *ecn),
        FrameInfo::PathAck {
            path_id,
            ack_delay,
            acked_ranges,
            ecn,
        } => {
            let mut v = ack_json("path_ack", *ack_delay, acked_ranges, *ecn);
            v["path_id"] = (*path_id).into();
            v
        }
        FrameInfo::PathAbandon {
            path_id,
            error_code,
        } => json!({"frame_type": "path_abandon", "path_id": path_id, "error_code": error_code}),
        FrameInfo::PathStatus {
            path_id,
            sequence_number,
            available,
        } => json!({
            "frame_type": if *available { "path_status_available" } else { "path_status_backup" },
            "path_id": path_id,
            "path_status_sequence_number": sequence_number,
        }),
        FrameInfo::PathNewConnectionId {
            path_id,
            sequence_number,
            retire_prior_to,
            connection_id,
            stateless_reset_token,
        } => json!({
            "frame_type": "path_new_connection_id",
            "path_id": path_id,
            "sequence_number": sequence_number,
            "retire_prior_to": retire_prior_to,
            "connection_id_length": connection_id.len(),
            "connection_id": hex(connection_id.as_bytes()),
            "stateless_reset_token": hex(&stateless_reset_token.0),
        }),
        FrameInfo::PathRetireConnectionId {
            path_id,
            sequence_number,
        } => json!({
            "frame_type": "path_retire_connection_id",
            "path_id": path_id,
            "sequence_number": sequence_number,
        }),
        FrameInfo::MaxPathId { maximum } => {
            json!({"frame_type": "max_path_id", "maximum_path_id": maximum})
        }
        FrameInfo::PathsBlocked { limit } => {
            json!({"frame_type": "paths_blocked", "maximum_path_id": limit})
        }
        FrameInfo::PathCidsBlocked {
            path_id,
            next_sequence_number,
        } => json!({
            "frame_type": "path_cids_blocked",
            "path_id": path_id,
            "next_sequence_number": next_sequence_number,
        }),
        FrameInfo::ResetStream {
            stream_id,
            error_code,
            final_size,
        } => json!({
            "frame_type": "reset_stream",
            "stream_id": stream_id,
            "error_code": error_code,
            "final_size": final_size,
        }),
        FrameInfo::StopSending {
            stream_id,
            error_code,
        } => {
            json!({"frame_type": "stop_sending", "stream_id": stream_id, "error_code": error_code})
        }
        FrameInfo::Crypto { offset, length } => {
            json!({"frame_type": "crypto", "offset": offset, "length": length})
        }
        FrameInfo::NewToken { length } => {
            json!({"frame_type": "new_token", "token": {"length": length}})
        }
        FrameInfo::Stream {
            stream_id,
            offset,
            length,
            fin,
        } => {
            let mut v = json!({
                "frame_type": "stream",
                "stream_id": stream_id,
                "offset": offset,
                "length": length,
            });
            if *fin {
                v["fin"] = true.into();
            }
            v
        }
        FrameInfo::MaxData { maximum } => json!({"frame_type": "max_data", "maximum": maximum}),
        FrameInfo::MaxStreamData { stream_id, maximum } => {
            json!({"frame_type": "max_stream_data", "stream_id": stream_id, "maximum": maximum})
        }
        FrameInfo::MaxStreams { dir, maximum } => {
            json!({"frame_type": "max_streams", "stream_type": stream_type(*dir), "maximum": maximum})
        }
        FrameInfo::DataBlocked { limit } => json!({"frame_type": "data_blocked", "limit": limit}),
        FrameInfo::StreamDataBlocked { stream_id, limit } => {
            json!({"frame_type": "stream_data_blocked", "stream_id": stream_id, "limit": limit})
        }
        FrameInfo::StreamsBlocked { dir, limit } => {
            json!({"frame_type": "streams_blocked", "stream_type": stream_type(*dir), "limit": limit})
        }
        FrameInfo::NewConnectionId {
            sequence_number,
            retire_prior_to,
            connection_id,
            stateless_reset_token,
        } => json!({
            "frame_type": "new_connection_id",
            "sequence_number": sequence_number,
            "retire_prior_to": retire_prior_to,
            "connection_id_length": connection_id.len(),
            "connection_id": hex(connection_id.as_bytes()),
            "stateless_reset_token": hex(&stateless_reset_token.0),
        }),
        FrameInfo::RetireConnectionId { sequence_number } => {
            json!({"frame_type": "retire_connection_id", "sequence_number": sequence_number})
        }
        FrameInfo::PathChallenge { data } => {
            json!({"frame_type": "path_challenge", "data": hex(data)})
        }
        FrameInfo::PathResponse { data } => {
            json!({"frame_type": "path_response", "data": hex(data)})
        }
        FrameInfo::ConnectionClose {
            application,
            error_code,
            trigger_frame_type,
            reason,
        } => {
            let mut v = json!({
                "frame_type": "connection_close",
                "error_space": if *application { "application" } else { "transport" },
                "error_code": if *application {
                    Value::from(*error_code)
                } else {
                    transport_code(TransportErrorCode(*error_code))
                },
                "raw_error_code": error_code,
                "reason": reason,
            });
            if let Some(t) = trigger_frame_type {
                v["trigger_frame_type"] = (*t).into();
            }
            v
        }
        FrameInfo::HandshakeDone => json!({"frame_type": "handshake_done"}),
        FrameInfo::Datagram { length } => json!({"frame_type": "datagram", "length": length}),
    }
}

fn params(owner_: Owner, p: &TransportParameters) -> Value {
    let mut v = json!({
        "owner": owner(owner_),
        "disable_active_migration": p.disable_active_migration,
        "max_idle_timeout": p.max_idle_timeout.into_inner(),
        "max_udp_payload_size": p.max_udp_payload_size.into_inner(),
        "ack_delay_exponent": p.ack_delay_exponent.into_inner(),
        "max_ack_delay": p.max_ack_delay.into_inner(),
        "active_connection_id_limit": p.active_connection_id_limit.into_inner(),
        "initial_max_data": p.initial_max_data.into_inner(),
        "initial_max_stream_data_bidi_local": p.initial_max_stream_data_bidi_local.into_inner(),
        "initial_max_stream_data_bidi_remote": p.initial_max_stream_data_bidi_remote.into_inner(),
        "initial_max_stream_data_uni": p.initial_max_stream_data_uni.into_inner(),
        "initial_max_streams_bidi": p.initial_max_streams_bidi.into_inner(),
        "initial_max_streams_uni": p.initial_max_streams_uni.into_inner(),
    });
    if let Some(c) = &p.original_dst_cid {
        v["original_destination_connection_id"] = hex(c.as_bytes()).into();
    }
    if let Some(c) = &p.initial_src_cid {
        v["initial_source_connection_id"] = hex(c.as_bytes()).into();
    }
    if let Some(c) = &p.retry_src_cid {
        v["retry_source_connection_id"] = hex(c.as_bytes()).into();
    }
    if let Some(t) = &p.stateless_reset_token {
        v["stateless_reset_token"] = hex(&t.0).into();
    }
    if let Some(m) = p.max_datagram_frame_size {
        v["max_datagram_frame_size"] = m.into_inner().into();
    }
    v
}

fn metrics(m: &Metrics) -> Value {
    let mut v = Map::new();
    let rtts = [
        ("min_rtt", m.min_rtt),
        ("smoothed_rtt", m.smoothed_rtt),
        ("latest_rtt", m.latest_rtt),
        ("rtt_variance", m.rtt_variance),
    ];
    for (name, d) in rtts {
        if let Some(d) = d {
            v.insert(name.into(), ms(d).into());
        }
    }
    if let Some(n) = m.pto_count {
        v.insert("pto_count".into(), n.into());
    }
    let counters = [
        ("congestion_window", m.congestion_window),
        ("bytes_in_flight", m.bytes_in_flight),
        ("ssthresh", m.ssthresh),
        ("pacing_rate", m.pacing_rate),
    ];
    for (name, n) in counters {
        if let Some(n) = n {
            v.insert(name.into(), n.into());
        }
    }
    Value::Object(v)
}

/// The `data` member of an event record.
fn event_data(event: &Event) -> Value {
    match event {
        Event::ConnectionStarted(s) => {
            let ip_version = if s.remote.is_ipv4() { "v4" } else { "v6" };
            json!({
                "ip_version": ip_version,
                "src_ip": s.local.ip().to_string(),
                "dst_ip": s.remote.ip().to_string(),
                "protocol": "QUIC",
                "src_port": s.local.port(),
                "dst_port": s.remote.port(),
                "src_cid": hex(s.local_cid.as_bytes()),
                "dst_cid": hex(s.remote_cid.as_bytes()),
            })
        }
        Event::ConnectionClosed(c) => {
            let mut v = json!({
                "reason": c.reason,
                "trigger": match c.trigger {
                    CloseTrigger::Clean => "clean",
                    CloseTrigger::IdleTimeout => "idle_timeout",
                    CloseTrigger::Error => "error",
                    CloseTrigger::StatelessReset => "stateless_reset",
                    CloseTrigger::VersionMismatch => "version_mismatch",
                    CloseTrigger::Application => "application",
                },
            });
            if let Some(o) = c.owner {
                v["owner"] = owner(o).into();
            }
            if let Some(code) = c.connection_code {
                v["connection_code"] = transport_code(code);
            }
            if let Some(code) = c.application_code {
                v["application_code"] = code.into();
            }
            v
        }
        Event::ConnectionStateUpdated { old, new } => {
            let mut v = json!({ "new": new.as_str() });
            if let Some(o) = old {
                v["old"] = o.as_str().into();
            }
            v
        }
        Event::ParametersSet(p) => params(p.owner, &p.params),
        Event::PacketSent(p) | Event::PacketReceived(p) => json!({
            "header": header(&p.header),
            "raw": { "length": p.raw_length },
            "frames": p.frames.iter().map(frame).collect::<Vec<_>>(),
        }),
        Event::PacketDropped(d) => {
            let mut v = json!({
                "raw": { "length": d.raw_length },
                "trigger": d.trigger.as_str(),
            });
            if let Some(h) = &d.header {
                v["header"] = header(h);
            }
            v
        }
        Event::MetricsUpdated(m) => metrics(m),
        Event::CongestionStateUpdated { old, new, trigger } => {
            let mut v = json!({ "new": new.as_str() });
            if let Some(o) = old {
                v["old"] = o.as_str().into();
            }
            match trigger {
                Some(super::CongestionTrigger::PersistentCongestion) => {
                    v["trigger"] = "persistent_congestion".into();
                }
                Some(super::CongestionTrigger::Ecn) => v["trigger"] = "ECN".into(),
                None => {}
            }
            v
        }
        Event::PacketLost(l) => json!({
            "header": {
                "packet_type": l.packet_type.as_str(),
                "packet_number": l.packet_number,
            },
            "is_mtu_probe_packet": l.is_mtu_probe,
            "trigger": match l.trigger {
                LossTrigger::ReorderingThreshold => "reordering_threshold",
                LossTrigger::TimeThreshold => "time_threshold",
            },
        }),
        Event::KeyUpdated(k) => {
            // The key itself is not logged: `new` is required by the schema and left
            // empty (an empty hexstring); SSLKEYLOGFILE is the way to get secrets.
            let mut v = json!({
                "key_type": k.key_type.as_str(),
                "new": "",
                "trigger": match k.trigger {
                    KeyUpdateTrigger::Tls => "tls",
                    KeyUpdateTrigger::RemoteUpdate => "remote_update",
                    KeyUpdateTrigger::LocalUpdate => "local_update",
                },
            });
            if let Some(g) = k.generation {
                v["generation"] = g.into();
            }
            v
        }
    }
}
