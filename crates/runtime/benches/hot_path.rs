//! Criterion benches of the request hot path through `Host::handle`
//! (routing, admission, instance creation or reuse, guest, response):
//! P2 with a fresh instance per request and P3 with instance reuse.
//! Run with `cargo bench -p nimbus-runtime --bench hot_path`.

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use nimbus_runtime::http::DynamicRouter;
use nimbus_runtime::workload::Workload;
use nimbus_runtime::{Host, HostConfig};
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
    let host = Host::new(
        HostConfig {
            cache_dir: Some(cache),
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
    let mut group = c.benchmark_group("handle");
    for (name, host_name) in [
        ("p2_fresh_instance", "p2.bench"),
        ("p3_reused_instance", "p3.bench"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let response = host.handle(request(host_name)).await;
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
