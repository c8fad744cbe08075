//! How a replicated workload moves to a changed template: wasmCloud's
//! `spec.deployPolicy` (`RollingUpdate`, the default, or `Recreate`) and,
//! for a rolling update, how many replicas may be replaced at once
//! (`spec.rollingUpdate.maxUnavailable` / `maxSurge`, with Kubernetes'
//! meanings, each a count or a percentage of the replicas wanted).
//!
//! ```
//! use nimbus_model::rollout::{DeployPolicy, RollingUpdate, Share};
//! let policy = RollingUpdate { max_unavailable: Share::Count(0), max_surge: Share::Percent(25) };
//! // 25% of 3 replicas, rounded up: one replica's host moves at a time.
//! assert_eq!(policy.in_flight(3), 1);
//! assert_eq!(DeployPolicy::default().in_flight(8), Some(4));
//! assert_eq!(DeployPolicy::Recreate.in_flight(8), None);
//! ```

use serde::de::Visitor;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A count of replicas, or a percentage of those wanted (`2`, `"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// So many replicas.
    Count(u32),
    /// This percentage of the replicas wanted (0 to 100).
    Percent(u32),
}

impl Share {
    /// Replicas out of `replicas`; a percentage rounds up or down.
    pub fn of(self, replicas: u32, round_up: bool) -> u32 {
        match self {
            Self::Count(count) => count,
            Self::Percent(percent) => {
                let scaled = u64::from(replicas) * u64::from(percent);
                let whole = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(whole).unwrap_or(u32::MAX)
            }
        }
    }

    fn is_zero(self) -> bool {
        matches!(self, Self::Count(0) | Self::Percent(0))
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(count) => write!(f, "{count}"),
            Self::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl std::str::FromStr for Share {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a count of replicas or a percentage such as `25%`");
        match text.trim().strip_suffix('%') {
            Some(number) => {
                let percent: u32 = number.trim().parse().map_err(|_| bad())?;
                if percent > 100 {
                    return Err(format!("`{text}` is more than 100%"));
                }
                Ok(Self::Percent(percent))
            }
            None => text.trim().parse().map(Self::Count).map_err(|_| bad()),
        }
    }
}

impl Serialize for Share {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(count) => serializer.serialize_u32(*count),
            Self::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShareVisitor;
        impl Visitor<'_> for ShareVisitor {
            type Value = Share;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count of replicas or a percentage such as \"25%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Share, E> {
                u32::try_from(value)
                    .map(Share::Count)
                    .map_err(|_| E::custom(format!("{value} replicas is too many")))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Share, E> {
                match u64::try_from(value) {
                    Ok(value) => self.visit_u64(value),
                    Err(_) => Err(E::custom(format!("{value} is negative"))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Share, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(ShareVisitor)
    }
}

/// How many replicas a rolling update may replace at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// Replicas that may be below those wanted while they are replaced
    /// (a percentage rounds down). Default `25%`.
    #[serde(default = "quarter")]
    pub max_unavailable: Share,
    /// Replicas that may run beside those wanted while their replacements
    /// start (a percentage rounds up). Default `25%`.
    #[serde(default = "quarter")]
    pub max_surge: Share,
}

fn quarter() -> Share {
    Share::Percent(25)
}

impl Default for RollingUpdate {
    fn default() -> Self {
        Self {
            max_unavailable: quarter(),
            max_surge: quarter(),
        }
    }
}

impl RollingUpdate {
    /// Replicas that may be in the middle of their replacement at once, of
    /// `replicas` wanted: `maxSurge` (rounded up) plus `maxUnavailable`
    /// (rounded down), at least one so a rollout always moves.
    ///
    /// A host replaces its replicas by starting the new version beside the
    /// old and switching once it serves, so a replica being replaced takes
    /// surge room while there is some, and unavailability after that.
    pub fn in_flight(&self, replicas: u32) -> u32 {
        let surge = self.max_surge.of(replicas, true);
        let unavailable = self.max_unavailable.of(replicas, false);
        surge.saturating_add(unavailable).max(1)
    }

    /// Both zero would never move: Kubernetes refuses it, and so do we.
    pub fn check(&self) -> Result<(), String> {
        if self.max_surge.is_zero() && self.max_unavailable.is_zero() {
            return Err("maxUnavailable and maxSurge cannot both be 0".into());
        }
        Ok(())
    }
}

/// wasmCloud's `deployPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum DeployPolicy {
    /// Host by host, each host's new version serving before the next one
    /// moves; a version that fails to start stops the rollout.
    RollingUpdate(RollingUpdate),
    /// Every host at once.
    Recreate,
}

impl Default for DeployPolicy {
    fn default() -> Self {
        Self::RollingUpdate(RollingUpdate::default())
    }
}

impl DeployPolicy {
    /// Replicas that may be replaced at once of `replicas` wanted, or
    /// `None` for all of them.
    pub fn in_flight(&self, replicas: u32) -> Option<u32> {
        match self {
            Self::RollingUpdate(rolling) => Some(rolling.in_flight(replicas)),
            Self::Recreate => None,
        }
    }

    /// `RollingUpdate` or `Recreate`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RollingUpdate(_) => "RollingUpdate",
            Self::Recreate => "Recreate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_counts_or_percentages() {
        assert_eq!("3".parse::<Share>(), Ok(Share::Count(3)));
        assert_eq!(" 50% ".parse::<Share>(), Ok(Share::Percent(50)));
        assert!(
            "101%"
                .parse::<Share>()
                .unwrap_err()
                .contains("more than 100%")
        );
        assert!("-1".parse::<Share>().is_err());
        assert!("a%".parse::<Share>().is_err());
        let json: Share = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(json, Share::Percent(25));
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"25%\"");
        assert_eq!(serde_json::to_string(&Share::Count(2)).unwrap(), "2");
        assert!(serde_json::from_str::<Share>("-2").is_err());
    }

    #[test]
    fn percentages_round_as_kubernetes_rounds_them() {
        // Surge rounds up, unavailability down.
        assert_eq!(Share::Percent(25).of(3, true), 1);
        assert_eq!(Share::Percent(25).of(3, false), 0);
        assert_eq!(Share::Percent(50).of(10, false), 5);
        let defaults = RollingUpdate::default();
        assert_eq!(defaults.in_flight(3), 1);
        assert_eq!(defaults.in_flight(10), 5);
        let none = RollingUpdate {
            max_unavailable: Share::Count(0),
            max_surge: Share::Percent(0),
        };
        assert!(none.check().is_err());
        // Never less than one, even where both round to nothing.
        let small = RollingUpdate {
            max_unavailable: Share::Percent(10),
            max_surge: Share::Count(0),
        };
        assert_eq!(small.in_flight(3), 1);
    }
}
