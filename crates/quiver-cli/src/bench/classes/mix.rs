//! Request classes of the `classes` experiment and the `--mix FILE.toml` format.
//!
//! ```toml
//! [[class]]
//! name = "realtime"
//! size = "8KiB"      # bytes: an integer, or a string with a unit (B, KB, KiB, MB, ...)
//! deadline = "1s"    # after the request arrives: "250ms", "1.5s", "2s"
//! priority = 0       # 0 = most urgent
//! level = 0          # multilevel queue, 0 = highest
//! share = 1.0        # relative weight of this class among the requests
//! ```

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

use super::super::size::parse_size;

/// One request class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSpec {
    /// Name shown in the table.
    pub name: String,
    /// Request (and echoed response) size in bytes; the first byte is the class tag.
    pub size: usize,
    /// Deadline after the request's arrival.
    pub deadline: Duration,
    /// Scheduler priority (0 = most urgent).
    pub priority: u8,
    /// Multilevel-queue level (0 = highest).
    pub level: u8,
    /// Relative weight among the classes.
    pub share: f64,
}

/// Error reading a `--mix` file.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// The file could not be read.
    #[error("cannot read mix file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid mix file: {0}")]
    Toml(String),
    /// A field has an invalid value.
    #[error("invalid mix file: class {class:?}: {reason}")]
    Field {
        /// The class name (or index).
        class: String,
        /// What is wrong.
        reason: String,
    },
    /// No classes at all.
    #[error("invalid mix file: no [[class]] entries")]
    Empty,
    /// More classes than a 1-byte tag can name.
    #[error("invalid mix file: at most 255 classes")]
    TooMany,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFile {
    class: Vec<RawClass>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Int(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: String,
    size: SizeValue,
    deadline: String,
    #[serde(default)]
    priority: u8,
    #[serde(default)]
    level: u8,
    #[serde(default = "one")]
    share: f64,
}

fn one() -> f64 {
    1.0
}

/// The seed's three classes: real-time short, free-tier short, long; equal shares.
pub fn default_mix() -> Vec<ClassSpec> {
    let class = |name: &str, size, secs, priority, level| ClassSpec {
        name: name.to_owned(),
        size,
        deadline: Duration::from_secs(secs),
        priority,
        level,
        share: 1.0,
    };
    vec![
        class("rt-short", 8192, 1, 0, 0),
        class("free-short", 8192, 2, 4, 1),
        class("long", 104_858, 7, 4, 1),
    ]
}

/// Parses a duration such as `100ms`, `1.5s`, `250us`, `2m` (no unit = milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 100ms, 1.5s)"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1e-3,
        "s" => 1.0,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e6).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses the text of a mix file.
pub fn parse_mix(text: &str) -> Result<Vec<ClassSpec>, MixError> {
    let file: MixFile = toml::from_str(text).map_err(|e| MixError::Toml(e.to_string()))?;
    if file.class.is_empty() {
        return Err(MixError::Empty);
    }
    if file.class.len() > 255 {
        return Err(MixError::TooMany);
    }
    let mut out = Vec::with_capacity(file.class.len());
    for raw in file.class {
        let field = |reason: String| MixError::Field {
            class: raw.name.clone(),
            reason,
        };
        let size = match &raw.size {
            SizeValue::Int(n) => *n,
            SizeValue::Text(t) => parse_size(t).map_err(|e| field(format!("size: {e}")))?,
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|&n| (1..=u32::MAX as usize).contains(&n))
            .ok_or_else(|| field(format!("size {size} must be between 1 B and 4 GiB")))?;
        let deadline =
            parse_duration(&raw.deadline).map_err(|e| field(format!("deadline: {e}")))?;
        if deadline.is_zero() {
            return Err(field("deadline must be positive".into()));
        }
        if !(raw.share.is_finite() && raw.share > 0.0) {
            return Err(field(format!("share {} must be positive", raw.share)));
        }
        out.push(ClassSpec {
            name: raw.name,
            size,
            deadline,
            priority: raw.priority,
            level: raw.level,
            share: raw.share,
        });
    }
    Ok(out)
}

/// Reads and parses a mix file.
pub fn load_mix(path: &Path) -> Result<Vec<ClassSpec>, MixError> {
    let text = std::fs::read_to_string(path).map_err(|source| MixError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_mix(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mix() {
        let mix = parse_mix(
            r#"
            [[class]]
            name = "rt"
            size = "8KiB"
            deadline = "1s"
            priority = 0
            level = 0
            share = 2

            [[class]]
            name = "long"
            size = 104858
            deadline = "7000ms"
            priority = 5
            level = 1
            "#,
        )
        .unwrap();
        assert_eq!(mix.len(), 2);
        assert_eq!(mix[0].size, 8192);
        assert_eq!(mix[0].share, 2.0);
        assert_eq!(mix[1].deadline, Duration::from_secs(7));
        assert_eq!(mix[1].priority, 5);
        assert_eq!(mix[1].share, 1.0);
    }

    #[test]
    fn rejects_bad_mixes() {
        assert!(matches!(parse_mix("class = []"), Err(MixError::Empty)));
        assert!(matches!(parse_mix("not toml ["), Err(MixError::Toml(_))));
        let bad = |body: &str| parse_mix(&format!("[[class]]\nname = \"x\"\n{body}"));
        assert!(matches!(
            bad("size = 0\ndeadline = \"1s\""),
            Err(MixError::Field { .. })
        ));
        assert!(matches!(
            bad("size = 10\ndeadline = \"soon\""),
            Err(MixError::Field { .. })
        ));
        assert!(matches!(
            bad("size = 10\ndeadline = \"1s\"\nshare = -1"),
            Err(MixError::Field { .. })
        ));
        assert!(matches!(
            bad("size = 10\ndeadline = \"1s\"\ncolour = 1"),
            Err(MixError::Toml(_))
        ));
        assert!(matches!(
            bad("size = 10\ndeadline = \"1s\"\npriority = 300"),
            Err(MixError::Toml(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn default_mix_is_the_seed() {
        let m = default_mix();
        assert_eq!(
            m.iter().map(|c| c.size).collect::<Vec<_>>(),
            [8192, 8192, 104_858]
        );
        assert_eq!(m[0].level, 0);
        assert!(m[0].priority < m[1].priority);
    }
}
