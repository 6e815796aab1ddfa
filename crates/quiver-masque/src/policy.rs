//! Which addresses a proxy may send to (RFC 9298 §7: a proxy must not become a way into
//! the networks behind it).
//!
//! [`TargetPolicy::check`] refuses loopback, private (RFC 1918, IPv6 ULA), shared
//! (RFC 6598), link-local, unspecified ("this network", 0.0.0.0/8), broadcast and
//! multicast addresses — IPv4-mapped and IPv4-compatible IPv6 forms included —
//! unless an allowed CIDR (`--allow 10.0.0.0/8`) covers the address. Everything else is
//! allowed. Host names are resolved by the proxy and each resolved address is checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address prefix, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// A malformed CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?} (expected ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/8)")]
pub struct CidrError(String);

impl Cidr {
    /// The prefix `addr/len`; host bits of `addr` are cleared. `None` if `len` is too
    /// long for the address family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(len))),
        };
        Some(Self { addr, len })
    }

    /// Whether `ip` is inside the prefix (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.len) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.len) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let err = || CidrError(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                (a, Some(l.parse::<u8>().map_err(|_| err())?))
            }
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| err())?;
        let len = len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Self::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Multicast and broadcast.
    Multicast,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::Loopback => "loopback",
            Forbidden::Private => "private",
            Forbidden::LinkLocal => "link-local",
            Forbidden::Unspecified => "unspecified",
            Forbidden::Multicast => "multicast or broadcast",
        })
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1.
                if bits >> 32 == 0 && bits > 1 {
                    IpAddr::V4(Ipv4Addr::from(bits as u32))
                } else {
                    ip
                }
            }
        },
        v4 => v4,
    }
}

/// The class of an address the default policy refuses, if it is one.
pub fn forbidden_class(ip: IpAddr) -> Option<Forbidden> {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Some(Forbidden::Loopback)
            } else if a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                Some(Forbidden::Private)
            } else if a.is_link_local() {
                Some(Forbidden::LinkLocal)
            } else if o[0] == 0 {
                Some(Forbidden::Unspecified)
            } else if a.is_multicast() || a.is_broadcast() {
                Some(Forbidden::Multicast)
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a.is_loopback() {
                Some(Forbidden::Loopback)
            } else if a.is_unspecified() {
                Some(Forbidden::Unspecified)
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some(Forbidden::Private)
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some(Forbidden::LinkLocal)
            } else if a.is_multicast() {
                Some(Forbidden::Multicast)
            } else {
                None
            }
        }
    }
}

/// The proxy's target policy: the default refusals, minus what `allow` covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow: Vec<Cidr>,
}

impl TargetPolicy {
    /// The default refusals with the given allowed prefixes.
    pub fn new(allow: Vec<Cidr>) -> Self {
        Self { allow }
    }

    /// The allowed prefixes.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// Whether the proxy may send to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Forbidden> {
        match forbidden_class(ip) {
            Some(class) if !self.allow.iter().any(|c| c.contains(ip)) => Err(class),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn defaults() {
        let p = TargetPolicy::default();
        for (a, want) in [
            ("127.0.0.1", Some(Forbidden::Loopback)),
            ("::1", Some(Forbidden::Loopback)),
            ("::ffff:127.0.0.1", Some(Forbidden::Loopback)),
            ("::127.0.0.1", Some(Forbidden::Loopback)),
            ("10.1.2.3", Some(Forbidden::Private)),
            ("172.31.0.1", Some(Forbidden::Private)),
            ("192.168.1.1", Some(Forbidden::Private)),
            ("100.64.0.1", Some(Forbidden::Private)),
            ("fd12::1", Some(Forbidden::Private)),
            ("169.254.169.254", Some(Forbidden::LinkLocal)),
            ("fe80::1", Some(Forbidden::LinkLocal)),
            ("0.0.0.0", Some(Forbidden::Unspecified)),
            ("::", Some(Forbidden::Unspecified)),
            ("224.0.0.1", Some(Forbidden::Multicast)),
            ("255.255.255.255", Some(Forbidden::Multicast)),
            ("ff02::1", Some(Forbidden::Multicast)),
            ("192.0.2.1", None),
            ("172.32.0.1", None),
            ("2001:db8::1", None),
        ] {
            assert_eq!(p.check(ip(a)).err(), want, "{a}");
        }
        let p = TargetPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(p.check(ip("::1")).is_err());
    }

    #[test]
    fn cidr_parse() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert!("::1".parse::<Cidr>().is_ok());
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "x/8",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn cidr_arbitrary(s in "\\PC{0,45}") {
            let _ = s.parse::<Cidr>();
        }

        #[test]
        fn cidr_contains_own_network(a in any::<[u8; 16]>(), len in 0u8..=128) {
            let c = Cidr::new(IpAddr::from(a), len).expect("valid length");
            prop_assert!(c.contains(IpAddr::from(a)) || IpAddr::from(a) != canonical(IpAddr::from(a)));
            let back: Cidr = c.to_string().parse().expect("roundtrip");
            prop_assert_eq!(back, c);
        }

        #[test]
        fn allow_all_allows(a in any::<[u8; 16]>(), b in any::<[u8; 4]>()) {
            let p = TargetPolicy::new(vec!["::/0".parse().expect("cidr"), "0.0.0.0/0".parse().expect("cidr")]);
            prop_assert!(p.check(IpAddr::from(a)).is_ok());
            prop_assert!(p.check(IpAddr::from(b)).is_ok());
        }
    }
}
