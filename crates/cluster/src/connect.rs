//! Connecting to NATS: URL, credentials (user/password, token, nkey seed,
//! JWT creds file) and TLS, shared by hosts, controllers and the CLI.
//!
//! Long-running processes ([`Persistence::Retry`]) start even while NATS is
//! down and reconnect forever; one-shot commands ([`Persistence::Once`])
//! fail with a clear error instead. Every request carries a timeout.

use secrecy::{ExposeSecret as _, SecretString};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach and authenticate to NATS.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222`,
    /// `tls://…`).
    pub url: String,
    /// A JWT `.creds` file (user JWT and nkey seed).
    pub creds_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`).
    pub nkey_file: Option<PathBuf>,
    /// User name and password.
    pub user: Option<(String, SecretString)>,
    /// Token authentication.
    pub token: Option<SecretString>,
    /// Extra CA certificate (PEM) to trust.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Refuse to talk to the server without TLS.
    pub require_tls: bool,
    /// Timeout of the connection attempt and of every request.
    pub timeout: Duration,
    /// Client name shown by the server (`nimbus-host`, …).
    pub name: String,
}

impl NatsSettings {
    /// Settings for `url` without credentials or TLS.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            creds_file: None,
            nkey_file: None,
            user: None,
            token: None,
            tls_ca: None,
            tls_client: None,
            require_tls: false,
            timeout: Duration::from_secs(5),
            name: "nimbus".into(),
        }
    }
}

/// Whether a process keeps trying to reach NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Start even if NATS is down; reconnect forever.
    Retry,
    /// Fail if NATS cannot be reached now.
    Once,
}

/// Why a NATS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A credentials or key file could not be read (not a regular file,
    /// too large, slow or missing).
    #[error(transparent)]
    CredentialsFile(nimbus_model::files::FileError),
    /// A credentials file's content was refused.
    #[error("cannot use `{}`: {source}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Several authentication methods were given.
    #[error("choose one NATS authentication: a creds file, an nkey, a user, or a token")]
    AmbiguousAuth,
    /// The server could not be reached or refused us.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// The most a credentials or nkey file may hold: a `.creds` file is a JWT
/// and a seed, a few kilobytes.
const MAX_CREDENTIALS_BYTES: u64 = 64 * 1024;

/// Reads a user-named credentials file: a regular file, bounded in size.
fn read_credentials(path: &std::path::Path) -> Result<String, ConnectError> {
    nimbus_model::files::read_text_bounded(path, MAX_CREDENTIALS_BYTES)
        .map_err(ConnectError::CredentialsFile)
}

/// Connects with `settings`.
pub async fn connect(
    settings: &NatsSettings,
    persistence: Persistence,
) -> Result<async_nats::Client, ConnectError> {
    let methods = [
        settings.creds_file.is_some(),
        settings.nkey_file.is_some(),
        settings.user.is_some(),
        settings.token.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(ConnectError::AmbiguousAuth);
    }
    let mut options = async_nats::ConnectOptions::new()
        .name(&settings.name)
        .connection_timeout(settings.timeout)
        .request_timeout(Some(settings.timeout))
        .require_tls(settings.require_tls);
    if let Some(path) = &settings.creds_file {
        let creds = read_credentials(path)?;
        options = options
            .credentials(&creds)
            .map_err(|source| ConnectError::Credentials {
                path: path.clone(),
                source,
            })?;
    }
    if let Some(path) = &settings.nkey_file {
        let seed = read_credentials(path)?;
        options = options.nkey(seed.trim().to_string());
    }
    if let Some((user, password)) = &settings.user {
        options = options.user_and_password(user.clone(), password.expose_secret().to_string());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.expose_secret().to_string());
    }
    if let Some(ca) = &settings.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &settings.tls_client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if persistence == Persistence::Retry {
        options = options.retry_on_initial_connect();
    }
    let connect_error = |message: String| ConnectError::Connect {
        url: settings.url.clone(),
        message,
    };
    let servers: Vec<async_nats::ServerAddr> = settings
        .url
        .split(',')
        .map(|url| url.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| connect_error(e.to_string()))?;
    options
        .connect(servers.as_slice())
        .await
        .map_err(|e| connect_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_auth_methods_are_refused() {
        let mut settings = NatsSettings::new("nats://127.0.0.1:1");
        settings.token = Some(SecretString::from("t"));
        settings.user = Some(("u".into(), SecretString::from("p")));
        let error = connect(&settings, Persistence::Once).await.unwrap_err();
        assert!(matches!(error, ConnectError::AmbiguousAuth));
    }

    #[tokio::test]
    async fn a_missing_creds_file_is_named() {
        let mut settings = NatsSettings::new("nats://127.0.0.1:1");
        settings.creds_file = Some("/nonexistent/user.creds".into());
        let error = connect(&settings, Persistence::Once).await.unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/user.creds"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_creds_or_nkey_file_that_is_no_regular_file_is_refused_at_once() {
        for (creds, path) in [(true, "/dev/zero"), (false, "/dev/zero"), (true, "/")] {
            let mut settings = NatsSettings::new("nats://127.0.0.1:1");
            if creds {
                settings.creds_file = Some(path.into());
            } else {
                settings.nkey_file = Some(path.into());
            }
            let error = connect(&settings, Persistence::Once).await.unwrap_err();
            assert!(
                matches!(error, ConnectError::CredentialsFile(_))
                    && error.to_string().contains(path),
                "{error}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let mut settings = NatsSettings::new("nats://127.0.0.1:1");
        settings.token = Some(SecretString::from("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
