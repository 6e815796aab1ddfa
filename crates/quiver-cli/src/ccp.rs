//! `quiver ccp ...`: the congestion control plane (issue 12).
//!
//! `check` compiles a datapath program and prints its errors (or, with `--dump`, the
//! compiled instructions); `agent` runs the agent on a Unix datagram socket that
//! datapaths (`quiver_ccp::datapath::CcpControllerFactory::unix`) connect to.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

/// CCP sub-commands.
#[derive(Subcommand, Debug)]
pub enum CcpCommand {
    /// Compile a CCP datapath program and report errors with line, column and a snippet.
    Check(CheckArgs),
    /// Run the CCP agent: algorithms for every datapath flow that connects over IPC.
    Agent(AgentArgs),
}

/// Arguments of `quiver ccp agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Default algorithm (flows may ask for another shipped one by name): reno, cubic.
    #[arg(long, default_value = "cubic")]
    pub alg: String,
    /// How often datapaths report: `rtt` (once per round trip) or a duration (`10ms`).
    #[arg(long, default_value = "rtt")]
    pub report_interval: String,
    /// Unix datagram socket path to listen on (datapaths use the same path).
    #[arg(long, default_value = "/tmp/ccp/quiver-agent")]
    pub ipc: PathBuf,
}

/// Arguments of `quiver ccp check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The program source (`-` for standard input).
    pub file: PathBuf,
    /// Print the compiled instructions and the encoded size.
    #[arg(long)]
    pub dump: bool,
}

/// Runs a `ccp` sub-command; returns the process exit code.
pub fn run(cmd: CcpCommand) -> anyhow::Result<i32> {
    match cmd {
        CcpCommand::Check(args) => check(&args),
        CcpCommand::Agent(args) => agent(&args),
    }
}

fn agent(args: &AgentArgs) -> anyhow::Result<i32> {
    use quiver_ccp::algs::{self, ReportInterval};
    let interval = if args.report_interval == "rtt" {
        ReportInterval::PerRtt
    } else {
        let d = quiver_netem::emu::parse_duration(&args.report_interval)
            .map_err(|e| anyhow::anyhow!("--report-interval: {e} (use `rtt` or e.g. `10ms`)"))?;
        anyhow::ensure!(!d.is_zero(), "--report-interval must be positive");
        ReportInterval::Every(d)
    };
    let Some(default) = algs::by_name(&args.alg, interval) else {
        anyhow::bail!(
            "unknown algorithm {:?}; known: {}",
            args.alg,
            algs::NAMES.join(", ")
        );
    };
    let mut agent = quiver_ccp::agent::Agent::new(default);
    for name in algs::NAMES.iter().filter(|n| **n != args.alg) {
        if let Some(a) = algs::by_name(name, interval) {
            agent = agent.with_algorithm(a);
        }
    }
    let mut sock = quiver_ccp::ipc::UnixAgentSocket::bind(&args.ipc)
        .with_context(|| format!("binding {}", args.ipc.display()))?;
    eprintln!(
        "ccp agent: {} (report interval {}), listening on {}",
        args.alg,
        args.report_interval,
        args.ipc.display()
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    agent.run(&mut sock, &stop).context("agent socket")?;
    Ok(0)
}

fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let (name, source) = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        ("<stdin>".to_string(), s)
    } else {
        let s = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
        (args.file.display().to_string(), s)
    };
    match quiver_ccp::lang::compile_with_warnings(&source) {
        Ok(c) => {
            for w in &c.warnings {
                eprint!("{}", w.render(&source, &name));
            }
            let p = &c.program;
            println!(
                "{name}: ok: {} events, {} instructions ({} variable declarations), {} report fields, {} bytes encoded",
                p.events().len(),
                p.instrs().len(),
                p.num_defs(),
                p.num_report_fields(),
                p.encoded_len()
            );
            if args.dump {
                print!("{p}");
            }
            Ok(0)
        }
        Err(e) => {
            eprint!("{}", e.render(&source, &name));
            let n = e
                .diagnostics
                .iter()
                .filter(|d| d.severity == quiver_ccp::lang::Severity::Error)
                .count();
            eprintln!("{name}: {n} error(s)");
            Ok(1)
        }
    }
}
