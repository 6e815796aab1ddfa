//! Link emulation for Quiver.
//!
//! - `sim` (another module): a seeded virtual-time network simulator.
//! - [`emu`] (Linux only): link emulation for real sockets with network namespaces, veths,
//!   htb, a classic-BPF loss classifier and a user-space delay "wire".

#[cfg(target_os = "linux")]
pub mod emu;
