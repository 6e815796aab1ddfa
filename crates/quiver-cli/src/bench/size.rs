//! Byte sizes on the command line: `100MiB`, `10MB`, `512KiB`, `1048576`, ...

use std::fmt;

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Nothing was given.
    #[error("empty size")]
    Empty,
    /// The number part is missing or is not a non-negative integer.
    #[error("`{0}` is not a size (expected e.g. 100MiB, 10MB, 4096)")]
    Invalid(String),
    /// The unit is not one of the accepted suffixes.
    #[error("unknown unit `{0}` (use B, KB, MB, GB, KiB, MiB or GiB)")]
    UnknownUnit(String),
    /// The value does not fit in 64 bits.
    #[error("size `{0}` is too large")]
    Overflow(String),
    /// Zero bytes cannot be measured.
    #[error("size must be at least 1 byte")]
    Zero,
}

/// A number of bytes, printed with a binary unit when it is a whole multiple of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, SizeError> {
        parse_size(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (scale, unit) in UNITS {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{} {unit}", self.0 / scale);
            }
        }
        for (scale, unit) in UNITS {
            if self.0 >= scale {
                // Display only; precision loss is irrelevant here.
                return write!(f, "{:.2} {unit}", self.0 as f64 / scale as f64);
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// Parse a positive byte count: a decimal integer optionally followed by a unit.
///
/// Units (case-insensitive, optional whitespace before them): `B`; SI `KB`, `MB`, `GB`
/// (powers of 1000); IEC `KiB`, `MiB`, `GiB` (powers of 1024). Bare prefixes such as `M`
/// are rejected as ambiguous.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(SizeError::Invalid(s.to_string()));
    }
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other if other.starts_with('.') || other.starts_with(',') => {
            return Err(SizeError::Invalid(s.to_string()))
        }
        _ => return Err(SizeError::UnknownUnit(unit.trim_start().to_string())),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| SizeError::Overflow(s.to_string()))?;
    let bytes = value
        .checked_mul(multiplier)
        .ok_or_else(|| SizeError::Overflow(s.to_string()))?;
    if bytes == 0 {
        return Err(SizeError::Zero);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("100MiB"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512 kib"), Ok(512 * 1024));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3gb"), Ok(3_000_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size(" 1MiB "), Ok(1 << 20));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            parse_size("banana"),
            Err(SizeError::Invalid("banana".into()))
        );
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_size("0MiB"), Err(SizeError::Zero));
        assert_eq!(parse_size("-5"), Err(SizeError::Invalid("-5".into())));
        assert_eq!(
            parse_size("1.5MiB"),
            Err(SizeError::Invalid("1.5MiB".into()))
        );
        assert_eq!(parse_size("10M"), Err(SizeError::UnknownUnit("M".into())));
        assert_eq!(
            parse_size("10 apples"),
            Err(SizeError::UnknownUnit("apples".into()))
        );
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            parse_size("20000000000GiB"),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn display() {
        assert_eq!(ByteSize(100 << 20).to_string(), "100 MiB");
        assert_eq!(ByteSize(10_000_000).to_string(), "9.54 MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 B");
        assert_eq!(ByteSize(4096).to_string(), "4 KiB");
    }
}
