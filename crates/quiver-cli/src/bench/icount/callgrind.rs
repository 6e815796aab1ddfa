//! A reader for callgrind output files (format version 1, as written by valgrind 3.x):
//! the program's total instruction count and the inclusive count of chosen functions.
//!
//! Only what the driver needs is interpreted: the `positions:` and `events:` headers,
//! `summary:`/`totals:`, `fn=`/`cfn=` (with or without name compression), `calls=` lines
//! and the cost lines that follow them. Positions may be absolute, relative (`+n`, `-n`)
//! or `*`; they are skipped, only the first event (instructions) is read.

use anyhow::{bail, Context};
use std::collections::HashMap;

/// Instruction counts read from one callgrind profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// All instructions executed by the program.
    pub total: u64,
    /// Inclusive instructions of each requested function (0 if it never ran).
    pub inclusive: HashMap<String, u64>,
}

/// Whether the symbol `name` is the function `f`: `f` appears in it as a whole path
/// segment of the demangled name (`a::b::f`, possibly followed by a `::h…` hash).
fn is_function(name: &str, f: &str) -> bool {
    name.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|tok| tok == f)
}

/// Resolve a `fn=`/`cfn=` value with name compression: `(id) name` defines, `(id)` refers.
fn resolve(value: &str, names: &mut HashMap<String, String>) -> String {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('(') {
        if let Some((id, name)) = rest.split_once(')') {
            let name = name.trim();
            if name.is_empty() {
                return names.get(id).cloned().unwrap_or_default();
            }
            names.insert(id.to_owned(), name.to_owned());
            return name.to_owned();
        }
    }
    value.to_owned()
}

/// The first event count on a cost line with `positions` leading position fields.
fn first_event(line: &str, positions: usize) -> Option<u64> {
    line.split_whitespace().nth(positions)?.parse().ok()
}

/// Parse callgrind output `text`, summing the inclusive cost of every function in
/// `functions` (by name, see [`is_function`]).
pub fn parse(text: &str, functions: &[&str]) -> anyhow::Result<Profile> {
    let mut positions = 1usize;
    let mut total = None;
    let mut names: HashMap<String, String> = HashMap::new();
    // Index into `functions` of the current `fn=` block, if it is one of them.
    let mut current: Option<usize> = None;
    let mut current_name = String::new();
    // Set by `cfn=`: whether the callee is the current function (recursion).
    let mut callee_is_self = false;
    let mut after_calls = false;
    let mut inclusive = vec![0u64; functions.len()];
    let mut events_seen = false;
    for line in text.lines() {
        let line = line.trim_end();
        if after_calls {
            // The line after `calls=` carries the call's inclusive cost.
            after_calls = false;
            if let (Some(i), false) = (current, callee_is_self) {
                inclusive[i] += first_event(line, positions).unwrap_or(0);
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(v) = line.strip_prefix("positions:") {
            positions = v.split_whitespace().count().max(1);
        } else if let Some(v) = line.strip_prefix("events:") {
            events_seen = true;
            if v.split_whitespace().next() != Some("Ir") {
                bail!("callgrind profile does not start with the Ir event: {v:?}");
            }
        } else if let Some(v) = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
        {
            if total.is_none() {
                total = v.split_whitespace().next().and_then(|t| t.parse().ok());
            }
        } else if let Some(v) = line.strip_prefix("fn=") {
            current_name = resolve(v, &mut names);
            current = functions.iter().position(|f| is_function(&current_name, f));
        } else if let Some(v) = line.strip_prefix("cfn=") {
            let callee = resolve(v, &mut names);
            callee_is_self = callee == current_name;
        } else if line.starts_with("calls=") {
            after_calls = true;
        } else if line.contains('=') || line.contains(':') {
            // ob=, fl=, fi=, fe=, cob=, cfi=, cfl=, jump= and other headers: no cost.
        } else if let Some(i) = current {
            inclusive[i] += first_event(line, positions).unwrap_or(0);
        }
    }
    if !events_seen {
        bail!("not a callgrind profile (no events: line)");
    }
    let total = total.context("callgrind profile without a summary/totals line")?;
    Ok(Profile {
        total,
        inclusive: functions
            .iter()
            .zip(inclusive)
            .map(|(f, n)| ((*f).to_owned(), n))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000

ob=(1) /bin/quiver
fl=(1) src/main.rs
fn=(1) main
10 100
cfn=(2) quiver_cli::bench::icount::transfer::icount_tx_handle
calls=3 20
+2 600
cfn=(3) other
calls=1 5
* 50

fn=(2)
20 200
cfn=(4) quiver_proto::endpoint::Endpoint::handle
calls=3 30
-1 380
cfn=(2)
calls=1 20
11 999

fn=(3)
5 50
";

    #[test]
    fn inclusive_costs_and_total() {
        let p = parse(SAMPLE, &["icount_tx_handle", "main", "absent"]).unwrap();
        assert_eq!(p.total, 1000);
        // 200 self + 380 to Endpoint::handle; the recursive call is not counted twice.
        assert_eq!(p.inclusive["icount_tx_handle"], 580);
        assert_eq!(p.inclusive["main"], 750);
        assert_eq!(p.inclusive["absent"], 0);
    }

    #[test]
    fn function_names_match_whole_segments() {
        assert!(is_function("a::b::icount_rx_app", "icount_rx_app"));
        assert!(is_function(
            "a::b::icount_rx_app::h0123abcd",
            "icount_rx_app"
        ));
        assert!(!is_function("a::icount_rx_app_more", "icount_rx_app"));
        assert!(!is_function("a::icount_rx_apps", "icount_rx_app"));
    }

    #[test]
    fn rejects_other_files() {
        assert!(parse("hello\n", &[]).is_err());
        assert!(parse("events: Ir\n", &[]).is_err());
    }
}
