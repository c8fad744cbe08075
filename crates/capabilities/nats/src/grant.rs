//! What a binding may reach: subjects (`subject-allow`), streams
//! (`stream-allow`) and buckets (`bucket-allow`), and the spaces no
//! binding may reach whatever it is granted.
//!
//! An empty allow-list grants nothing: a workload reaches only what an
//! operator named for it.

/// Subject prefixes the host keeps for itself: the JetStream, key-value,
/// object-store and system APIs (everything under `$`), reply inboxes, and
/// the cluster's control subjects.
const RESERVED_PREFIXES: [&str; 3] = ["$", "_INBOX.", "runtime."];

/// Why a name was refused (mirrors the WIT's `denial-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Reserved,
    NotGranted,
    Wildcard,
}

/// A binding's grant.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Grant {
    pub(crate) subjects: Vec<String>,
    pub(crate) streams: Vec<String>,
    pub(crate) buckets: Vec<String>,
}

impl Grant {
    /// May a message be published (or a request sent) on `subject`?
    pub(crate) fn publish(&self, subject: &str) -> Result<(), Refusal> {
        if subject.contains(['*', '>']) {
            return Err(Refusal::Wildcard);
        }
        self.subject(subject)
    }

    /// Is `subject` (a literal subject, or a pattern to subscribe to)
    /// inside the grant and outside the reserved spaces?
    pub(crate) fn subject(&self, subject: &str) -> Result<(), Refusal> {
        // A pattern starting with a wildcard matches the reserved spaces
        // too, whatever the grant.
        if is_reserved(subject) || subject.starts_with(['*', '>']) {
            return Err(Refusal::Reserved);
        }
        if self.subjects.iter().any(|allowed| covers(allowed, subject)) {
            Ok(())
        } else {
            Err(Refusal::NotGranted)
        }
    }

    /// May the binding use stream `name`?
    pub(crate) fn stream(&self, name: &str) -> Result<(), Refusal> {
        named(&self.streams, name)
    }

    /// May the binding open bucket `name`?
    pub(crate) fn bucket(&self, name: &str) -> Result<(), Refusal> {
        named(&self.buckets, name)
    }
}

fn named(allowed: &[String], name: &str) -> Result<(), Refusal> {
    let matches = |pattern: &String| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    };
    if allowed.iter().any(matches) {
        Ok(())
    } else {
        Err(Refusal::NotGranted)
    }
}

fn is_reserved(subject: &str) -> bool {
    RESERVED_PREFIXES
        .iter()
        .any(|prefix| subject.starts_with(prefix))
        || subject == "_INBOX"
}

/// Does the pattern `allowed` cover every subject `wanted` can match?
/// `*` matches one token, `>` one or more at the end.
pub(crate) fn covers(allowed: &str, wanted: &str) -> bool {
    let mut allowed = allowed.split('.');
    let mut wanted = wanted.split('.');
    loop {
        match (allowed.next(), wanted.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(token)) if token != ">" => {}
            (Some(a), Some(w)) if a == w => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks a subject's shape: not empty, no empty token, no whitespace,
/// wildcards only as whole tokens (`>` only last).
pub(crate) fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "subject `{}` holds whitespace",
            subject.escape_debug()
        ));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (index, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("subject `{subject}` has an empty token"));
        }
        if token.len() > 1 && token.contains(['*', '>']) {
            return Err(format!(
                "subject `{subject}`: a wildcard must be a whole token"
            ));
        }
        if *token == ">" && index + 1 != tokens.len() {
            return Err(format!("subject `{subject}`: `>` must be the last token"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(subjects: &[&str]) -> Grant {
        Grant {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            streams: vec!["ORDERS".into(), "logs-*".into()],
            buckets: vec!["config".into()],
        }
    }

    #[test]
    fn patterns_cover_what_they_match_and_nothing_more() {
        assert!(covers("orders.>", "orders.eu.new"));
        assert!(covers("orders.>", "orders.*"));
        assert!(covers("orders.>", "orders.>"));
        assert!(!covers("orders.>", "orders"));
        assert!(covers("orders.*", "orders.eu"));
        assert!(covers("orders.*", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("orders.*", "orders.eu.new"));
        assert!(covers("a.b", "a.b"));
        assert!(!covers("a.b", "a.*"));
        assert!(!covers("a.b", "a.b.c"));
        assert!(covers(">", "anything.at.all"));
    }

    #[test]
    fn reserved_spaces_are_refused_even_when_granted() {
        let g = grant(&[">"]);
        assert_eq!(g.publish("app.x"), Ok(()));
        for subject in [
            "$JS.API.INFO",
            "$KV.config.k",
            "_INBOX.abc",
            "runtime.host.h.workload.stop",
            "$SYS.REQ",
        ] {
            assert_eq!(g.publish(subject), Err(Refusal::Reserved), "{subject}");
        }
    }

    #[test]
    fn patterns_starting_with_a_wildcard_are_reserved_whatever_the_grant() {
        let g = grant(&[">"]);
        assert_eq!(g.subject(">"), Err(Refusal::Reserved));
        assert_eq!(g.subject("*.host.*.workload.stop"), Err(Refusal::Reserved));
        assert_eq!(g.subject("app.>"), Ok(()));
    }

    #[test]
    fn publishing_needs_a_literal_granted_subject() {
        let g = grant(&["orders.>"]);
        assert_eq!(g.publish("orders.new"), Ok(()));
        assert_eq!(g.publish("orders.*"), Err(Refusal::Wildcard));
        assert_eq!(g.publish("billing.new"), Err(Refusal::NotGranted));
        assert_eq!(grant(&[]).publish("orders.new"), Err(Refusal::NotGranted));
    }

    #[test]
    fn streams_and_buckets_are_named_or_prefixed() {
        let g = grant(&[]);
        assert_eq!(g.stream("ORDERS"), Ok(()));
        assert_eq!(g.stream("logs-eu"), Ok(()));
        assert_eq!(g.stream("ORDERS2"), Err(Refusal::NotGranted));
        assert_eq!(g.bucket("config"), Ok(()));
        assert_eq!(g.bucket("secrets"), Err(Refusal::NotGranted));
    }

    #[test]
    fn malformed_subjects_are_named() {
        assert!(check_subject("a.b.c").is_ok());
        assert!(check_subject("a.*.>").is_ok());
        assert!(check_subject("").is_err());
        assert!(check_subject("a..b").is_err());
        assert!(check_subject("a b").is_err());
        assert!(check_subject("a.b*").is_err());
        assert!(check_subject("a.>.b").is_err());
    }
}
