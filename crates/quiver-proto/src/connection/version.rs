//! Version negotiation inside a connection (RFC 9000 §6, RFC 9368): the server's
//! compatible choice before TLS starts, the client following it, the client starting over
//! after a Version Negotiation packet, and the `version_information` checks.
//! The policy (which version, what is valid) lives in [`crate::version`].

use std::sync::Arc;
use std::time::Instant;

use super::spaces::{DirKeys, Level, PnSpace};
use super::{Connection, ConnectionError};
use crate::crypto::{initial_keys, TlsSession};
use crate::error::TransportError;
use crate::shared::{Epoch, Side, SpaceId};
use crate::transport_params::TransportParameters;
use crate::version::{self, ClientNegotiation, HelloScan, VersionInformation, MAX_HELLO_SCAN};

/// What a server needs to start TLS in another version than the client's first Initial.
pub(crate) struct ServerChoice {
    pub(crate) crypto: Arc<rustls::ServerConfig>,
    /// Our transport parameters; `version_information` is filled in with the choice.
    pub(crate) params: TransportParameters,
    /// The server's versions, preferred first.
    pub(crate) supported: Vec<u32>,
    /// Whether the server accepts 0-RTT ([`crate::config::ServerConfig::zero_rtt`]).
    pub(crate) zero_rtt: bool,
}

/// What a client needs to start over after a Version Negotiation packet.
pub(crate) struct ClientRestart {
    pub(crate) crypto: Arc<rustls::ClientConfig>,
    pub(crate) server_name: String,
    /// Our transport parameters; `version_information` is refilled for the new version.
    pub(crate) params: TransportParameters,
}

/// Per-connection version negotiation state.
#[derive(Default)]
pub(crate) struct VersionState {
    /// The version of the client's first Initial (after a Version Negotiation, the version
    /// the client started over with).
    pub(crate) original: u32,
    /// Client: our versions and whether we reacted to Version Negotiation.
    pub(crate) client: ClientNegotiation,
    /// Client: inputs to start over after Version Negotiation.
    pub(crate) restart: Option<ClientRestart>,
    /// Server: the version is not chosen yet (TLS has read nothing).
    pub(crate) server_choice: Option<ServerChoice>,
    /// Server: Initial CRYPTO bytes held back until the ClientHello is complete.
    hello: Vec<u8>,
    /// Server after a compatible switch: the client's Initial keys in the original
    /// version, for Initials it sends before it sees ours (RFC 9368 §2.3).
    pub(crate) original_initial_remote: Option<DirKeys>,
}

impl VersionState {
    /// State for a client whose first Initial uses `versions[0]`.
    pub(crate) fn client(versions: Vec<u32>, restart: ClientRestart) -> Self {
        Self {
            original: versions.first().copied().unwrap_or(version::VERSION_1),
            client: ClientNegotiation {
                versions,
                reacted_to_vn: false,
            },
            restart: Some(restart),
            ..Self::default()
        }
    }

    /// State for a server whose client's first Initial used `original`; `choice` when the
    /// server has more than one version to choose from.
    pub(crate) fn server(original: u32, choice: Option<ServerChoice>) -> Self {
        Self {
            original,
            server_choice: choice,
            ..Self::default()
        }
    }
}

/// What to do with a long-header packet whose version is not the connection's.
pub(super) enum OtherVersion {
    /// Drop it.
    Drop,
    /// A client Initial in the original version after the server switched: open it with
    /// the original version's keys.
    OriginalInitial,
}

impl Connection {
    /// Decide about a long-header packet of `packet_version` ≠ `self.version`.
    pub(super) fn on_other_version(&self, packet_version: u32, initial: bool) -> OtherVersion {
        match self.side {
            Side::Server => {
                if initial
                    && packet_version == self.version_state.original
                    && self.version_state.original_initial_remote.is_some()
                {
                    OtherVersion::OriginalInitial
                } else {
                    OtherVersion::Drop
                }
            }
            // A client offers only versions TLS can derive keys for (see
            // `crate::version`), so a server never switches it: other versions are dropped.
            Side::Client => OtherVersion::Drop,
        }
    }

    /// Server: before TLS reads the ClientHello, choose the version from the client's
    /// `version_information` (RFC 9368 §2.3) and restart TLS in it if it differs.
    /// Returns `false` while the ClientHello is incomplete (its bytes are held back).
    pub(super) fn choose_server_version(&mut self) -> Result<bool, TransportError> {
        while let Some(chunk) = self.levels[Epoch::Initial.idx()].crypto_recv.read() {
            self.version_state.hello.extend_from_slice(&chunk);
        }
        let hello = std::mem::take(&mut self.version_state.hello);
        let client_available = match version::scan_client_hello(&hello) {
            HelloScan::NeedMore if hello.len() < MAX_HELLO_SCAN => {
                self.version_state.hello = hello;
                return Ok(false);
            }
            HelloScan::Found(raw) => TransportParameters::decode(Side::Client, raw)
                .ok()
                .and_then(|p| p.version_information)
                .map(|i| i.available)
                .unwrap_or_default(),
            HelloScan::NeedMore | HelloScan::Absent => Vec::new(),
        };
        if let Some(choice) = self.version_state.server_choice.take() {
            let original = self.version_state.original;
            let chosen = version::server_choose(&choice.supported, original, &client_available);
            if chosen != self.version {
                let mut params = choice.params;
                params.version_information = Some(VersionInformation {
                    chosen,
                    available: choice.supported,
                });
                let mut encoded = Vec::new();
                params.encode(&mut encoded);
                let mut tls = TlsSession::server_for_version(choice.crypto, chosen, encoded)
                    .map_err(|e| TransportError::INTERNAL_ERROR(e.to_string()))?;
                if !choice.zero_rtt {
                    tls.reject_early_data();
                }
                let keys = initial_keys(chosen, &self.orig_dst_cid, Side::Server)
                    .map_err(|e| TransportError::INTERNAL_ERROR(e.to_string()))?;
                self.tls = tls;
                self.tls_version = chosen;
                self.levels[0].local = Some(keys.local.into());
                let old = self.levels[0].remote.replace(keys.remote.into());
                self.version_state.original_initial_remote = old;
                self.version = chosen;
            }
        }
        if !hello.is_empty() {
            self.tls.read_handshake(&hello)?;
        }
        Ok(true)
    }

    /// Client: a Version Negotiation packet listing `offered` arrived before anything
    /// else (RFC 9000 §6.2). Start over in the first of our versions that the server
    /// offers, or fail.
    pub(super) fn on_version_list(&mut self, now: Instant, offered: &[u32]) {
        if offered.contains(&self.version) || self.version_state.client.reacted_to_vn {
            return; // RFC 9000 §6.2 / RFC 9368 §2.4: ignore
        }
        let next = version::client_choose(&self.version_state.client.versions, offered);
        let result = match (next, self.version_state.restart.as_ref()) {
            (Some(v), Some(_)) => self.restart_in(now, v),
            _ => Err(None),
        };
        if let Err(e) = result {
            if let Some(e) = e {
                tracing::debug!(%e, "could not start over after version negotiation");
            }
            self.kill(ConnectionError::VersionMismatch);
        }
    }

    /// Start the connection over in `version`: a new ClientHello (with our
    /// `version_information` naming `version`), fresh Initial keys and packet numbers.
    fn restart_in(&mut self, now: Instant, version: u32) -> Result<(), Option<TransportError>> {
        let Some(r) = self.version_state.restart.as_ref() else {
            return Err(None);
        };
        let mut params = r.params.clone();
        params.version_information = Some(VersionInformation {
            chosen: version,
            available: vec![version],
        });
        let mut encoded = Vec::new();
        params.encode(&mut encoded);
        let tls =
            TlsSession::client_for_version(r.crypto.clone(), version, &r.server_name, encoded)
                .map_err(|_| None)?;
        let keys =
            initial_keys(version, &self.cids.remote_cid(), Side::Client).map_err(|_| None)?;
        self.tls = tls;
        self.tls_version = version;
        self.version = version;
        self.version_state.original = version;
        self.version_state.client.reacted_to_vn = true;
        self.levels[0] = Level::default();
        self.levels[0].local = Some(keys.local.into());
        self.levels[0].remote = Some(keys.remote.into());
        self.spaces[0] = PnSpace::new(SpaceId::Initial);
        self.write_level = Epoch::Initial;
        // 0-RTT sent in the old version is lost: stop sending early data. A pending
        // 0-RTT attempt ends as rejected at the handshake, which resends that data in
        // 1-RTT packets.
        self.zero_rtt.keys = None;
        self.pto_count = 0;
        self.drive_tls().map_err(Some)?;
        self.update_loss_timer(now);
        Ok(())
    }

    /// Check the peer's `version_information` (RFC 9368 §4).
    pub(super) fn validate_version_information(
        &self,
        p: &TransportParameters,
    ) -> Result<(), TransportError> {
        match self.side {
            Side::Client => self
                .version_state
                .client
                .validate(self.version, p.version_information.as_ref()),
            Side::Server => version::server_validate(
                self.version_state.original,
                p.version_information.as_ref(),
            ),
        }
    }
}
