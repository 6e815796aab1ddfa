//! Driving `ip` and `tc`, checking privileges, and the per-direction shaper.
//!
//! Shaping a direction means one htb tree on the egress side of the wire namespace's veth
//! that faces the receiving end:
//!
//! ```text
//! 1: htb (default 1:1)
//! ├── 1:1 rate R ──── 10: bfifo limit QUEUE        frames that survive
//! └── 1:2 rate R ──── 20: pfifo limit 0            frames picked by the loss classifier
//! filter: classic BPF "ld rand; jge T ? 1:1 : 1:2"
//! ```
//!
//! Why a classic-BPF classifier and not nftables or an eBPF program: `nft` is not installed
//! here and the kernel has neither `act_gact` (so `action drop` is unavailable) nor a
//! compiler for eBPF objects; a classic-BPF `cls_bpf` program needs none of them. It reads
//! the kernel's per-packet random number (`SKF_AD_RANDOM`) and *returns a class id*:
//! frames sent to class 1:2 meet a zero-length FIFO and are dropped, counted in that
//! class's statistics. The threshold has 2^-32 resolution, so any loss rate is exact in
//! expectation. Dropped frames never reach the rate limiter, so loss uses no capacity.

use std::io;
use std::process::Command;

use super::error::{EmuError, Result};
use super::units::LinkParams;

/// Runs `program args...` and returns its stdout.
pub(crate) fn run(program: &'static str, args: &[&str]) -> Result<String> {
    tracing::debug!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| spawn_error(program, e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(EmuError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn spawn_error(program: &'static str, e: io::Error) -> EmuError {
    if e.kind() == io::ErrorKind::NotFound {
        EmuError::ToolMissing {
            tool: program,
            hint: "install iproute2: apt-get install -y iproute2",
        }
    } else {
        EmuError::io(format!("run {program}"), e)
    }
}

/// Capability bits of `/proc/self/status` `CapEff`.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks that this process may create namespaces and links and that `ip` and `tc`
/// exist. Called by every constructor that touches the system.
pub fn check_environment() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| EmuError::io("read /proc/self/status", e))?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    if !(has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN)) {
        return Err(EmuError::NotPrivileged);
    }
    for tool in ["ip", "tc"] {
        Command::new(tool)
            .arg("-V")
            .output()
            .map_err(|e| spawn_error(tool, e))?;
    }
    Ok(())
}

/// The classic BPF program (in `tc`'s `bytecode` syntax) that sends a frame to class
/// 1:2 (drop) with the given probability and to 1:1 otherwise.
pub(crate) fn loss_classifier(params: &LinkParams) -> String {
    const PASS: u32 = 0x0001_0001; // classid 1:1
    const DROP: u32 = 0x0001_0002; // classid 1:2
                                   // BPF_LD|BPF_W|BPF_ABS of SKF_AD_OFF + SKF_AD_RANDOM (-0x1000 + 56) loads a random u32.
    const LD_RAND: &str = "32 0 0 4294963256";
    match params.loss.u32_threshold() {
        // BPF_JMP|BPF_JGE|BPF_K: rand >= T → next (pass), else skip one (drop).
        Some(t) => format!("4,{LD_RAND},53 0 1 {t},6 0 0 {PASS},6 0 0 {DROP}"),
        None => format!("1,6 0 0 {DROP}"),
    }
}

/// Installs rate and loss of one direction on egress of `dev` in namespace `ns`.
/// A direction without rate and loss keeps the device's default (no queue).
pub(crate) fn shape(ns: &str, dev: &str, params: &LinkParams) -> Result<()> {
    if params.rate.is_none() && params.loss.is_zero() {
        return Ok(());
    }
    // Without a rate the htb tree only classifies; 100 Gbit/s never limits a veth here.
    let rate = params.rate.map_or_else(
        || "100gbit".to_owned(),
        |r| format!("{}bit", r.bits_per_sec()),
    );
    let queue = params.queue().to_string();
    let tc = |args: &[&str]| {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        run("tc", &full)
    };
    tc(&[
        "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1",
    ])?;
    tc(&[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", &rate, "ceil",
        &rate, "quantum", "1514",
    ])?;
    tc(&[
        "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "bfifo", "limit", &queue,
    ])?;
    if !params.loss.is_zero() {
        tc(&[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", &rate,
            "ceil", &rate, "quantum", "1514",
        ])?;
        tc(&[
            "qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", "pfifo", "limit", "0",
        ])?;
        let prog = loss_classifier(params);
        tc(&[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "all", "prio", "1", "bpf",
            "bytecode", &prog,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emu::units::Loss;

    #[test]
    fn classifier_programs() {
        let mut p = LinkParams {
            loss: Loss::parse("50%").unwrap(),
            ..LinkParams::default()
        };
        assert_eq!(
            loss_classifier(&p),
            "4,32 0 0 4294963256,53 0 1 2147483648,6 0 0 65537,6 0 0 65538"
        );
        p.loss = Loss::parse("100%").unwrap();
        assert_eq!(loss_classifier(&p), "1,6 0 0 65538");
    }
}
