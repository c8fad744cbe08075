//! `wasi:config/store` and named config/secret sources, end to end: what a
//! component sees through `wasi:config` and its environment, and that a
//! missing source stops the start with its name.

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::secret::Secret;
use nimbus_host::workload::{HostInterface, NamedSources, SourceRef};
use test_programs::P2_CONFIG;

const SECRET: &str = "pa55-not-for-logs";

fn sources() -> NamedSources {
    NamedSources {
        configs: [(
            "app".to_string(),
            [("mode".to_string(), "fast".to_string())].into(),
        )]
        .into(),
        secrets: [(
            "db".to_string(),
            [("DB_PASSWORD".to_string(), Secret::new(SECRET))].into(),
        )]
        .into(),
    }
}

fn reference(name: &str) -> SourceRef {
    SourceRef { name: name.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn wasi_config_serves_component_config_and_named_sources() {
    let t = TestHost::dynamic().await;
    t.host.set_sources(sources());
    let mut w = http_workload("cfg", P2_CONFIG, "cfg.test");
    resources(&mut w)
        .config
        .insert("greeting".into(), "hello".into());
    w.spec.host_interfaces.push(HostInterface {
        namespace: "wasi".into(),
        package: "config".into(),
        interfaces: vec!["store".into()],
        config_from: vec![reference("app")],
        secret_from: vec![reference("db")],
        ..Default::default()
    });
    t.host.start_workload(w).await.unwrap();
    assert_eq!(
        t.get("cfg.test", "/config?key=greeting").await,
        (200, "hello".into())
    );
    assert_eq!(
        t.get("cfg.test", "/config?key=mode").await,
        (200, "fast".into())
    );
    // A secret listed under the wasi:config interface reaches the guest...
    assert_eq!(
        t.get("cfg.test", "/config?key=DB_PASSWORD").await,
        (200, SECRET.into())
    );
    assert_eq!(
        t.get("cfg.test", "/config-all").await,
        (
            200,
            format!("DB_PASSWORD={SECRET}\ngreeting=hello\nmode=fast\n")
        )
    );
    // ...but not its environment, which nothing asked for.
    assert_eq!(
        t.get("cfg.test", "/env?name=DB_PASSWORD").await,
        (404, "unset\n".into())
    );
    assert_eq!(t.get("cfg.test", "/config?key=nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_become_environment_only_through_secret_from() {
    let t = TestHost::dynamic().await;
    t.host.set_sources(sources());
    let mut w = http_workload("envsec", P2_CONFIG, "envsec.test");
    let env = &mut resources(&mut w).environment;
    env.config.insert("PLAIN".into(), "1".into());
    env.config_from.push(reference("app"));
    env.secret_from.push(reference("db"));
    t.host.start_workload(w).await.unwrap();
    assert_eq!(
        t.get("envsec.test", "/env?name=DB_PASSWORD").await,
        (200, SECRET.into())
    );
    assert_eq!(
        t.get("envsec.test", "/env?name=mode").await,
        (200, "fast".into())
    );
    assert_eq!(
        t.get("envsec.test", "/env?name=PLAIN").await,
        (200, "1".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_stops_the_start_and_is_named() {
    let t = TestHost::dynamic().await;
    t.host.set_sources(sources());
    let mut w = http_workload("missing", P2_CONFIG, "missing.test");
    resources(&mut w)
        .environment
        .secret_from
        .push(reference("vault"));
    let err = t.host.start_workload(w).await.unwrap_err();
    assert!(matches!(err, WorkloadError::Invalid(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("secret source `vault` is not defined (known: db)"),
        "{message}"
    );
    assert_eq!(t.get("missing.test", "/").await.0, 404);
}
