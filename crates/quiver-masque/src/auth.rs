//! Proxy authentication: the credentials a proxy demands (`Proxy-Authorization`, RFC
//! 9110 §11.7) and the challenge it sends with a 407 (`Proxy-Authenticate`).
//!
//! Two schemes: `Bearer <token>` (RFC 6750 syntax) and `Basic <base64(user:password)>`
//! (RFC 7617). Secrets are compared in constant time.

use base64::Engine as _;

/// What the proxy requires.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No authentication.
    None,
    /// `Proxy-Authorization: Bearer <token>`.
    Bearer(String),
    /// `Proxy-Authorization: Basic <base64(user:password)>`.
    Basic {
        /// User name (no `:`).
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
            Credentials::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, .. }}"),
        }
    }
}

/// The outcome of checking a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated (or no authentication required).
    Ok,
    /// No `Proxy-Authorization` header: answer 407 with [`Credentials::challenge`].
    Missing,
    /// Wrong scheme, malformed or wrong credentials: answer 407 as well (RFC 9110
    /// §15.5.8), counted separately.
    Invalid,
}

/// A malformed `--auth` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid credentials setting (expected bearer:TOKEN or basic:USER:PASSWORD)")]
pub struct CredentialsError;

impl std::str::FromStr for Credentials {
    type Err = CredentialsError;
    /// `bearer:TOKEN` or `basic:USER:PASSWORD`.
    fn from_str(s: &str) -> Result<Self, CredentialsError> {
        if let Some(token) = s.strip_prefix("bearer:") {
            let valid = !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
            return if valid {
                Ok(Credentials::Bearer(token.to_owned()))
            } else {
                Err(CredentialsError)
            };
        }
        if let Some(rest) = s.strip_prefix("basic:") {
            let (user, password) = rest.split_once(':').ok_or(CredentialsError)?;
            if user.is_empty() {
                return Err(CredentialsError);
            }
            return Ok(Credentials::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            });
        }
        Err(CredentialsError)
    }
}

impl Credentials {
    /// The `Proxy-Authenticate` value for a 407, `None` if no authentication is set.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Credentials::None => None,
            Credentials::Bearer(_) => Some("Bearer realm=\"quiver-masque\""),
            Credentials::Basic { .. } => Some("Basic realm=\"quiver-masque\", charset=\"UTF-8\""),
        }
    }

    /// The `Proxy-Authorization` value a client sends with these credentials.
    pub fn header_value(&self) -> Option<String> {
        match self {
            Credentials::None => None,
            Credentials::Bearer(t) => Some(format!("Bearer {t}")),
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
        }
    }

    /// Check a request's `Proxy-Authorization` header value (raw bytes, if present).
    pub fn check(&self, header: Option<&[u8]>) -> AuthResult {
        if *self == Credentials::None {
            return AuthResult::Ok;
        }
        let Some(header) = header else {
            return AuthResult::Missing;
        };
        let Some(sp) = header.iter().position(|&b| b == b' ') else {
            return AuthResult::Invalid;
        };
        let (scheme, value) = (&header[..sp], trim(&header[sp + 1..]));
        let ok = match self {
            Credentials::None => true,
            Credentials::Bearer(token) => {
                scheme.eq_ignore_ascii_case(b"bearer") && ct_eq(value, token.as_bytes())
            }
            Credentials::Basic { user, password } => {
                scheme.eq_ignore_ascii_case(b"basic")
                    && base64::engine::general_purpose::STANDARD
                        .decode(value)
                        .is_ok_and(|decoded| {
                            let want = format!("{user}:{password}");
                            ct_eq(&decoded, want.as_bytes())
                        })
            }
        };
        if ok {
            AuthResult::Ok
        } else {
            AuthResult::Invalid
        }
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Constant-time comparison (the length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_and_basic() {
        let b: Credentials = "bearer:s3cret".parse().expect("valid");
        assert_eq!(b.check(None), AuthResult::Missing);
        assert_eq!(b.check(Some(b"Bearer s3cret")), AuthResult::Ok);
        assert_eq!(b.check(Some(b"bearer  s3cret ")), AuthResult::Ok);
        assert_eq!(b.check(Some(b"Bearer s3cres")), AuthResult::Invalid);
        assert_eq!(b.check(Some(b"Basic s3cret")), AuthResult::Invalid);
        assert_eq!(b.check(Some(b"Bearer")), AuthResult::Invalid);
        let basic: Credentials = "basic:alice:pa:ss".parse().expect("valid");
        let h = basic.header_value().expect("header");
        assert_eq!(basic.check(Some(h.as_bytes())), AuthResult::Ok);
        assert_eq!(
            basic.check(Some(b"Basic YWxpY2U6d3Jvbmc=")),
            AuthResult::Invalid
        );
        assert_eq!(Credentials::None.check(None), AuthResult::Ok);
        for bad in ["bearer:", "basic:nouser", "basic::x", "token", "bearer:a b"] {
            assert!(bad.parse::<Credentials>().is_err(), "{bad}");
        }
        assert!(!format!("{basic:?}").contains("pa:ss"));
    }

    proptest! {
        #[test]
        fn check_arbitrary(h in proptest::collection::vec(any::<u8>(), 0..80)) {
            let b = Credentials::Basic { user: "u".into(), password: "p".into() };
            prop_assert_ne!(b.check(Some(&h)), AuthResult::Missing);
            let t = Credentials::Bearer("t".into());
            prop_assert_ne!(t.check(Some(&h)), AuthResult::Missing);
        }

        #[test]
        fn basic_roundtrip(user in "[a-z]{1,10}", password in "\\PC{0,20}") {
            let c = Credentials::Basic { user, password };
            let h = c.header_value().expect("header");
            prop_assert_eq!(c.check(Some(h.as_bytes())), AuthResult::Ok);
        }
    }
}
