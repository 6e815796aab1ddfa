//! Configuration shared by front-end and back-end: traffic classes, API-key tiers and
//! limits, read from TOML with embedded defaults ([`DEFAULT_TOML`], the crate's
//! `classes.toml`).
//!
//! A request's class comes from its API key's tier (`[keys]`: key → class name); the
//! header `X-Quiver-Class: NAME` may choose a class *no more urgent* than the key's tier
//! (a batch job on a latency key, never the reverse). Keys not listed get
//! `default_class` when `accept_unknown_keys` is true, else 401.

use crate::wire;
use quiver_proto::sched::StreamClass;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../classes.toml");

/// One traffic class.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    /// Name (as used in `[keys]` and `X-Quiver-Class`).
    pub name: String,
    /// Stream priority (0 = most urgent).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Multi-level scheduler level (0 = highest).
    #[serde(default)]
    pub level: u8,
    /// Deadline after the stream is opened, in milliseconds.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

fn default_priority() -> u8 {
    StreamClass::DEFAULT_PRIORITY
}

impl ClassDef {
    /// The QUIC stream class of a request of this class.
    pub fn stream_class(&self) -> StreamClass {
        let c = StreamClass::new()
            .with_priority(self.priority)
            .with_level(self.level);
        match self.deadline_ms {
            Some(ms) => c.with_deadline(quiver_proto::sched::Deadline::AfterOpen(
                Duration::from_millis(ms),
            )),
            None => c,
        }
    }

    /// Urgency order: smaller is more urgent (level, then priority, then deadline).
    pub fn urgency(&self) -> (u8, u8, u64) {
        (
            self.level,
            self.priority,
            self.deadline_ms.unwrap_or(u64::MAX),
        )
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Per-token latency target in milliseconds.
    pub token_target_ms: u64,
    /// Front-end queue bound (429 beyond).
    pub queue: usize,
    /// Front-end requests in flight on the QUIC connection.
    pub max_inflight: usize,
    /// Largest prompt in bytes.
    pub max_prompt_bytes: usize,
    /// Largest `max_tokens`.
    pub max_tokens_limit: u32,
    /// Class for keys without a tier.
    pub default_class: String,
    /// Accept keys not in `keys`.
    pub accept_unknown_keys: bool,
    /// Classes, by index on the wire.
    #[serde(rename = "class")]
    pub classes: Vec<ClassDef>,
    /// API key → class name.
    #[serde(default)]
    pub keys: HashMap<String, String>,
}

/// A configuration that does not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("configuration: {0}")]
    Toml(toml::de::Error),
    /// Valid TOML, inconsistent content.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Default for ServeConfig {
    fn default() -> Self {
        // The embedded file is checked by a unit test.
        ServeConfig::from_toml(DEFAULT_TOML)
            .unwrap_or_else(|e| panic!("embedded classes.toml: {e}"))
    }
}

impl ServeConfig {
    /// Parse and check a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let c: ServeConfig = toml::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.classes.is_empty() || self.classes.len() > 255 {
            return bad("between 1 and 255 [[class]] entries are needed".into());
        }
        for (i, c) in self.classes.iter().enumerate() {
            if self.classes[..i].iter().any(|d| d.name == c.name) {
                return bad(format!("class {:?} defined twice", c.name));
            }
        }
        if self.class_index(&self.default_class).is_none() {
            return bad(format!(
                "default_class {:?} is not a class",
                self.default_class
            ));
        }
        for (k, class) in &self.keys {
            if self.class_index(class).is_none() {
                return bad(format!("key {k:?}: class {class:?} is not defined"));
            }
        }
        if self.queue == 0 || self.max_inflight == 0 {
            return bad("queue and max_inflight must be at least 1".into());
        }
        if self.max_prompt_bytes > wire::MAX_PAYLOAD - 1024 {
            return bad(format!(
                "max_prompt_bytes above {}",
                wire::MAX_PAYLOAD - 1024
            ));
        }
        Ok(())
    }

    /// Index of the class named `name`.
    pub fn class_index(&self, name: &str) -> Option<u8> {
        self.classes
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The class with index `i`.
    pub fn class(&self, i: u8) -> Option<&ClassDef> {
        self.classes.get(usize::from(i))
    }

    /// Per-token latency target.
    pub fn token_target(&self) -> Duration {
        Duration::from_millis(self.token_target_ms)
    }
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        ConfigError::Toml(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let c = ServeConfig::default();
        assert_eq!(c.class_index("latency"), Some(0));
        assert_eq!(c.class_index("BATCH"), Some(2));
        assert!(c.class(0).unwrap().urgency() < c.class(2).unwrap().urgency());
        assert_eq!(c.class(2).unwrap().stream_class().level, 1);
    }

    #[test]
    fn rejects_inconsistent() {
        let t = DEFAULT_TOML.replace("default_class = \"standard\"", "default_class = \"gold\"");
        assert!(matches!(
            ServeConfig::from_toml(&t),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            ServeConfig::from_toml("x = 1"),
            Err(ConfigError::Toml(_))
        ));
    }
}
