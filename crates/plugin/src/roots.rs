//! Trusted roots for plugins that open TLS connections for a workload
//! (`wasi:tls` handshakes, Postgres connections): the system's store, read
//! once per process, and a workload's own CA bundle (a PEM file).

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::OnceLock;

/// The largest CA bundle file read.
pub const CA_BUNDLE_LIMIT: u64 = 4 << 20;

/// The system's trusted roots, read once per process; none where the
/// system store cannot be read (each unreadable source, and the count of
/// certificates that do not parse, is logged).
pub fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "a system root store could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!(ignored, "system roots that do not parse are left out");
        }
        roots
    })
}

/// The certificates of the PEM file at `path`; the error names it as
/// `SETTING `PATH``, after the setting that gave it.
pub fn ca_bundle(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |message: String| format!("{setting} `{}`: {message}", path.display());
    let bytes = nimbus_model::files::read_bounded_blocking(path, CA_BUNDLE_LIMIT)
        .map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(certs)
}

/// The roots a connection trusts: the system's (unless `system` is false)
/// and those of the `bundle` file (with the setting that named it), if
/// any; an error when that leaves none.
pub fn trusted_roots(system: bool, bundle: Option<(&str, &Path)>) -> Result<RootCertStore, String> {
    let mut roots = if system {
        system_roots().clone()
    } else {
        RootCertStore::empty()
    };
    if let Some((setting, path)) = bundle {
        for cert in ca_bundle(setting, path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{setting} `{}`: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted roots: the system has none and no CA bundle is given".into());
    }
    Ok(roots)
}
