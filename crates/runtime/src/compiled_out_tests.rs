//! What a build without some of the optional features says when asked for
//! what it left out: one line naming the feature. These tests run in the
//! builds they describe (`cargo test -p nimbus-runtime --no-default-features
//! --lib`, which the test command runs); the default build tests the parts
//! themselves.

#[cfg(not(all(feature = "redis", feature = "redb", feature = "nats")))]
fn config(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names_feature(error: &str, feature: &str) {
    assert!(
        error.ends_with(&format!(
            "is not in this build of nimbus (rebuild it with the cargo feature `{feature}`)"
        )),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_key_value_backend_names_its_feature() {
    use crate::plugins::keyvalue::BackendSettings;
    let error =
        BackendSettings::from_config(&config(&[("url", "redis://127.0.0.1:6379")])).unwrap_err();
    names_feature(&error, "redis");
}

#[cfg(not(feature = "redb"))]
#[test]
fn a_filesystem_key_value_backend_names_its_feature() {
    use crate::plugins::keyvalue::BackendSettings;
    let error = BackendSettings::from_config(&config(&[("path", "/tmp/kv.redb")])).unwrap_err();
    names_feature(&error, "redb");
}

#[cfg(not(feature = "nats"))]
#[test]
fn nats_backends_name_their_feature() {
    use crate::plugins::blobstore::BlobSettings;
    use crate::plugins::keyvalue::BackendSettings;
    let nats = config(&[("backend", "nats"), ("url", "nats://127.0.0.1:4222")]);
    names_feature(&BackendSettings::from_config(&nats).unwrap_err(), "nats");
    names_feature(&BlobSettings::from_config(&nats).unwrap_err(), "nats");
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

#[cfg(not(feature = "compose"))]
#[test]
fn composing_names_its_feature() {
    names_feature(
        &crate::compose::ComposeError::NotBuilt.to_string(),
        "compose",
    );
}

/// In every build: the wording the tests above look for.
#[test]
fn the_message_says_what_and_which_feature() {
    names_feature(
        &crate::plugins::not_in_this_build("the redis key-value backend", "redis"),
        "redis",
    );
}
