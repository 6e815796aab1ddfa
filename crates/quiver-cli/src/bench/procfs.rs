//! Resource use of a process from Linux's `/proc`: resident memory and CPU time.

use anyhow::Context;
use std::time::Duration;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`). It is 100 on
/// every Linux architecture Quiver runs on; reading `sysconf(_SC_CLK_TCK)` would need
/// `libc` and `unsafe`.
const USER_HZ: u64 = 100;

/// Resident set size of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn vm_rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// CPU time (user + system, all threads) process `pid` has used, with the 10 ms
/// resolution of `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("unexpected format of {path}"))?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// CPU time of this process (see [`cpu_time`]).
pub fn own_cpu_time() -> anyhow::Result<Duration> {
    cpu_time(std::process::id())
}

/// Datagrams the kernel dropped host-wide because a UDP socket's receive buffer was full
/// (`Udp: RcvbufErrors` of `/proc/net/snmp`; the counter of this network namespace).
pub fn udp_rcvbuf_errors() -> anyhow::Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    parse_snmp(&snmp, "Udp", "RcvbufErrors").context("no Udp RcvbufErrors in /proc/net/snmp")
}

/// The value of `field` in the `proto` section of a `/proc/net/snmp` text (a header line
/// of names followed by a line of values, both starting with `proto:`).
pub fn parse_snmp(snmp: &str, proto: &str, field: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// The `VmRSS:  1234 kB` value of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is parenthesised and may contain spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // `after_comm` starts at field 3 (state): utime is field 14, i.e. index 11 here.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_status() {
        let status = "Name:\tquiver\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 pages\n"), None);
    }

    #[test]
    fn ticks_from_stat() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (we ird) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn snmp_fields() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n\
                    Udp: 382732 0 6058 388791 6057\n\
                    UdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 0\n";
        assert_eq!(parse_snmp(snmp, "Udp", "RcvbufErrors"), Some(6057));
        assert_eq!(parse_snmp(snmp, "Udp", "InDatagrams"), Some(382_732));
        assert_eq!(parse_snmp(snmp, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(parse_snmp(snmp, "Udp", "Nope"), None);
        assert_eq!(parse_snmp(snmp, "Tcp", "RcvbufErrors"), None);
    }

    #[test]
    fn own_process_is_readable() {
        if cfg!(target_os = "linux") {
            assert!(vm_rss(std::process::id()).unwrap() > 0);
            own_cpu_time().unwrap();
        }
    }
}
