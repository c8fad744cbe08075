//! `localResources.cpuLimit`: the share of CPU one component may use,
//! across all its instances.
//!
//! It is written as Kubernetes writes a CPU quantity: cores as a number
//! (`1`, `0.25`) or a string (`"0.5"`, `"2"`), or millicores (`"250m"`).
//! wasmCloud's manifests give it as a whole number of cores, which reads
//! the same. It is kept as whole millicores: a value finer than `1m`,
//! zero, negative, above [`CpuLimit::MAX_CORES`] cores, or not a number is
//! an error that names the value (and, in a manifest, the field).
//!
//! ```
//! use nimbus_model::CpuLimit;
//! assert_eq!("250m".parse::<CpuLimit>().unwrap().millicores(), 250);
//! assert_eq!("0.25".parse::<CpuLimit>().unwrap().millicores(), 250);
//! assert_eq!("2".parse::<CpuLimit>().unwrap().to_string(), "2");
//! assert!("-1".parse::<CpuLimit>().is_err());
//! ```

use serde::de::Visitor;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A CPU share in millicores: 1000 is one core, 250 a quarter of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuLimit {
    /// At least 1, at most `MAX_CORES * 1000`.
    millicores: u32,
}

/// A value that is not a CPU limit, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a CPU limit: {reason} (write cores, such as `0.5` or `2`, or millicores, such as `250m`)"
)]
pub struct CpuLimitError {
    /// The value as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const NEGATIVE: &str = "it is negative";
const ZERO: &str = "it must be more than 0 (leave it out for no limit)";
const NOT_A_NUMBER: &str = "it is not a number of cores";
const TOO_FINE: &str = "it is finer than 1m, a thousandth of a core";
const TOO_LARGE: &str = "it is more than 1024 cores";

impl CpuLimit {
    /// The largest limit accepted, in cores: anything above it is a typo
    /// (millicores written as cores), not a machine.
    pub const MAX_CORES: u32 = 1024;

    /// A limit of `millicores`; zero or more than [`Self::MAX_CORES`]
    /// cores is an error.
    pub fn from_millicores(millicores: u64) -> Result<Self, CpuLimitError> {
        Self::checked(millicores).map_err(|reason| CpuLimitError {
            value: format!("{millicores}m"),
            reason,
        })
    }

    fn checked(millicores: u64) -> Result<Self, &'static str> {
        if millicores == 0 {
            return Err(ZERO);
        }
        if millicores > u64::from(Self::MAX_CORES) * 1000 {
            return Err(TOO_LARGE);
        }
        Ok(Self {
            millicores: millicores as u32,
        })
    }

    /// The limit in millicores (at least 1).
    pub fn millicores(self) -> u32 {
        self.millicores
    }

    /// The limit in cores.
    pub fn cores(self) -> f64 {
        f64::from(self.millicores) / 1000.0
    }

    /// Reads a quantity written as text; `Err` carries the reason only.
    fn parse_text(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(NEGATIVE);
        }
        let text = text.strip_prefix('+').unwrap_or(text);
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if let Some(milli) = text.strip_suffix('m') {
            if let Some((whole, fraction)) = milli.split_once('.')
                && digits(whole)
                && digits(fraction)
                && !(whole.is_empty() && fraction.is_empty())
            {
                // `1.0m` is 1m; `0.5m` is finer than the unit.
                if fraction.bytes().all(|b| b == b'0') {
                    return Self::checked(parse_whole(whole)?);
                }
                return Err(TOO_FINE);
            }
            if milli.is_empty() || !digits(milli) {
                return Err(NOT_A_NUMBER);
            }
            return Self::checked(parse_whole(milli)?);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(NOT_A_NUMBER);
        }
        let (thousandths, finer) = fraction.split_at(fraction.len().min(3));
        if !finer.bytes().all(|b| b == b'0') {
            return Err(TOO_FINE);
        }
        // `0.5` is 500 thousandths, `0.05` 50: each digit by its place.
        let thousandths: u64 = thousandths
            .bytes()
            .zip([100, 10, 1])
            .map(|(digit, place)| u64::from(digit - b'0') * place)
            .sum();
        let millicores = parse_whole(whole)?
            .checked_mul(1000)
            .and_then(|m| m.checked_add(thousandths))
            .ok_or(TOO_LARGE)?;
        Self::checked(millicores)
    }
}

/// A run of ASCII digits (possibly empty: zero) as a number; too many
/// digits for a `u64` is too large a limit.
fn parse_whole(digits: &str) -> Result<u64, &'static str> {
    if digits.is_empty() {
        return Ok(0);
    }
    digits.parse::<u64>().map_err(|_| TOO_LARGE)
}

impl std::str::FromStr for CpuLimit {
    type Err = CpuLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_text(s).map_err(|reason| CpuLimitError {
            value: s.to_string(),
            reason,
        })
    }
}

/// Whole cores as a number of cores (`2`), anything else in millicores
/// (`250m`): both read back as the same limit.
impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millicores.is_multiple_of(1000) {
            write!(f, "{}", self.millicores / 1000)
        } else {
            write!(f, "{}m", self.millicores)
        }
    }
}

/// Whole cores as a number (what wasmCloud writes), the rest as a
/// millicore string; both deserialize back to the same limit.
impl Serialize for CpuLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.millicores.is_multiple_of(1000) {
            serializer.serialize_u32(self.millicores / 1000)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for CpuLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CpuLimitVisitor)
    }
}

struct CpuLimitVisitor;

impl CpuLimitVisitor {
    fn fail<E: serde::de::Error>(value: impl fmt::Display, reason: &'static str) -> E {
        E::custom(CpuLimitError {
            value: value.to_string(),
            reason,
        })
    }
}

impl Visitor<'_> for CpuLimitVisitor {
    type Value = CpuLimit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of cores (`0.5`, `2`) or a quantity such as `250m`")
    }

    fn visit_u64<E: serde::de::Error>(self, cores: u64) -> Result<CpuLimit, E> {
        let millicores = cores.checked_mul(1000).ok_or(TOO_LARGE);
        millicores
            .and_then(CpuLimit::checked)
            .map_err(|reason| Self::fail(cores, reason))
    }

    fn visit_i64<E: serde::de::Error>(self, cores: i64) -> Result<CpuLimit, E> {
        match u64::try_from(cores) {
            Ok(cores) => Visitor::visit_u64(self, cores),
            Err(_) => Err(Self::fail(cores, NEGATIVE)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, cores: f64) -> Result<CpuLimit, E> {
        if !cores.is_finite() {
            return Err(Self::fail(cores, NOT_A_NUMBER));
        }
        if cores < 0.0 {
            return Err(Self::fail(cores, NEGATIVE));
        }
        // A float's `Display` is the shortest text that reads back as it,
        // never in exponent form: `0.1` stays `0.1`, not 0.1000000000000000055.
        let text = cores.to_string();
        CpuLimit::parse_text(&text).map_err(|reason| Self::fail(&text, reason))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CpuLimit, E> {
        CpuLimit::parse_text(text).map_err(|reason| Self::fail(text, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millicores(text: &str) -> u32 {
        text.parse::<CpuLimit>()
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .millicores()
    }

    #[test]
    fn cores_and_millicores_as_kubernetes_writes_them() {
        for (text, expected) in [
            ("0.25", 250),
            ("250m", 250),
            ("1", 1000),
            ("2", 2000),
            ("0.5", 500),
            (".5", 500),
            ("1.", 1000),
            ("1.5", 1500),
            ("0.001", 1),
            ("0.0010", 1),
            ("1m", 1),
            ("1.0m", 1),
            ("1500m", 1500),
            (" 2 ", 2000),
            ("+3", 3000),
            ("1024", 1_024_000),
        ] {
            assert_eq!(millicores(text), expected, "{text}");
        }
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (text, reason) in [
            ("-1", NEGATIVE),
            ("-250m", NEGATIVE),
            ("0", ZERO),
            ("0m", ZERO),
            ("0.0", ZERO),
            ("0.0001", TOO_FINE),
            ("0.2505", TOO_FINE),
            ("0.5m", TOO_FINE),
            ("1025", TOO_LARGE),
            ("2000000m", TOO_LARGE),
            ("99999999999999999999999", TOO_LARGE),
            ("", NOT_A_NUMBER),
            (".", NOT_A_NUMBER),
            ("m", NOT_A_NUMBER),
            ("two", NOT_A_NUMBER),
            ("1e3", NOT_A_NUMBER),
            ("250 m", NOT_A_NUMBER),
            ("1Gi", NOT_A_NUMBER),
            ("1,5", NOT_A_NUMBER),
        ] {
            let error = text.parse::<CpuLimit>().unwrap_err();
            assert_eq!(error.reason, reason, "{text}");
            assert!(error.to_string().contains(&format!("`{text}`")), "{error}");
        }
    }

    #[test]
    fn numbers_and_strings_from_yaml_and_back() {
        #[derive(Deserialize, Serialize)]
        struct Holder {
            limit: CpuLimit,
        }
        let read = |yaml: &str| -> Result<u32, String> {
            serde_yaml_ng::from_str::<Holder>(&format!("limit: {yaml}"))
                .map(|h| h.limit.millicores())
                .map_err(|e| e.to_string())
        };
        assert_eq!(read("1"), Ok(1000));
        assert_eq!(read("0.25"), Ok(250));
        assert_eq!(read("0.1"), Ok(100));
        assert_eq!(read("250m"), Ok(250));
        assert_eq!(read("\"2\""), Ok(2000));
        assert_eq!(read("'0.5'"), Ok(500));
        for (yaml, reason) in [
            ("-1", NEGATIVE),
            ("-0.5", NEGATIVE),
            ("0", ZERO),
            ("0.0", ZERO),
            ("0.0001", TOO_FINE),
            ("100000", TOO_LARGE),
            ("abc", NOT_A_NUMBER),
            (".nan", NOT_A_NUMBER),
        ] {
            let error = read(yaml).unwrap_err();
            assert!(error.contains(reason), "{yaml}: {error}");
        }
        assert!(read("[1]").is_err());
        // Whole cores stay a number (as wasmCloud writes them), the rest a
        // millicore string; both read back.
        for (limit, json) in [(2000, r#"{"limit":2}"#), (250, r#"{"limit":"250m"}"#)] {
            let holder = Holder {
                limit: CpuLimit::from_millicores(limit).unwrap(),
            };
            let written = serde_json::to_string(&holder).unwrap();
            assert_eq!(written, json);
            let back: Holder = serde_json::from_str(&written).unwrap();
            assert_eq!(u64::from(back.limit.millicores()), limit);
        }
        assert_eq!(
            CpuLimit::from_millicores(1500).unwrap().to_string(),
            "1500m"
        );
        assert!(CpuLimit::from_millicores(0).is_err());
    }
}
