//! `quiver` — the command-line front end of the Quiver QUIC stack.
//!
//! Sub-commands live in one module each: `interop` (quic-interop-runner style client and
//! server), `netem` (link emulation shell and topologies), `bench` and `serve` (LLM
//! serving front-end and back-end).

use clap::{Parser, Subcommand};

mod bench;
mod ccp;
mod interop;
mod netem;
mod serve;

/// Quiver: a programmable QUIC stack and the systems built on it.
#[derive(Parser, Debug)]
#[command(name = "quiver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Interop endpoints following the quic-interop-runner conventions.
    #[command(subcommand)]
    Interop(interop::InteropCommand),
    /// Run a command behind an emulated link (rate, delay, loss), or build a topology.
    Netem(netem::NetemArgs),
    /// Benchmarks of Quiver against quinn on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// CCP: check datapath programs, run the congestion control agent.
    #[command(subcommand)]
    Ccp(ccp::CcpCommand),
    /// QoS-aware LLM serving: OpenAI-compatible front-end, QUIC back-end, model router.
    #[command(subcommand)]
    Serve(serve::ServeCommand),
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Interop(cmd) => interop::run(cmd),
        Command::Netem(args) => netem::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Ccp(cmd) => ccp::run(cmd),
        Command::Serve(cmd) => serve::run(cmd),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("quiver: error: {e:#}");
            std::process::exit(1);
        }
    }
}
