//! Secret values: a type that cannot be printed, logged or serialized by
//! accident.
//!
//! A [`Secret`] holds its value in memory that is zeroed when dropped
//! (`secrecy`), prints as `<redacted>` through `Debug` and `Display`, and
//! serializes as the string `<redacted>`, so a secret inside a config struct
//! that ends up in a log line, an error, a panic message, `config show` or a
//! file on disk shows the marker, never the value. The only way to the value
//! is [`Secret::expose`], which call sites use at the last moment (handing it
//! to a guest).

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// What every secret prints and serializes as.
pub const REDACTED: &str = "<redacted>";

/// A secret string value.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself; use only where it leaves the host for the guest.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "hunter2-very-secret";

    #[test]
    fn never_prints_or_serializes_the_value() {
        let secret = Secret::new(VALUE);
        let wrapped = Some(vec![secret.clone()]);
        for text in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{wrapped:?}"),
            serde_json::to_string(&wrapped).unwrap(),
            serde_yaml_ng::to_string(&wrapped).unwrap(),
        ] {
            assert!(!text.contains(VALUE), "leaked in {text}");
            assert!(text.contains(REDACTED), "no marker in {text}");
        }
        assert_eq!(secret.expose(), VALUE);
    }
}
