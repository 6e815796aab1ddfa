//! `quiver ccp ...`: the congestion control plane (issue 12).
//!
//! `check` compiles a datapath program and prints its errors (or, with `--dump`, the
//! compiled instructions); the agent lives under `agent`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

/// CCP sub-commands.
#[derive(Subcommand, Debug)]
pub enum CcpCommand {
    /// Compile a CCP datapath program and report errors with line, column and a snippet.
    Check(CheckArgs),
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
    }
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
