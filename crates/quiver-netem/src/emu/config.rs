//! The topology file format of `quiver netem topology FILE`.
//!
//! One statement per line; `#` starts a comment:
//!
//! ```text
//! seed 7
//! node client server          # nodes (network namespaces)
//! bridge lan                  # a bridge (its own namespace)
//! link client lan profile=3g
//! link server lan rate=100mbit delay=1ms
//! link client server rate=10mbit delay=5ms jitter=1ms loss=0.1% queue=64kb \
//!      ab.rate=2mbit a.addr=10.9.0.1/24 b.addr=10.9.0.2/24
//! ```
//!
//! A `link A B` applies its keys to both directions; `ab.KEY` only to A→B and `ba.KEY`
//! only to B→A. Keys: `profile`, `rate`, `delay`, `jitter`, `loss`, `queue`; `a.addr` and
//! `b.addr` set the ends' addresses (automatic otherwise). The end `host` is the root
//! namespace. Within a line a profile applies first, then the plain keys, then the
//! directed ones, whatever their order. A trailing `\` continues a line.

use super::error::{EmuError, Result};
use super::topology::{IfAddr, LinkSpec, TopologySpec};
use super::units::{parse_duration_as, parse_size, LinkParams, Loss, Profile, Rate};

/// Parses a topology file.
pub fn parse_topology(text: &str) -> Result<TopologySpec> {
    let mut spec = TopologySpec::new();
    let mut pending = String::new();
    let mut start_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if pending.is_empty() {
            start_line = idx + 1;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let stmt = std::mem::take(&mut pending);
        statement(&mut spec, &stmt).map_err(|e| locate(e, start_line))?;
    }
    if !pending.trim().is_empty() {
        statement(&mut spec, &pending).map_err(|e| locate(e, start_line))?;
    }
    spec.validate().map_err(|e| locate(e, 0))?;
    Ok(spec)
}

fn locate(e: EmuError, line: usize) -> EmuError {
    if line == 0 {
        return e;
    }
    match e {
        EmuError::Config { line: 0, reason } => EmuError::Config { line, reason },
        EmuError::Config { .. } => e,
        other => EmuError::Config {
            line,
            reason: other.to_string(),
        },
    }
}

fn bad(reason: impl Into<String>) -> EmuError {
    EmuError::Config {
        line: 0,
        reason: reason.into(),
    }
}

fn statement(spec: &mut TopologySpec, stmt: &str) -> Result<()> {
    let mut words = stmt.split_whitespace();
    let Some(keyword) = words.next() else {
        return Ok(());
    };
    match keyword {
        "node" | "bridge" => {
            let names: Vec<&str> = words.collect();
            if names.is_empty() {
                return Err(bad(format!("`{keyword}` needs at least one name")));
            }
            for n in names {
                if keyword == "node" {
                    spec.add_node(n)?;
                } else {
                    spec.add_bridge(n)?;
                }
            }
            Ok(())
        }
        "seed" => {
            let v = words.next().ok_or_else(|| bad("`seed` needs a number"))?;
            spec.seed = v.parse().map_err(|_| bad(format!("bad seed {v:?}")))?;
            match words.next() {
                Some(extra) => Err(bad(format!("unexpected {extra:?} after seed"))),
                None => Ok(()),
            }
        }
        "link" => {
            let (Some(a), Some(b)) = (words.next(), words.next()) else {
                return Err(bad("`link` needs two ends: link A B [key=value...]"));
            };
            let link = link_from(spec, a, b, words)?;
            spec.add_link(link)?;
            Ok(())
        }
        other => Err(bad(format!(
            "unknown statement {other:?} (expected node, bridge, link or seed)"
        ))),
    }
}

fn link_from<'a>(
    spec: &TopologySpec,
    a: &str,
    b: &str,
    words: impl Iterator<Item = &'a str>,
) -> Result<LinkSpec> {
    let mut link = LinkSpec::new(spec.endpoint(a)?, spec.endpoint(b)?, LinkParams::default());
    let mut plain = Vec::new();
    let mut directed = Vec::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| bad(format!("expected key=value, got {w:?}")))?;
        if v.is_empty() {
            return Err(bad(format!("empty value for {k}")));
        }
        match k {
            "profile" => {
                let p = Profile::parse(v)?.params();
                link.ab = p;
                link.ba = p;
            }
            "a.addr" => link.a_addr = Some(v.parse::<IfAddr>()?),
            "b.addr" => link.b_addr = Some(v.parse::<IfAddr>()?),
            _ => match k.split_once('.') {
                Some(("ab", key)) => directed.push((0, key, v)),
                Some(("ba", key)) => directed.push((1, key, v)),
                Some(_) => {
                    return Err(bad(format!(
                        "unknown key {k:?} (directions are ab. and ba.)"
                    )))
                }
                None => plain.push((k, v)),
            },
        }
    }
    for (k, v) in plain {
        set(&mut link.ab, k, v)?;
        set(&mut link.ba, k, v)?;
    }
    for (dir, k, v) in directed {
        set(if dir == 0 { &mut link.ab } else { &mut link.ba }, k, v)?;
    }
    Ok(link)
}

/// Sets one parameter of a direction from its text.
pub(crate) fn set(p: &mut LinkParams, key: &str, value: &str) -> Result<()> {
    match key {
        "rate" => p.rate = if value == "unlimited" { None } else { Some(Rate::parse(value)?) },
        "delay" => p.delay = parse_duration_as("delay", value)?,
        "jitter" => p.jitter = parse_duration_as("jitter", value)?,
        "loss" => p.loss = Loss::parse(value)?,
        "queue" => p.queue_bytes = Some(parse_size(value)?),
        _ => return Err(bad(format!("unknown key {key:?} (expected profile, rate, delay, jitter, loss, queue, a.addr, b.addr)"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emu::topology::Endpoint;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn example_file() {
        let spec = parse_topology(
            "seed 7\nnode client server # two\nbridge lan\n\nlink client lan profile=3g\nlink server lan rate=100mbit delay=1ms\n\
             link client server rate=10mbit delay=5ms jitter=1ms loss=0.1% queue=64kb \\\n  ab.rate=2mbit a.addr=10.9.0.1/24\n",
        )
        .unwrap();
        assert_eq!(spec.seed, 7);
        assert_eq!(spec.nodes, ["client", "server"]);
        assert_eq!(spec.bridges, ["lan"]);
        assert_eq!(spec.links.len(), 3);
        assert_eq!(spec.links[0].ab, Profile::ThreeG.params());
        assert_eq!(spec.links[0].b, Endpoint::Bridge("lan".into()));
        let l = &spec.links[2];
        assert_eq!(l.ab.rate.unwrap().bits_per_sec(), 2_000_000);
        assert_eq!(l.ba.rate.unwrap().bits_per_sec(), 10_000_000);
        assert_eq!(l.ba.jitter, Duration::from_millis(1));
        assert_eq!(l.ab.queue_bytes, Some(64_000));
        assert_eq!(l.a_addr, Some("10.9.0.1/24".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_line() {
        let err = |t: &str| parse_topology(t).unwrap_err();
        assert!(matches!(
            err("node a\nnode a\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(matches!(
            err("node a b\nlink a b rate=-1mbit\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(matches!(
            err("node a b\nlink a b loss=150%\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(matches!(
            err("node a\nlink a zz\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(matches!(
            err("frobnicate\n"),
            EmuError::Config { line: 1, .. }
        ));
        assert!(matches!(
            err("node a b\nlink a b profile=5g\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(matches!(
            err("node a b\nlink a b cd.rate=1mbit\n"),
            EmuError::Config { line: 2, .. }
        ));
        assert!(err("node a\nlink a zz\n").is_usage());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse_topology(&s);
        }

        #[test]
        fn plausible_text_never_panics(lines in proptest::collection::vec(
            "(node|bridge|link|seed) ([a-c]|host|lan)? ([a-c]|lan)? ((rate|delay|loss|ab.rate|a.addr|profile)=[-0-9a-z.%/]{0,8})?",
            0..8)) {
            let _ = parse_topology(&lines.join("\n"));
        }
    }
}
