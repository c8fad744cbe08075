//! What to do next, added after an error whose own text does not say it:
//! the CLI prints `error: … (hint: …)` on one line. Hints are keyed on the
//! typed causes in the error's chain, never on message text.

use nimbus_host::WorkloadError;
use nimbus_host::files::FileError;
use nimbus_host::oci::OciError;
use std::error::Error;
use std::io::ErrorKind;

/// The hint for the first cause in `error`'s chain that has one.
pub(crate) fn for_error(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(for_cause)
}

fn for_cause(cause: &(dyn Error + 'static)) -> Option<&'static str> {
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            ErrorKind::AddrInUse => {
                Some("another process is listening on that address; choose another one")
            }
            ErrorKind::AddrNotAvailable => {
                Some("no interface of this machine has that address; 127.0.0.1 or 0.0.0.0 will do")
            }
            _ => None,
        };
    }
    if let Some(file) = cause.downcast_ref::<FileError>() {
        return match file {
            FileError::TooLarge { .. } => {
                Some("a larger component is accepted with --max-component-mb")
            }
            _ => None,
        };
    }
    if let Some(oci) = cause.downcast_ref::<OciError>() {
        return match oci {
            OciError::TooLarge { .. } => {
                Some("a larger component is accepted with --max-component-mb")
            }
            OciError::NotCached(_) => {
                Some("pull it first with `nimbus pull`, or use --pull-policy IfNotPresent")
            }
            OciError::Unreachable {
                plain_http: true, ..
            } => Some(
                "a registry that serves plain HTTP must be named with --insecure-registry HOST:PORT",
            ),
            _ => None,
        };
    }
    if let Some(workload) = cause.downcast_ref::<WorkloadError>() {
        return match workload {
            WorkloadError::UnsupportedImport { .. } => Some(
                "`nimbus inspect` lists what a component imports; declare the capability under `hostInterfaces`, or add a component that exports it",
            ),
            WorkloadError::NoHttpHandler(_) => Some(
                "`nimbus inspect` lists what each component exports; a component that only runs (`wasi:cli/run`) belongs under `service:`",
            ),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::for_error;

    #[test]
    fn typed_causes_anywhere_in_the_chain_get_their_hint() {
        let in_use = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address in use");
        let error = anyhow::Error::new(in_use).context("cannot listen on 127.0.0.1:8000");
        assert!(for_error(&error).is_some_and(|h| h.contains("another process")));

        let import = nimbus_host::WorkloadError::UnsupportedImport {
            component: "app".into(),
            interface: "wasi:keyvalue/store@0.2.0-draft".into(),
        };
        let error = anyhow::Error::new(import).context("workload `default/app`");
        assert!(for_error(&error).is_some_and(|h| h.contains("hostInterfaces")));

        let other = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        assert_eq!(for_error(&anyhow::Error::new(other)), None);
    }
}
