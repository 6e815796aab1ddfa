//! qlog files: one JSON-SEQ trace per connection in a directory.
//!
//! The core emits typed events ([`quiver_proto::qlog`]) and serialises them with
//! [`JsonSeqWriter`]; this module supplies the files. Set a [`QlogDir`] as the
//! [`TransportConfig::event_subscriber`](crate::TransportConfig::event_subscriber) of a
//! client or server configuration and every connection made with it writes
//! `<odcid>_<client|server>.sqlog` (the original destination CID in lower-case hex,
//! the name the quic-interop-runner expects) into the directory. The library reads no
//! environment variable; `quiver interop` maps `QLOGDIR` to a [`QlogDir`].
//!
//! ```no_run
//! use std::sync::Arc;
//! let mut transport = quiver::TransportConfig::default();
//! transport.event_subscriber = Some(Arc::new(quiver::qlog::QlogDir::new("/tmp/qlog")));
//! ```
//!
//! Files are buffered and flushed at each connection state change and at the close;
//! one that cannot be created is reported with `tracing::warn!` and the connection
//! runs untraced.

pub use quiver_proto::qlog::{
    ConnectionInfo, Event, EventSubscriber, JsonSeqWriter, SubscriberFactory,
};

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A [`SubscriberFactory`] writing one qlog file per connection into a directory.
#[derive(Debug, Clone)]
pub struct QlogDir {
    dir: PathBuf,
}

impl QlogDir {
    /// Write traces into `dir` (created when the first connection starts, if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the connection `info` is traced to.
    pub fn file_name(info: &ConnectionInfo) -> String {
        let side = if info.side.is_client() {
            "client"
        } else {
            "server"
        };
        format!("{}_{side}.sqlog", info.odcid)
    }

    fn open(&self, info: &ConnectionInfo) -> std::io::Result<JsonSeqWriter<BufWriter<File>>> {
        std::fs::create_dir_all(&self.dir)?;
        let file = File::create(self.dir.join(Self::file_name(info)))?;
        // Wall-clock time of the connection's creation: now minus the time since then.
        let age = Instant::now().saturating_duration_since(info.created);
        let created = SystemTime::now()
            .checked_sub(age)
            .unwrap_or_else(SystemTime::now);
        let reference_ms = created
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        JsonSeqWriter::new(
            BufWriter::with_capacity(64 * 1024, file),
            info,
            reference_ms,
            "quiver",
        )
    }
}

impl SubscriberFactory for QlogDir {
    fn build(&self, info: &ConnectionInfo) -> Option<Box<dyn EventSubscriber>> {
        match self.open(info) {
            Ok(w) => Some(Box::new(w)),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), %e, "cannot create qlog file");
                None
            }
        }
    }
}
