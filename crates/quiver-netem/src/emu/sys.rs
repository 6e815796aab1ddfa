//! The only `unsafe` code of quiver-netem: thin, checked wrappers over the Linux system
//! calls the emulator needs and `std` does not offer (setns, AF_PACKET sockets, ppoll,
//! per-thread CPU time, timer slack).
//!
//! Every function here takes and returns safe Rust types; callers never see a raw pointer.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Moves the **calling thread** (not the process) into the network namespace `ns`.
///
/// Sockets created afterwards by this thread belong to that namespace and stay there.
pub(crate) fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: setns has no memory-safety preconditions; the fd is valid for the duration
    // of the call because `ns` is borrowed.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPU time (user, system) consumed so far by the calling thread.
pub(crate) fn thread_cpu_time() -> io::Result<(Duration, Duration)> {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((tv(ru.ru_utime), tv(ru.ru_stime)))
}

/// Sets the calling thread's timer slack (how late the kernel may wake it), in nanoseconds.
pub(crate) fn set_timer_slack(ns: u32) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no user memory.
    let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, libc::c_ulong::from(ns), 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Size of `struct virtio_net_hdr` (no mergeable buffers), which precedes every frame
/// read from or written to a socket with `PACKET_VNET_HDR`.
pub(crate) const VNET_HDR_LEN: usize = 10;

/// What a receive returned.
pub(crate) enum Recv {
    /// A frame of this many bytes (virtio-net header included) arrived on the wire.
    Frame(usize),
    /// A frame that this socket's interface sent (ignore it).
    Outgoing,
    /// Nothing to read now.
    WouldBlock,
}

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to one interface of the calling
/// thread's network namespace, with `PACKET_VNET_HDR` so that frames carrying a partial
/// checksum (veths offload checksums) or GSO metadata are forwarded faithfully: the
/// virtio-net header read with a frame is written back with it.
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket on interface `ifname` (of the calling thread's namespace).
    pub(crate) fn bind(ifname: &str) -> io::Result<Self> {
        let cname = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let ifindex = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "ifindex out of range"))?;
        // Protocol 0: receive nothing until bound to the interface below.
        // SAFETY: plain system call without pointers.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        // Since Linux 4.20; without it outgoing frames are filtered by packet type.
        let _ = setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        // Large buffers absorb bursts while the wire thread sleeps; FORCE needs CAP_NET_ADMIN.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(&fd, libc::SOL_SOCKET, force, 8 << 20).is_err() {
                let _ = setsockopt_int(&fd, libc::SOL_SOCKET, plain, 8 << 20);
            }
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: the address points to a live sockaddr_ll and its exact size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Reads one frame (virtio-net header first) into `buf` without blocking.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        // SAFETY: as above, all-zero sockaddr_ll is valid.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes, `from`/`from_len` are live and
        // `from_len` holds the size of `from`.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(Recv::WouldBlock)
            } else {
                Err(e)
            };
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(Recv::Outgoing);
        }
        // n >= 0 here; MSG_TRUNC makes n the real length, which may exceed the buffer.
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {n} bytes truncated"),
            ));
        }
        Ok(Recv::Frame(n))
    }

    /// Writes one frame (virtio-net header first) to the interface.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is readable for `frame.len()` bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (nanosecond resolution,
/// unlike `poll`). Returns which descriptors are readable.
pub(crate) fn wait_readable<const N: usize>(
    fds: [&PacketSocket; N],
    timeout: Duration,
) -> io::Result<[bool; N]> {
    let mut pfds = fds.map(|s| libc::pollfd {
        fd: s.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    // c_long is 32 bits on some targets; subsec_nanos() < 10^9 fits either way.
    #[allow(clippy::unnecessary_fallible_conversions)]
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from(timeout.subsec_nanos()).unwrap_or(0),
    };
    // SAFETY: `pfds` is a live array of N pollfd, `ts` is a live timespec, and a null
    // signal mask means "leave the mask unchanged".
    let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), N as libc::nfds_t, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok([false; N])
        } else {
            Err(e)
        };
    }
    Ok(pfds.map(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0))
}

/// Sends `SIGKILL` to process `pid` (used only on processes left inside namespaces that
/// this crate created).
pub(crate) fn kill_process(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal a process group",
        ));
    }
    // SAFETY: kill has no memory-safety preconditions; pid > 0 targets exactly one process.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes an exclusive `flock` on `file`, waiting for it; released when the file is closed
/// (also when the process dies).
pub(crate) fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock has no memory-safety preconditions; the fd is valid while borrowed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
