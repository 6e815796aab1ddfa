//! The CONNECT-UDP URI template (RFC 9298 §2) and the target it names.
//!
//! A template has the variables `target_host` and `target_port`, each exactly once, as
//! RFC 6570 simple expressions (`{target_host}`) or one form-style query expression
//! (`{?target_host,target_port}`), for example
//! - `/.well-known/masque/udp/{target_host}/{target_port}/` ([`DEFAULT_TEMPLATE`]),
//! - `https://proxy.example:4443/masque?h={target_host}&p={target_port}`,
//! - `https://proxy.example:4443/masque{?target_host,target_port}`.
//!
//! A scheme and authority prefix is allowed and ignored for matching: the proxy matches
//! the request's `:path`. Two variables must be separated by literal text (otherwise a
//! path could match in several ways). Values are percent-encoded on expansion (an IPv6
//! literal's colons become `%3A`, RFC 9298 §2) and percent-decoded on matching; a query
//! expression is matched in the order the template gives.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The default template (RFC 9298 §3's well-known location).
pub const DEFAULT_TEMPLATE: &str = "/.well-known/masque/udp/{target_host}/{target_port}/";

/// Longest host name accepted (RFC 1035).
const MAX_NAME: usize = 253;

/// The host part of a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetHost {
    /// An IP address literal.
    Ip(IpAddr),
    /// A DNS name (letters, digits, hyphens, dots; lower-cased).
    Name(String),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Ip(ip) => write!(f, "{ip}"),
            TargetHost::Name(n) => f.write_str(n),
        }
    }
}

/// Where a CONNECT-UDP request wants to go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host name or address.
    pub host: TargetHost,
    /// UDP port (never 0).
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            h => write!(f, "{h}:{}", self.port),
        }
    }
}

/// Why a target cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host is neither an IP literal nor a valid DNS name.
    #[error("invalid target host {0:?}")]
    Host(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid target port {0:?}")]
    Port(String),
}

impl TargetHost {
    /// Parse a decoded host: an IPv4 or IPv6 literal (brackets allowed) or a DNS name.
    pub fn parse(s: &str) -> Result<Self, TargetError> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = IpAddr::from_str(bare) {
            return Ok(TargetHost::Ip(ip));
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            // An all-numeric last label would be a malformed IPv4 address.
            && !name
                .rsplit('.')
                .next()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(TargetError::Host(s.to_owned()));
        }
        Ok(TargetHost::Name(name.to_ascii_lowercase()))
    }
}

/// Parse a decoded port: decimal digits only, 1..=65535.
pub fn parse_port(s: &str) -> Result<u16, TargetError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::Port(s.to_owned()));
    }
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(TargetError::Port(s.to_owned())),
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Host,
    Port,
}

/// A validated CONNECT-UDP URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    source: String,
    /// Scheme and authority (`https://host:port`), if the template had them.
    authority: Option<String>,
    /// The path-and-query pieces.
    parts: Vec<Part>,
}

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Braces do not pair up.
    #[error("unbalanced braces in URI template")]
    Braces,
    /// An expression other than the two variables (or the form-style query of both).
    #[error("unsupported expression {{{0}}} (only target_host and target_port)")]
    Expression(String),
    /// A variable appears twice or not at all.
    #[error("the template must contain target_host and target_port exactly once each")]
    Variables,
    /// Two variables with no literal text between them.
    #[error("variables must be separated by literal text")]
    Adjacent,
    /// A character that may not appear in a URI.
    #[error("invalid character {0:?} in URI template")]
    Character(char),
    /// The path does not start with `/`.
    #[error("the template's path must start with '/'")]
    Path,
}

/// Why a request path does not name a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The path does not have the template's shape.
    #[error("path does not match the URI template")]
    NoMatch,
    /// A variable's value is not valid percent-encoding of UTF-8.
    #[error("invalid percent-encoding in {0:?}")]
    Encoding(String),
    /// The values do not make a valid target.
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl Default for UriTemplate {
    fn default() -> Self {
        Self::parse(DEFAULT_TEMPLATE).unwrap_or_else(|_| unreachable!("the default is valid"))
    }
}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for UriTemplate {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, TemplateError> {
        Self::parse(s)
    }
}

impl UriTemplate {
    /// Parse and validate a template.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        for c in template.chars() {
            if !c.is_ascii_graphic() || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '|') {
                return Err(TemplateError::Character(c));
            }
        }
        let (authority, path) = match template.find("://") {
            Some(i) => {
                let rest = &template[i + 3..];
                let end = rest.find(['/', '{', '?']).ok_or(TemplateError::Path)?;
                let authority = &template[..i + 3 + end];
                if authority.contains(['{', '}']) {
                    return Err(TemplateError::Variables);
                }
                (Some(authority.to_owned()), &rest[end..])
            }
            None => (None, template),
        };
        if !path.starts_with('/') {
            return Err(TemplateError::Path);
        }
        let mut parts = Vec::new();
        let mut rest = path;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateError::Braces),
                Some(i) => {
                    if i > 0 {
                        push_literal(&mut parts, &rest[..i]);
                    }
                    let close = rest[i..].find('}').ok_or(TemplateError::Braces)? + i;
                    let expr = &rest[i + 1..close];
                    if expr.contains('{') {
                        return Err(TemplateError::Braces);
                    }
                    match expr {
                        "target_host" => parts.push(Part::Host),
                        "target_port" => parts.push(Part::Port),
                        "?target_host,target_port" | "?target_port,target_host" => {
                            let mut first = true;
                            for name in expr[1..].split(',') {
                                let lead = if first { '?' } else { '&' };
                                first = false;
                                push_literal(&mut parts, &format!("{lead}{name}="));
                                parts.push(if name == "target_host" {
                                    Part::Host
                                } else {
                                    Part::Port
                                });
                            }
                        }
                        other => return Err(TemplateError::Expression(other.to_owned())),
                    }
                    rest = &rest[close + 1..];
                }
                None => {
                    push_literal(&mut parts, rest);
                    rest = "";
                }
            }
        }
        let hosts = parts.iter().filter(|p| **p == Part::Host).count();
        let ports = parts.iter().filter(|p| **p == Part::Port).count();
        if hosts != 1 || ports != 1 {
            return Err(TemplateError::Variables);
        }
        if parts
            .windows(2)
            .any(|w| !matches!(w[0], Part::Literal(_)) && !matches!(w[1], Part::Literal(_)))
        {
            return Err(TemplateError::Adjacent);
        }
        Ok(Self {
            source: template.to_owned(),
            authority,
            parts,
        })
    }

    /// Scheme and authority, if the template had them (`https://proxy.example:4443`).
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The request `:path` for `target` (percent-encoded).
    pub fn expand_path(&self, target: &Target) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Host => percent_encode(&target.host_string(), &mut out),
                Part::Port => out.push_str(&target.port.to_string()),
            }
        }
        out
    }

    /// The full URI for `target` (authority, if any, followed by the path).
    pub fn expand(&self, target: &Target) -> String {
        format!(
            "{}{}",
            self.authority.as_deref().unwrap_or(""),
            self.expand_path(target)
        )
    }

    /// The target a request `:path` names, if it has the template's shape.
    ///
    /// Where a literal separating the variables also occurs inside a value (a `-`
    /// separator and a host name with hyphens), every split is tried.
    pub fn match_path(&self, path: &str) -> Result<Target, MatchError> {
        if path.len() > MAX_PATH {
            return Err(MatchError::NoMatch);
        }
        let mut first_error = None;
        match_parts(&self.parts, path, None, None, &mut first_error)
            .ok_or_else(|| first_error.unwrap_or(MatchError::NoMatch))
    }
}

/// Longest request path matched.
const MAX_PATH: usize = 8192;

/// Match `parts` against `rest`; the first full match wins. Value errors of attempts
/// that otherwise matched are kept in `error` (the most useful answer if none wins).
fn match_parts(
    parts: &[Part],
    rest: &str,
    host: Option<&TargetHost>,
    port: Option<u16>,
    error: &mut Option<MatchError>,
) -> Option<Target> {
    let Some((part, tail)) = parts.split_first() else {
        return match (rest.is_empty(), host, port) {
            (true, Some(host), Some(port)) => Some(Target {
                host: host.clone(),
                port,
            }),
            _ => None,
        };
    };
    if let Part::Literal(l) = part {
        return match_parts(tail, rest.strip_prefix(l.as_str())?, host, port, error);
    }
    // Candidate ends of this variable's value.
    let ends: Vec<usize> = match tail.first() {
        Some(Part::Literal(next)) => rest.match_indices(next.as_str()).map(|(i, _)| i).collect(),
        _ => vec![rest.len()],
    };
    for end in ends {
        let value = &rest[..end];
        if value.is_empty() {
            continue;
        }
        let decoded = match percent_decode(value) {
            Ok(d) => d,
            Err(e) => {
                error.get_or_insert(e);
                continue;
            }
        };
        let found = if *part == Part::Host {
            match TargetHost::parse(&decoded) {
                Ok(h) => match_parts(tail, &rest[end..], Some(&h), port, error),
                Err(e) => {
                    error.get_or_insert(e.into());
                    None
                }
            }
        } else {
            match parse_port(&decoded) {
                Ok(p) => match_parts(tail, &rest[end..], host, Some(p), error),
                Err(e) => {
                    error.get_or_insert(e.into());
                    None
                }
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn push_literal(parts: &mut Vec<Part>, s: &str) {
    if let Some(Part::Literal(l)) = parts.last_mut() {
        l.push_str(s);
    } else {
        parts.push(Part::Literal(s.to_owned()));
    }
}

impl Target {
    /// A target from a host string (IP literal or name) and port.
    pub fn new(host: &str, port: u16) -> Result<Self, TargetError> {
        if port == 0 {
            return Err(TargetError::Port("0".into()));
        }
        Ok(Self {
            host: TargetHost::parse(host)?,
            port,
        })
    }

    /// The host as it goes into the template (IPv6 without brackets).
    fn host_string(&self) -> String {
        self.host.to_string()
    }
}

impl FromStr for Target {
    type Err = TargetError;
    /// `host:port`, `[v6]:port`.
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let (host, port) = s.rsplit_once(':').ok_or(TargetError::Port(String::new()))?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(TargetError::Host(host.to_owned()));
        }
        Ok(Self {
            host: TargetHost::parse(host)?,
            port: parse_port(port)?,
        })
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decode `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, MatchError> {
    let bad = || MatchError::Encoding(s.to_owned());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn default_template() {
        let t = UriTemplate::default();
        let target = Target::new("2001:db8::1", 443).expect("target");
        let path = t.expand_path(&target);
        assert_eq!(path, "/.well-known/masque/udp/2001%3Adb8%3A%3A1/443/");
        assert_eq!(t.match_path(&path), Ok(target));
        assert_eq!(
            t.match_path("/.well-known/masque/udp/192.0.2.6/53/"),
            Ok(Target {
                host: TargetHost::Ip(Ipv4Addr::new(192, 0, 2, 6).into()),
                port: 53
            })
        );
        assert_eq!(
            t.match_path("/.well-known/masque/udp/Example.COM/53/")
                .map(|t| t.host),
            Ok(TargetHost::Name("example.com".into()))
        );
        assert_eq!(
            t.match_path("/.well-known/masque/udp/%5B::1%5D/53/")
                .map(|t| t.host),
            Ok(TargetHost::Ip(Ipv6Addr::LOCALHOST.into()))
        );
        for bad in [
            "/.well-known/masque/udp/example.com/http/",
            "/.well-known/masque/udp/example.com/0/",
            "/.well-known/masque/udp/example.com/65536/",
            "/.well-known/masque/udp/example.com/53",
            "/.well-known/masque/udp//53/",
            "/.well-known/masque/udp/exa%2/53/",
            "/.well-known/masque/udp/-bad-/53/",
            "/.well-known/masque/udp/a/b/53/",
            "/elsewhere",
        ] {
            assert!(t.match_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_templates() {
        let t = UriTemplate::parse("https://proxy.example:4443/masque{?target_host,target_port}")
            .expect("valid");
        assert_eq!(t.authority(), Some("https://proxy.example:4443"));
        let target = Target::new("example.org", 8443).expect("target");
        assert_eq!(
            t.expand(&target),
            "https://proxy.example:4443/masque?target_host=example.org&target_port=8443"
        );
        assert_eq!(t.match_path(&t.expand_path(&target)), Ok(target.clone()));
        let t = UriTemplate::parse("/masque?h={target_host}&p={target_port}").expect("valid");
        assert_eq!(t.match_path("/masque?h=example.org&p=8443"), Ok(target));
        for bad in [
            "/{target_host}{target_port}",
            "/{target_host}/",
            "/{target_host}/{target_port}/{target_port}",
            "/{target_host}/{target_port",
            "/{target_host}/target_port}",
            "/{foo}/{target_host}/{target_port}",
            "masque/{target_host}/{target_port}",
            "/a b/{target_host}/{target_port}",
            "https://{target_host}/{target_port}",
        ] {
            assert!(UriTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn match_arbitrary(path in "[/a-z0-9%.:\\[\\]?&=-]{0,80}") {
            let t = UriTemplate::default();
            if let Ok(target) = t.match_path(&path) {
                prop_assert!(target.port != 0);
                // Whatever matched expands to a path that matches to the same target.
                prop_assert_eq!(t.match_path(&t.expand_path(&target)), Ok(target));
            }
        }

        #[test]
        fn parse_arbitrary_templates(s in "[/a-z{}?_,&=]{0,60}") {
            if let Ok(t) = UriTemplate::parse(&s) {
                let target = Target::new("example.com", 53).expect("target");
                prop_assert_eq!(t.match_path(&t.expand_path(&target)), Ok(target));
            }
        }

        #[test]
        fn ip_roundtrip(v6 in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port in 1u16..) {
            let t = UriTemplate::default();
            for ip in [IpAddr::from(v6), IpAddr::from(v4)] {
                let target = Target { host: TargetHost::Ip(ip), port };
                prop_assert_eq!(t.match_path(&t.expand_path(&target)), Ok(target));
            }
        }

        #[test]
        fn target_from_str(s in "\\PC{0,40}") {
            let _ = s.parse::<Target>();
        }
    }
}
