//! `quiver interop` — placeholder until the runtime lands.

use clap::Subcommand;

/// Interop sub-commands.
#[derive(Subcommand, Debug)]
pub enum InteropCommand {
    /// Serve files over hq-interop.
    Server,
    /// Download URLs over hq-interop.
    Client,
}

/// Run an interop sub-command; returns the process exit code.
pub fn run(_cmd: InteropCommand) -> anyhow::Result<i32> {
    anyhow::bail!("interop endpoints are not built yet")
}
