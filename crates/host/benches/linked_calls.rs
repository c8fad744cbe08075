//! Per-call cost of a component-to-component call inside a workload:
//! linked at run time (each call crosses to the exporter's own store as
//! dynamic values) against composed ahead of time with wac (a direct call
//! inside one component). The P2 link app calls the linked `greet` N times
//! per request; per-call cost = (time(N=1000) - time(N=0)) / 1000.
//! Run with `cargo bench -p nimbus-host --bench linked_calls --profile dev`.

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use nimbus_host::http::DynamicRouter;
use nimbus_host::workload::{ComponentSpec, Workload};
use nimbus_host::{Host, HostConfig};
use std::sync::Arc;

fn workload(name: &str, compose: bool) -> Workload {
    let mut workload = Workload::single_http_component(
        "bench",
        name,
        &format!("file://{}", test_programs::P2_LINK_APP),
        &format!("{name}.bench"),
    );
    workload.spec.components.push(ComponentSpec {
        name: "lib".into(),
        image: format!("file://{}", test_programs::P2_LINK_LIB),
        ..Default::default()
    });
    workload.spec.compose = compose;
    workload
}

fn request(host: &str, calls: u32) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri(format!("/calls?n={calls}"))
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap()
}

fn linked_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new(
        HostConfig {
            cache_dir: Some(std::env::temp_dir().join("nimbus-bench-compiled")),
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .unwrap();
    rt.block_on(async {
        host.start_workload(workload("dynamic", false))
            .await
            .unwrap();
        host.start_workload(workload("composed", true))
            .await
            .unwrap();
    });
    let mut group = c.benchmark_group("linked_calls");
    group.sample_size(20);
    for (name, host_name) in [("dynamic", "dynamic.bench"), ("composed", "composed.bench")] {
        for calls in [0, 1000] {
            group.bench_function(format!("{name}/{calls}_calls"), |b| {
                b.to_async(&rt).iter(|| async {
                    let response = host.handle(request(host_name, calls)).await;
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, linked_calls);
criterion_main!(benches);
