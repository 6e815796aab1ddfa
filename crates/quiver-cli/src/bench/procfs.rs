//! Resource use of a process from Linux's `/proc`: resident memory and CPU time.

use anyhow::Context;
use std::collections::BTreeMap;
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

/// The CPU time a process has used, read at one moment, to measure what it uses between
/// two moments ([`CpuMark::until`]).
///
/// Two sources are read: the nanosecond run time of every live thread (first field of
/// `/proc/<pid>/task/<tid>/schedstat`) and the process's `utime + stime` of
/// `/proc/<pid>/stat` (10 ms resolution, but including threads that have exited). The
/// difference uses the first when it can (every thread of the earlier mark is still
/// alive), the second otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuMark {
    /// Nanoseconds run per thread id; `None` when unreadable (no schedstats in the kernel).
    threads: Option<BTreeMap<u32, u64>>,
    /// `utime + stime` of the process; `None` when unreadable.
    ticks: Option<Duration>,
}

/// CPU time used between two [`CpuMark`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuUse {
    /// User + system time of all threads.
    pub time: Duration,
    /// Whether it comes from the per-thread nanosecond counters (else from the 10 ms
    /// ticks of `/proc/<pid>/stat`).
    pub precise: bool,
}

impl CpuMark {
    /// Read the CPU time of process `pid` now. Sources that cannot be read are left
    /// empty (the mark then yields no [`CpuUse`] rather than failing the benchmark).
    pub fn take(pid: u32) -> Self {
        Self {
            threads: thread_run_times(pid).ok(),
            ticks: cpu_time(pid).ok(),
        }
    }

    /// [`take`](Self::take) for this process.
    pub fn own() -> Self {
        Self::take(std::process::id())
    }

    /// CPU time the process used from this mark to `later`, or `None` when neither source
    /// could be read at both marks.
    pub fn until(&self, later: &CpuMark) -> Option<CpuUse> {
        if let (Some(before), Some(after)) = (&self.threads, &later.threads) {
            if let Some(ns) = thread_delta(before, after) {
                return Some(CpuUse {
                    time: Duration::from_nanos(ns),
                    precise: true,
                });
            }
        }
        let (before, after) = (self.ticks?, later.ticks?);
        Some(CpuUse {
            time: after.saturating_sub(before),
            precise: false,
        })
    }
}

/// Linux `ESRCH`: reading a file of a task that has just exited.
const ESRCH: i32 = 3;

/// Nanoseconds each live thread of process `pid` has run (first field of
/// `/proc/<pid>/task/<tid>/schedstat`), by thread id. A thread that exits while the
/// directory is read is skipped.
pub fn thread_run_times(pid: u32) -> anyhow::Result<BTreeMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut times = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else {
            continue; // the thread went away while the directory was read
        };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("schedstat");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let ns = parse_schedstat(&text)
                    .with_context(|| format!("unexpected format of {}", path.display()))?;
                times.insert(tid, ns);
            }
            // The thread exited between listing and reading: NotFound, or ESRCH ("No
            // such process") when its directory is still listed but the task is gone.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH) => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    if times.is_empty() {
        anyhow::bail!("no readable thread in {dir}");
    }
    Ok(times)
}

/// The run time in nanoseconds (first field) of a `schedstat` text
/// (`<run ns> <wait ns> <timeslices>`).
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Nanoseconds run between two per-thread snapshots: the growth of every thread of
/// `before` plus all of the time of threads that appeared since. `None` when a thread of
/// `before` is gone (its time since `before` is lost) or went backwards (an id reused).
pub fn thread_delta(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> Option<u64> {
    let mut total = 0u64;
    for (tid, &then) in before {
        total = total.checked_add(after.get(tid)?.checked_sub(then)?)?;
    }
    for (tid, &now) in after {
        if !before.contains_key(tid) {
            total = total.checked_add(now)?;
        }
    }
    Some(total)
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

    #[test]
    fn schedstat_run_time() {
        assert_eq!(parse_schedstat("977678 49083 2\n"), Some(977_678));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn thread_deltas() {
        let before = BTreeMap::from([(1, 100), (2, 1_000)]);
        // Both threads grew, thread 3 is new: all of its time counts.
        let after = BTreeMap::from([(1, 150), (2, 1_200), (3, 30)]);
        assert_eq!(thread_delta(&before, &after), Some(50 + 200 + 30));
        // Thread 2 exited: its time since `before` is unknown.
        assert_eq!(thread_delta(&before, &BTreeMap::from([(1, 150)])), None);
        // Thread 2's id was reused by a younger thread.
        let reused = BTreeMap::from([(1, 150), (2, 10)]);
        assert_eq!(thread_delta(&before, &reused), None);
        assert_eq!(thread_delta(&before, &before), Some(0));
    }

    #[test]
    fn marks_fall_back_to_ticks() {
        let ms = Duration::from_millis;
        let mark = |threads: Option<BTreeMap<u32, u64>>, ticks: Option<Duration>| CpuMark {
            threads,
            ticks,
        };
        let a = mark(Some(BTreeMap::from([(1, 0), (2, 0)])), Some(ms(10)));
        let b = mark(Some(BTreeMap::from([(1, 5_000_000)])), Some(ms(30)));
        let c = mark(Some(BTreeMap::from([(1, 7_000_000), (2, 1)])), Some(ms(30)));
        assert_eq!(
            a.until(&c),
            Some(CpuUse {
                time: Duration::from_nanos(7_000_001),
                precise: true
            })
        );
        // Thread 2 exited: the ticks difference.
        assert_eq!(
            a.until(&b),
            Some(CpuUse {
                time: ms(20),
                precise: false
            })
        );
        assert_eq!(mark(None, None).until(&a), None);
        assert_eq!(
            mark(None, Some(ms(1)))
                .until(&mark(None, Some(ms(3))))
                .map(|u| u.time),
            Some(ms(2))
        );
    }

    #[test]
    fn own_marks_are_readable() {
        if cfg!(target_os = "linux") {
            assert!(!thread_run_times(std::process::id()).unwrap().is_empty());
            let before = CpuMark::own();
            assert!(before.until(&CpuMark::own()).is_some());
        }
    }
}
