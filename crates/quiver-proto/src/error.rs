//! Transport error codes (RFC 9000 §20.1) and the error type a peer violation produces.

use std::fmt;

/// A QUIC transport error code as carried in CONNECTION_CLOSE (type 0x1c).
#[derive(Copy, Clone, Eq, PartialEq, Hash)]
pub struct TransportErrorCode(pub u64);

macro_rules! codes {
    ($($name:ident = $val:expr, $doc:expr;)*) => {
        impl TransportErrorCode {
            $(#[doc = $doc] pub const $name: Self = TransportErrorCode($val);)*

            /// Name of a known code (`None` for crypto and unknown codes).
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    NO_ERROR = 0x0, "Graceful close without error.";
    INTERNAL_ERROR = 0x1, "The endpoint hit an internal error.";
    CONNECTION_REFUSED = 0x2, "The server refused the connection.";
    FLOW_CONTROL_ERROR = 0x3, "More data than advertised limits.";
    STREAM_LIMIT_ERROR = 0x4, "A stream beyond the advertised limit was opened.";
    STREAM_STATE_ERROR = 0x5, "A frame arrived for a stream in a state that forbids it.";
    FINAL_SIZE_ERROR = 0x6, "Inconsistent final size.";
    FRAME_ENCODING_ERROR = 0x7, "A frame was badly formatted.";
    TRANSPORT_PARAMETER_ERROR = 0x8, "Transport parameters were malformed or invalid.";
    CONNECTION_ID_LIMIT_ERROR = 0x9, "Too many connection IDs were issued.";
    PROTOCOL_VIOLATION = 0xa, "Generic protocol violation.";
    INVALID_TOKEN = 0xb, "An invalid Retry or NEW_TOKEN token was received.";
    APPLICATION_ERROR = 0xc, "The application closed without a code of its own.";
    CRYPTO_BUFFER_EXCEEDED = 0xd, "Too much buffered CRYPTO data.";
    KEY_UPDATE_ERROR = 0xe, "Invalid key update.";
    AEAD_LIMIT_REACHED = 0xf, "AEAD confidentiality or integrity limit reached.";
    NO_VIABLE_PATH = 0x10, "No viable network path exists.";
    VERSION_NEGOTIATION_ERROR = 0x11, "Version negotiation failed or was tampered with (RFC 9368).";
}

impl TransportErrorCode {
    /// The code for a TLS alert (RFC 9001 §4.8): 0x0100 + alert.
    pub const fn crypto(alert: u8) -> Self {
        TransportErrorCode(0x100 | alert as u64)
    }
}

impl fmt::Debug for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None if (0x100..0x200).contains(&self.0) => {
                write!(f, "CRYPTO_ERROR({:#x})", self.0 & 0xff)
            }
            None => write!(f, "UNKNOWN({:#x})", self.0),
        }
    }
}
impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A transport-level error: the wire code, the frame type that triggered it (if any),
/// and a human-readable reason sent in CONNECTION_CLOSE.
#[derive(Clone, Eq, PartialEq, Debug, thiserror::Error)]
#[error("{code}{}: {reason}", frame.map(|f| format!(" in frame {f:#x}")).unwrap_or_default())]
pub struct TransportError {
    /// Wire error code.
    pub code: TransportErrorCode,
    /// Frame type that triggered the error.
    pub frame: Option<u64>,
    /// Reason phrase.
    pub reason: String,
}

impl TransportError {
    /// Build an error with a code and reason.
    pub fn new(code: TransportErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            frame: None,
            reason: reason.into(),
        }
    }
    /// Attach the triggering frame type.
    pub fn with_frame(mut self, frame: u64) -> Self {
        self.frame = Some(frame);
        self
    }
}

macro_rules! ctors {
    ($($fn:ident => $code:ident;)*) => {
        impl TransportError {
            $(
                #[doc = concat!("A `", stringify!($code), "` error with the given reason.")]
                #[allow(non_snake_case)]
                pub fn $fn(reason: impl Into<String>) -> Self {
                    Self::new(TransportErrorCode::$code, reason)
                }
            )*
        }
    };
}

ctors! {
    INTERNAL_ERROR => INTERNAL_ERROR;
    FLOW_CONTROL_ERROR => FLOW_CONTROL_ERROR;
    STREAM_LIMIT_ERROR => STREAM_LIMIT_ERROR;
    STREAM_STATE_ERROR => STREAM_STATE_ERROR;
    FINAL_SIZE_ERROR => FINAL_SIZE_ERROR;
    FRAME_ENCODING_ERROR => FRAME_ENCODING_ERROR;
    TRANSPORT_PARAMETER_ERROR => TRANSPORT_PARAMETER_ERROR;
    CONNECTION_ID_LIMIT_ERROR => CONNECTION_ID_LIMIT_ERROR;
    PROTOCOL_VIOLATION => PROTOCOL_VIOLATION;
    INVALID_TOKEN => INVALID_TOKEN;
    CRYPTO_BUFFER_EXCEEDED => CRYPTO_BUFFER_EXCEEDED;
    KEY_UPDATE_ERROR => KEY_UPDATE_ERROR;
    AEAD_LIMIT_REACHED => AEAD_LIMIT_REACHED;
}
