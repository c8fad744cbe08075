//! Criterion benches of the request hot path through `Host::handle`
//! (routing, admission, instance creation or reuse, guest, response):
//! P2 with a fresh instance per request and P3 with instance reuse, each
//! without and with per-component accounting.
//! Run with `cargo bench -p nimbus-host --bench hot_path`.

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use nimbus_host::http::DynamicRouter;
use nimbus_host::workload::Workload;
use nimbus_host::{Host, HostConfig};
use std::sync::Arc;

fn workload(name: &str, guest: &str) -> Workload {
    Workload::single_http_component(
        "bench",
        name,
        &format!("file://{guest}"),
        &format!("{name}.bench"),
    )
}

fn request(host: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri("/")
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap()
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache = std::env::temp_dir().join("nimbus-bench-compiled");
    // The same host twice: without and with per-component accounting (the
    // thread CPU clock around every poll of a guest, metered memory,
    // request and instance series).
    let hosts = [false, true].map(|accounting| {
        let host = Host::new(
            HostConfig {
                cache_dir: Some(cache.clone()),
                accounting,
                ..HostConfig::default()
            },
            Arc::new(DynamicRouter::new()),
        )
        .unwrap();
        rt.block_on(async {
            host.start_workload(workload("p2", test_programs::P2_HELLO))
                .await
                .unwrap();
            host.start_workload(workload("p3", test_programs::P3_HELLO))
                .await
                .unwrap();
        });
        (host, if accounting { "_accounting" } else { "" })
    });
    let mut group = c.benchmark_group("handle");
    for (name, host_name) in [
        ("p2_fresh_instance", "p2.bench"),
        ("p3_reused_instance", "p3.bench"),
    ] {
        for (host, suffix) in &hosts {
            group.bench_function(format!("{name}{suffix}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let response = host.handle(request(host_name)).await;
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                })
            });
        }
    }
    group.finish();
}

/// Instantiating the P2 hello component from its pre-linked `InstancePre`
/// into a fresh store with a fresh WASI context: the per-request cost of P2.
fn instantiate_from_pre(c: &mut Criterion) {
    use nimbus_host::limits::{LimitDefaults, Limits};
    use nimbus_host::wasi::{ComponentEnv, wasi_linker};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = nimbus_host::engine::Engine::new(&Default::default()).unwrap();
    let store = nimbus_host::artifact::ArtifactStore::new(
        engine.clone(),
        Some(std::env::temp_dir().join("nimbus-bench-compiled")),
    );
    let artifact = store
        .load(&std::fs::read(test_programs::P2_HELLO).unwrap())
        .unwrap();
    let linker = wasi_linker(engine.wasmtime()).unwrap();
    let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(
        linker.instantiate_pre(&artifact.component).unwrap(),
    )
    .unwrap();
    let env = Arc::new(ComponentEnv::standalone(
        "bench/p2",
        "p2",
        Limits::resolve(&Default::default(), &LimitDefaults::default(), usize::MAX),
    ));
    c.bench_function("instantiate/p2_from_pre", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = env.new_store(engine.wasmtime()).unwrap();
            pre.instantiate_async(&mut store).await.unwrap();
        })
    });
}

/// Routing one request by Host with 1 and with 10,000 bound hosts.
fn router_lookup(c: &mut Criterion) {
    use nimbus_host::http::Router;
    let mut group = c.benchmark_group("router");
    for routes in [1usize, 10_000] {
        let router = DynamicRouter::new();
        for i in 0..routes {
            router
                .workload_resolved(
                    &format!("bench/w{i}"),
                    &workload(&format!("w{i}"), "unused.wasm"),
                )
                .unwrap();
        }
        let (parts, ()) = request(&format!("w{}.bench:8080", routes / 2))
            .map(|_| ())
            .into_parts();
        group.bench_function(format!("lookup_{routes}_routes"), |b| {
            b.iter(|| router.route(&parts).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path, instantiate_from_pre, router_lookup);
criterion_main!(benches);
