//! An error as the CLI prints it: the error and its causes on one line,
//! each cause said once, with the hint for it where there is one
//! ([`crate::hint`]). `main` prints a command's failure this way, and so
//! do the commands that report an error and carry on (`nimbus dev` when a
//! config no longer loads, `nimbus describe` without desired state, the
//! controller while its bucket is not there).

/// The error and its causes on one line, each cause said once: a library
/// error that already shows its source in its own message (`cannot read
/// x: No such file`) would otherwise be followed by that source again, as
/// `{error:#}` does.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        // A message that ends with its source's text already said it.
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// [`one_line`], then ` (hint: …)` when a cause in the chain has a hint.
pub(crate) fn with_hint(error: &anyhow::Error) -> String {
    match crate::hint::for_error(error) {
        Some(hint) => format!("{} (hint: {hint})", one_line(error)),
        None => one_line(error),
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, with_hint};

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read `x`: {source}")]
    struct ReadError {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(ReadError { source: io }).context("component `app`");
        assert_eq!(
            one_line(&error),
            "component `app`: cannot read `x`: No such file or directory"
        );
        assert_eq!(format!("{error:#}").matches("No such file").count(), 2);
    }

    #[test]
    fn a_hint_follows_the_line_when_there_is_one() {
        let in_use = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address in use");
        let error = anyhow::Error::new(in_use).context("cannot listen on 127.0.0.1:8000");
        let line = with_hint(&error);
        assert!(
            line.starts_with("cannot listen on 127.0.0.1:8000: Address in use (hint: "),
            "{line}"
        );
        let other = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        assert_eq!(with_hint(&anyhow::Error::new(other)), "No such file");
    }
}
