//! `quiver netem` — placeholder until link emulation lands.

use clap::Args;

/// Arguments of `quiver netem`.
#[derive(Args, Debug)]
pub struct NetemArgs {}

/// Run `quiver netem`; returns the process exit code.
pub fn run(_args: NetemArgs) -> anyhow::Result<i32> {
    anyhow::bail!("link emulation is not built yet")
}
