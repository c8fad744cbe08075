//! What a build without some of the optional features says when asked for
//! what it left out: one line naming the feature. These tests run in the
//! builds they describe (`cargo test -p nimbus-runtime --no-default-features
//! --lib`, which the test command runs); the default build tests the parts
//! themselves. The capability crates test their own left-out backends.

fn names_feature(error: &str, feature: &str) {
    assert!(
        error.ends_with(&format!(
            "is not in this build of nimbus (rebuild it with the cargo feature `{feature}`)"
        )),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
}

#[cfg(not(feature = "oci"))]
#[tokio::test]
async fn an_oci_image_names_its_feature() {
    use crate::oci::{PullPolicy, Registry, RegistrySettings};
    let registry = Registry::new(RegistrySettings::default());
    let error = registry
        .pull("ghcr.io/example/app:1", PullPolicy::Always)
        .await
        .unwrap_err();
    names_feature(&error.to_string(), "oci");
    let error = registry
        .push("ghcr.io/example/app:1", Vec::new())
        .await
        .unwrap_err();
    names_feature(&error.to_string(), "oci");
}

/// In every build (the composer's error exists in all of them): the
/// wording, which the model's `BackendError::NotBuilt` shares.
#[test]
fn composing_names_its_feature() {
    names_feature(
        &crate::compose::ComposeError::NotBuilt.to_string(),
        "compose",
    );
}
