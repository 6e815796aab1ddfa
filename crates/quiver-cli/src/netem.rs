//! `quiver netem` — run a command behind an emulated link, or bring up a topology.
//!
//! ```text
//! quiver netem --profile 3g -- ping -c 3 100.64.0.1
//! quiver netem --rate 10mbit --delay 20ms --uplink-rate 1mbit -- ./client
//! quiver netem topology lab.topo                  # hold until Ctrl-C
//! quiver netem topology lab.topo --run client -- ./client --server 10.77.0.2
//! quiver netem cleanup                            # remove leftovers of crashed runs
//! ```
//!
//! Like mahimahi's shells, the command runs in a fresh network namespace whose only way
//! out is the emulated link to the root namespace. `--delay` is one-way and applies to
//! each direction: `--delay 25ms` adds 50 ms to the round-trip time. Uplink is from the
//! command to the host, downlink from the host to the command.

#[cfg(target_os = "linux")]
pub use linux::{run, NetemArgs};

#[cfg(not(target_os = "linux"))]
pub use other::{run, NetemArgs};

#[cfg(not(target_os = "linux"))]
mod other {
    use clap::Args;

    /// Arguments of `quiver netem` (link emulation needs Linux).
    #[derive(Args, Debug)]
    pub struct NetemArgs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    }

    /// Link emulation needs Linux namespaces.
    pub fn run(_args: NetemArgs) -> anyhow::Result<i32> {
        anyhow::bail!("link emulation needs Linux (network namespaces, veth, tc)")
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::process::ExitStatusExt;
    use std::path::PathBuf;
    use std::process::ExitStatus;
    use std::time::Duration;

    use anyhow::Context;
    use clap::{Args, Subcommand};
    use quiver_netem::emu::{
        cleanup_stale, parse_duration, parse_size, parse_topology, EmuError, Endpoint, LinkParams,
        Loss, Profile, Rate, Shell, Topology,
    };
    use tokio::signal::unix::{signal, Signal, SignalKind};

    /// Arguments of `quiver netem`.
    #[derive(Args, Debug)]
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Profiles (each direction alike): 3g = 5 Mbit/s, 25 ms one-way delay (50 ms added \
                      RTT), 0.5% loss; lan = 1 Gbit/s, 50 us, 1 MB queue; wifi = 50 Mbit/s, 5 ms +- 2 ms, \
                      0.1% loss; lte = 20 Mbit/s, 20 ms +- 5 ms, 0.1% loss; satellite = 20 Mbit/s, 300 ms, \
                      0.1% loss; none (or lossless) = no impairment.\nExplicit flags override the profile; --uplink-*/--downlink-* override \
                      one direction (uplink: command → host)."
    )]
    pub struct NetemArgs {
        #[command(subcommand)]
        command: Option<NetemCommand>,
        #[command(flatten)]
        shell: Box<ShellArgs>,
    }

    #[derive(Subcommand, Debug)]
    enum NetemCommand {
        /// Bring up a topology described in FILE; print how to enter each node; hold it
        /// until Ctrl-C, or run a command in one node with --run.
        Topology(TopologyArgs),
        /// Remove namespaces and interfaces left behind by crashed runs.
        Cleanup,
    }

    #[derive(Args, Debug)]
    struct TopologyArgs {
        /// Topology file: `node A B`, `bridge LAN`, `link A LAN rate=5mbit delay=25ms loss=0.5%`
        /// (see the quiver-netem `emu` documentation).
        file: PathBuf,
        /// Run the command after `--` in this node, then tear down and return its exit code.
        #[arg(long, value_name = "NODE", requires = "cmd")]
        run: Option<String>,
        /// Command for --run.
        #[arg(last = true)]
        cmd: Vec<String>,
    }

    /// A rate or `unlimited`.
    #[derive(Debug, Clone, Copy)]
    struct Limit(Option<Rate>);

    fn limit(s: &str) -> Result<Limit, EmuError> {
        if s == "unlimited" {
            Ok(Limit(None))
        } else {
            Rate::parse(s).map(|r| Limit(Some(r)))
        }
    }

    #[derive(Args, Debug)]
    struct ShellArgs {
        /// Named link settings (3g, lan, wifi, lte, satellite, none); other flags override it.
        #[arg(long, value_parser = Profile::parse)]
        profile: Option<Profile>,
        /// Rate of each direction: 5mbit, 500kbit, 1gbit, 10Mbps (bits), 1MBps (bytes), unlimited.
        #[arg(long, value_parser = limit, allow_hyphen_values = true)]
        rate: Option<Limit>,
        /// One-way delay of each direction: 25ms, 1s.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        delay: Option<Duration>,
        /// Uniform jitter of each direction (never reorders).
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        jitter: Option<Duration>,
        /// Random loss of each direction: 0.5% or 0.005.
        #[arg(long, value_parser = Loss::parse, allow_hyphen_values = true)]
        loss: Option<Loss>,
        /// Bottleneck queue of each direction in bytes: 64kb, 1mb.
        #[arg(long, value_parser = parse_size, allow_hyphen_values = true)]
        queue: Option<u64>,
        /// Uplink (command → host) rate.
        #[arg(long, value_parser = limit, allow_hyphen_values = true)]
        uplink_rate: Option<Limit>,
        /// Uplink one-way delay.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        uplink_delay: Option<Duration>,
        /// Uplink jitter.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        uplink_jitter: Option<Duration>,
        /// Uplink loss.
        #[arg(long, value_parser = Loss::parse, allow_hyphen_values = true)]
        uplink_loss: Option<Loss>,
        /// Downlink (host → command) rate.
        #[arg(long, value_parser = limit, allow_hyphen_values = true)]
        downlink_rate: Option<Limit>,
        /// Downlink one-way delay.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        downlink_delay: Option<Duration>,
        /// Downlink jitter.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        downlink_jitter: Option<Duration>,
        /// Downlink loss.
        #[arg(long, value_parser = Loss::parse, allow_hyphen_values = true)]
        downlink_loss: Option<Loss>,
        /// Seed of the jitter generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The command to run (default: $SHELL, or /bin/sh).
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<String>,
    }

    fn apply(
        p: &mut LinkParams,
        rate: Option<Limit>,
        delay: Option<Duration>,
        jitter: Option<Duration>,
        loss: Option<Loss>,
    ) {
        if let Some(Limit(r)) = rate {
            p.rate = r;
        }
        if let Some(d) = delay {
            p.delay = d;
        }
        if let Some(j) = jitter {
            p.jitter = j;
        }
        if let Some(l) = loss {
            p.loss = l;
        }
    }

    impl ShellArgs {
        /// (uplink, downlink)
        fn params(&self) -> (LinkParams, LinkParams) {
            let mut base = self.profile.map(Profile::params).unwrap_or_default();
            apply(&mut base, self.rate, self.delay, self.jitter, self.loss);
            if self.queue.is_some() {
                base.queue_bytes = self.queue;
            }
            let mut up = base;
            apply(
                &mut up,
                self.uplink_rate,
                self.uplink_delay,
                self.uplink_jitter,
                self.uplink_loss,
            );
            let mut down = base;
            apply(
                &mut down,
                self.downlink_rate,
                self.downlink_delay,
                self.downlink_jitter,
                self.downlink_loss,
            );
            (up, down)
        }
    }

    /// Run `quiver netem`; returns the process exit code.
    pub fn run(args: NetemArgs) -> anyhow::Result<i32> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start tokio runtime")?;
        let result = rt.block_on(async {
            // Catch signals before anything is created, so that none of them can kill us
            // half-way: everything created is then removed by the destructors.
            let mut signals = Signals::new()?;
            match args.command {
                Some(NetemCommand::Topology(t)) => topology(t, &mut signals).await,
                Some(NetemCommand::Cleanup) => {
                    let removed = cleanup_stale()?;
                    eprintln!(
                        "quiver netem: removed {} stale item(s) {removed:?}",
                        removed.len()
                    );
                    Ok(0)
                }
                None => shell(*args.shell, &mut signals).await,
            }
        });
        match result {
            Err(e) => match e.downcast_ref::<EmuError>() {
                Some(emu) if emu.is_usage() => {
                    eprintln!("quiver netem: error: {e:#}");
                    Ok(2)
                }
                _ => Err(e),
            },
            ok => ok,
        }
    }

    struct Signals {
        int: Signal,
        term: Signal,
        hup: Signal,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Sig {
        Int,
        Term,
        Hup,
    }

    impl Signals {
        fn new() -> anyhow::Result<Self> {
            Ok(Self {
                int: signal(SignalKind::interrupt()).context("catch SIGINT")?,
                term: signal(SignalKind::terminate()).context("catch SIGTERM")?,
                hup: signal(SignalKind::hangup()).context("catch SIGHUP")?,
            })
        }

        async fn next(&mut self) -> Sig {
            tokio::select! {
                _ = self.int.recv() => Sig::Int,
                _ = self.term.recv() => Sig::Term,
                _ = self.hup.recv() => Sig::Hup,
            }
        }
    }

    /// Runs `cmd` to completion. SIGINT is left to the command (the terminal sends it to
    /// the whole foreground group, as with a shell); SIGTERM or SIGHUP kill it.
    async fn supervise(cmd: std::process::Command, signals: &mut Signals) -> anyhow::Result<i32> {
        let program = format!("{:?}", cmd.get_args().nth(3).unwrap_or_default());
        let mut child = tokio::process::Command::from(cmd)
            .spawn()
            .with_context(|| format!("start {program}"))?;
        let status: ExitStatus = loop {
            tokio::select! {
                status = child.wait() => break status.context("wait for the command")?,
                sig = signals.next() => {
                    if sig != Sig::Int {
                        let _ = child.start_kill();
                    }
                }
            }
        };
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1))
    }

    async fn shell(args: ShellArgs, signals: &mut Signals) -> anyhow::Result<i32> {
        let (up, down) = args.params();
        let shell = Shell::up(up, down, args.seed)?;
        eprintln!("quiver netem: uplink   (command → host): {up}");
        eprintln!("quiver netem: downlink (host → command): {down}");
        eprintln!(
            "quiver netem: the command reaches the host at {} ; the host reaches the command at {} (namespace {}, host interface {})",
            shell.host_addr(),
            shell.shell_addr(),
            shell.netns(),
            shell.host_interface()
        );
        let (program, rest) = match args.cmd.split_first() {
            Some((p, rest)) => (p.clone(), rest.to_vec()),
            None => (
                std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
                Vec::new(),
            ),
        };
        let mut cmd = shell.command(&program)?;
        cmd.args(&rest);
        let code = supervise(cmd, signals).await;
        let report = shell.shutdown()?;
        for w in report.wires {
            tracing::info!(
                "wire: {} frames up, {} down, CPU {:?} ({:?} per frame)",
                w.frames[1],
                w.frames[0],
                w.cpu,
                w.cpu_per_frame()
            );
        }
        code
    }

    async fn topology(args: TopologyArgs, signals: &mut Signals) -> anyhow::Result<i32> {
        let text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("read {}", args.file.display()))?;
        let spec = parse_topology(&text)
            .map_err(|e| anyhow::Error::new(e).context(args.file.display().to_string()))?;
        if let Some(node) = &args.run {
            spec.endpoint(node)
                .ok()
                .filter(|e| matches!(e, Endpoint::Node(_)))
                .ok_or_else(|| {
                    anyhow::Error::new(EmuError::Topology(format!("--run {node:?}: no such node")))
                })?;
        }
        let topo = Topology::up(&spec)?;
        for (i, l) in spec.links.iter().enumerate() {
            eprintln!("link {i}: {} → {}: {}", l.a, l.b, l.ab);
            eprintln!("link {i}: {} → {}: {}", l.b, l.a, l.ba);
        }
        for node in &spec.nodes {
            let addrs: Vec<String> = topo
                .interfaces(node)
                .iter()
                .map(|i| format!("{} {}", i.name, i.addr))
                .collect();
            eprintln!(
                "node {node}: [{}]  enter with: ip netns exec {} bash",
                addrs.join(", "),
                topo.netns(node).unwrap_or_default()
            );
        }
        let code = match (&args.run, args.cmd.split_first()) {
            (Some(node), Some((program, rest))) => {
                let mut cmd = topo.command(node, program)?;
                cmd.args(rest);
                supervise(cmd, signals).await
            }
            _ => {
                eprintln!("quiver netem: topology is up; press Ctrl-C to tear it down");
                let sig = signals.next().await;
                eprintln!("quiver netem: {sig:?}: tearing down");
                Ok(0)
            }
        };
        topo.shutdown()?;
        code
    }
}
