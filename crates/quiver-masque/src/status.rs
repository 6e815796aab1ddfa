//! `Proxy-Status` (RFC 9209): why a proxy refused or failed a request, as a Structured
//! Fields list member: `quiver-masque; error=destination_ip_prohibited; details="..."`.
//!
//! The proxy attaches one to every refusal; [`ProxyStatus::parse`] lets a client report
//! it.

use std::fmt;

/// The proxy name used in `Proxy-Status` members.
pub const PROXY_NAME: &str = "quiver-masque";

/// The RFC 9209 §2.3 error types a CONNECT-UDP proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The host name did not resolve.
    DnsError,
    /// Resolution timed out.
    DnsTimeout,
    /// The target address is forbidden by policy.
    DestinationIpProhibited,
    /// The target address cannot be reached.
    DestinationIpUnroutable,
    /// The target is unavailable.
    DestinationUnavailable,
    /// The proxy has no more room (too many flows).
    ConnectionLimitReached,
    /// The request is malformed (bad template match, bad port, …).
    HttpRequestError,
    /// The request is refused (authentication, method).
    HttpRequestDenied,
    /// The proxy failed internally.
    ProxyInternalError,
    /// The proxy is misconfigured.
    ProxyConfigurationError,
}

const NAMES: [(ProxyError, &str); 10] = [
    (ProxyError::DnsError, "dns_error"),
    (ProxyError::DnsTimeout, "dns_timeout"),
    (
        ProxyError::DestinationIpProhibited,
        "destination_ip_prohibited",
    ),
    (
        ProxyError::DestinationIpUnroutable,
        "destination_ip_unroutable",
    ),
    (
        ProxyError::DestinationUnavailable,
        "destination_unavailable",
    ),
    (
        ProxyError::ConnectionLimitReached,
        "connection_limit_reached",
    ),
    (ProxyError::HttpRequestError, "http_request_error"),
    (ProxyError::HttpRequestDenied, "http_request_denied"),
    (ProxyError::ProxyInternalError, "proxy_internal_error"),
    (
        ProxyError::ProxyConfigurationError,
        "proxy_configuration_error",
    ),
];

impl ProxyError {
    /// The registered token.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| *n)
            .unwrap_or("proxy_internal_error")
    }

    /// The error for a registered token this crate uses.
    pub fn from_token(s: &str) -> Option<Self> {
        NAMES.iter().find(|(_, n)| *n == s).map(|(e, _)| *e)
    }

    /// The HTTP status code that goes with it.
    pub fn http_status(self) -> u16 {
        match self {
            ProxyError::DnsError | ProxyError::DestinationIpUnroutable => 502,
            ProxyError::DnsTimeout => 504,
            ProxyError::DestinationIpProhibited | ProxyError::HttpRequestDenied => 403,
            ProxyError::DestinationUnavailable | ProxyError::ConnectionLimitReached => 503,
            ProxyError::HttpRequestError => 400,
            ProxyError::ProxyInternalError | ProxyError::ProxyConfigurationError => 500,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `Proxy-Status` member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatus {
    /// The proxy's name (an sf-token or sf-string; [`PROXY_NAME`] by default).
    pub proxy: String,
    /// The error, if the proxy failed the request.
    pub error: Option<ProxyError>,
    /// Human-readable detail (printable ASCII; other characters become `?`).
    pub details: Option<String>,
}

/// A `Proxy-Status` value this parser cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Proxy-Status value")]
pub struct ParseError;

impl ProxyStatus {
    /// An error status from [`PROXY_NAME`].
    pub fn error(error: ProxyError, details: impl Into<String>) -> Self {
        Self {
            proxy: PROXY_NAME.to_owned(),
            error: Some(error),
            details: Some(details.into()),
        }
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        let mut out = String::new();
        if is_token(&self.proxy) {
            out.push_str(&self.proxy);
        } else {
            push_sf_string(&self.proxy, &mut out);
        }
        if let Some(e) = self.error {
            out.push_str("; error=");
            out.push_str(e.as_str());
        }
        if let Some(d) = &self.details {
            out.push_str("; details=");
            push_sf_string(d, &mut out);
        }
        out
    }

    /// Parse the first member of a `Proxy-Status` value (the proxy nearest to the
    /// client comes last, but a one-hop answer has one member). Unknown parameters are
    /// ignored; an unknown error token gives `error: None`.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let mut p = Parser {
            s: value.as_bytes(),
            i: 0,
        };
        p.spaces();
        let proxy = if p.peek() == Some(b'"') {
            p.string()?
        } else {
            p.token()?
        };
        let mut status = ProxyStatus {
            proxy,
            error: None,
            details: None,
        };
        loop {
            p.spaces();
            match p.peek() {
                None | Some(b',') => break,
                Some(b';') => p.i += 1,
                Some(_) => return Err(ParseError),
            }
            p.spaces();
            let key = p.key()?;
            let value = if p.peek() == Some(b'=') {
                p.i += 1;
                Some(match p.peek() {
                    Some(b'"') => p.string()?,
                    _ => p.token()?,
                })
            } else {
                None
            };
            match (key.as_str(), value) {
                ("error", Some(v)) => status.error = ProxyError::from_token(&v),
                ("details", Some(v)) => status.details = Some(v),
                _ => {}
            }
        }
        Ok(status)
    }
}

fn is_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'*')
        && b.iter().all(|&c| is_tchar(c) || c == b':' || c == b'/')
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn push_sf_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.i += 1,
            _ => return Err(ParseError),
        }
        while self
            .peek()
            .is_some_and(|c| is_tchar(c) || c == b':' || c == b'/')
        {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn key(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(ParseError),
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c))
        {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(ParseError),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c as char),
                        _ => return Err(ParseError),
                    }
                    self.i += 1;
                }
                Some(c @ b' '..=b'~') => {
                    out.push(c as char);
                    self.i += 1;
                }
                Some(_) => return Err(ParseError),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header() {
        let s = ProxyStatus::error(
            ProxyError::DestinationIpProhibited,
            "127.0.0.1 is \"loopback\"",
        );
        let h = s.to_header();
        assert_eq!(
            h,
            r#"quiver-masque; error=destination_ip_prohibited; details="127.0.0.1 is \"loopback\"""#
        );
        assert_eq!(ProxyStatus::parse(&h), Ok(s));
        assert_eq!(ProxyError::DestinationIpProhibited.http_status(), 403);
    }

    proptest! {
        #[test]
        fn parse_arbitrary(s in "\\PC{0,80}") {
            let _ = ProxyStatus::parse(&s);
        }

        #[test]
        fn roundtrip(idx in 0usize..NAMES.len(), details in "[ -~]{0,40}",
                     proxy in "[a-z][a-z0-9.-]{0,20}") {
            let s = ProxyStatus { proxy, error: Some(NAMES[idx].0), details: Some(details) };
            prop_assert_eq!(ProxyStatus::parse(&s.to_header()), Ok(s));
        }
    }
}
