//! Errors of the link emulator, sorted by who is to blame.

use std::io;

/// Everything that can go wrong while parsing, building or tearing down an emulated network.
///
/// Usage errors (bad values, bad configuration) are told apart from environment errors
/// (privileges, missing tools, kernel refusals) by [`EmuError::is_usage`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmuError {
    /// A rate, duration, loss or size could not be parsed or is out of range.
    #[error("invalid {what} {input:?}: {reason}")]
    InvalidValue {
        /// Which kind of value (`"rate"`, `"delay"`, `"loss"`, ...).
        what: &'static str,
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A profile name that is not known.
    #[error("unknown profile {0:?} (known profiles: {known})", known = crate::emu::Profile::NAMES.join(", "))]
    UnknownProfile(String),
    /// A topology file line could not be understood.
    #[error("topology file line {line}: {reason}")]
    Config {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The topology is inconsistent (unknown node, duplicate name, ...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// Creating namespaces and links needs root or CAP_NET_ADMIN.
    #[error("link emulation needs root or CAP_NET_ADMIN (and CAP_SYS_ADMIN for namespaces); run with sudo")]
    NotPrivileged,
    /// A required command-line tool is not installed.
    #[error("the `{tool}` command is not available ({hint})")]
    ToolMissing {
        /// Name of the tool (`ip`, `tc`).
        tool: &'static str,
        /// How to get it.
        hint: &'static str,
    },
    /// An `ip`/`tc` invocation failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl EmuError {
    /// True for errors caused by the caller's input (flags, values, topology files), for
    /// which a command-line front end should exit with status 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::InvalidValue { .. }
                | Self::UnknownProfile(_)
                | Self::Config { .. }
                | Self::Topology(_)
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of the emulator.
pub type Result<T, E = EmuError> = std::result::Result<T, E>;
