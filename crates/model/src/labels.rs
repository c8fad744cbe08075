//! Host labels and the `hostSelector` that matches them, checked as
//! Kubernetes checks labels: a selector the operator's API server would
//! refuse is refused here too, and a host label no selector could name is
//! refused when the host starts.

/// Why a label key or value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The key (or the name after its `prefix/`) is empty.
    #[error("the label key is empty")]
    EmptyKey,
    /// The name part of the key breaks the label-name rule.
    #[error("label key `{0}`: {NAME_RULE}")]
    BadKeyName(String),
    /// The `prefix/` of the key is not a DNS subdomain.
    #[error(
        "label key `{0}`: its prefix must be a DNS subdomain (at most 253 characters: `.`-separated parts of at most 63 lowercase letters, digits and `-`, each beginning and ending with a letter or digit)"
    )]
    BadKeyPrefix(String),
    /// The value breaks the label-value rule.
    #[error("label value `{0}`: {NAME_RULE} (or empty)")]
    BadValue(String),
}

const NAME_RULE: &str = "at most 63 characters: letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit";

/// Checks `key` (`name` or `prefix/name`) and `value` as Kubernetes label
/// syntax.
pub fn check_label(key: &str, value: &str) -> Result<(), LabelError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.is_empty() {
        return Err(LabelError::EmptyKey);
    }
    if !is_label_name(name) {
        return Err(LabelError::BadKeyName(key.to_string()));
    }
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(LabelError::BadKeyPrefix(key.to_string()));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(LabelError::BadValue(value.to_string()));
    }
    Ok(())
}

fn is_label_name(text: &str) -> bool {
    let alphanumeric = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && alphanumeric(text.chars().next())
        && alphanumeric(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Lowercase DNS labels of at most 63 characters, each beginning and
/// ending with a letter or digit, joined by `.`; at most 253 in all.
fn is_dns_subdomain(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    text.len() <= 253
        && text.split('.').all(|label| {
            label.len() <= 63
                && edge(label.chars().next())
                && edge(label.chars().last())
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_label_syntax_is_what_passes() {
        for (key, value) in [
            ("hostgroup", "default"),
            ("zone", ""),
            ("topology.kubernetes.io/zone", "eu-west-1a"),
            ("app.kubernetes.io/name", "my_app.v2"),
            ("A1", "Z9"),
        ] {
            assert_eq!(check_label(key, value), Ok(()), "{key}={value}");
        }
        let long = "a".repeat(64);
        for (key, value, error) in [
            ("", "x", LabelError::EmptyKey),
            ("example.com/", "x", LabelError::EmptyKey),
            ("a b", "x", LabelError::BadKeyName("a b".into())),
            ("-zone", "x", LabelError::BadKeyName("-zone".into())),
            (&long, "x", LabelError::BadKeyName(long.clone())),
            (
                "Example.com/zone",
                "x",
                LabelError::BadKeyPrefix("Example.com/zone".into()),
            ),
            ("a/b/c", "x", LabelError::BadKeyName("a/b/c".into())),
            ("a..b/x", "x", LabelError::BadKeyPrefix("a..b/x".into())),
            ("a.-b/x", "x", LabelError::BadKeyPrefix("a.-b/x".into())),
            ("zone", "eu west", LabelError::BadValue("eu west".into())),
            ("zone", "eu-", LabelError::BadValue("eu-".into())),
            ("zone", &long, LabelError::BadValue(long.clone())),
        ] {
            assert_eq!(check_label(key, value), Err(error), "{key}={value}");
        }
    }
}
