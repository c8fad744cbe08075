//! [`Registry`] in a build without the `oci` feature: the settings are
//! kept (they bound local image reads too), and every push or pull is the
//! one-line error naming the feature.

use super::{OciError, PullPolicy, Pulled, Pushed, RegistrySettings};

/// A registry client this build does not have.
#[derive(Debug)]
pub struct Registry {
    settings: RegistrySettings,
}

impl Registry {
    /// Keeps the settings.
    pub fn new(settings: RegistrySettings) -> Self {
        Self { settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Refuses: there is no OCI client in this build.
    pub async fn push(&self, reference: &str, _component: Vec<u8>) -> Result<Pushed, OciError> {
        Err(OciError::NotBuilt(reference.to_string()))
    }

    /// Refuses: there is no OCI client in this build.
    pub async fn pull(&self, reference: &str, _policy: PullPolicy) -> Result<Pulled, OciError> {
        Err(OciError::NotBuilt(reference.to_string()))
    }
}
