//! Instruction counts of the request hot path pieces under callgrind: a
//! deterministic figure (the same binary and inputs give the same count,
//! whatever else the machine does), where criterion's times wander with load.
//!
//! Run with `bash bench/instructions.sh` (installs the matching
//! `gungraun-runner` and needs valgrind). Each benchmark builds its fixture in
//! a setup expression, which callgrind does not count, and measures one call:
//!
//! - `router/lookup_10000_routes`: `DynamicRouter::route` with 10,000 hosts;
//! - `instantiate/p2_from_pre`: a fresh store and WASI context plus
//!   instantiation of the P2 hello component (the per-request cost of P2);
//! - `handle/p2_fresh_instance` and `handle/p3_reused_instance`: one whole
//!   request through `Host::handle` (routing, admission, instance, guest,
//!   response body), P3 on an instance already warmed by an earlier request.
//!
//! Two settings differ from production, both because of valgrind: instances
//! come from the on-demand allocator (valgrind cannot map the pooling
//! allocator's terabyte-sized reservation), and the epoch tick is an hour (a
//! 10 ms tick would make the guest yield a run-dependent number of times under
//! valgrind's 50x slowdown). Everything runs on one current-thread tokio
//! runtime so no instruction is counted on another thread. The allocator is
//! the `nimbus` binary's (mimalloc): with glibc malloc, `malloc_consolidate`
//! alone was a quarter of P2 instantiation (docs/BENCHMARKS.md).

#![allow(missing_docs)]

use bytes::Bytes;
use gungraun::prelude::*;
use http_body_util::{BodyExt, Empty};
use nimbus_host::engine::{EngineConfig, PoolingMode};
use nimbus_host::http::{DynamicRouter, Router};
use nimbus_host::workload::Workload;
use nimbus_host::{Host, HostConfig};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn engine_config() -> EngineConfig {
    EngineConfig {
        pooling: PoolingMode::Off,
        epoch_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    }
}

/// Compiled code is cached on disk so only the first run pays for Cranelift
/// under valgrind.
fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("nimbus-instruction-bench-compiled")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

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
        .expect("request")
}

async fn one_request(host: &Host, host_name: &str) -> usize {
    let response = host.handle(request(host_name)).await;
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

// ------------------------------------------------------------------ router

struct RouterFixture {
    router: DynamicRouter,
    parts: http::request::Parts,
}

fn router_with(routes: usize) -> RouterFixture {
    let router = DynamicRouter::new();
    for i in 0..routes {
        router
            .workload_resolved(
                &format!("bench/w{i}"),
                &workload(&format!("w{i}"), "unused.wasm"),
            )
            .expect("route");
    }
    let (parts, ()) = request(&format!("w{}.bench:8080", routes / 2))
        .map(|_| ())
        .into_parts();
    RouterFixture { router, parts }
}

#[library_benchmark]
#[bench::lookup_1_route(router_with(1))]
#[bench::lookup_10000_routes(router_with(10_000))]
fn router(fixture: RouterFixture) -> RouterFixture {
    black_box(fixture.router.route(black_box(&fixture.parts)).is_ok());
    fixture
}

// ------------------------------------------------------------- instantiate

struct PreFixture {
    rt: tokio::runtime::Runtime,
    engine: nimbus_host::engine::Engine,
    env: Arc<nimbus_host::wasi::ComponentEnv>,
    pre: wasmtime_wasi_http::p2::bindings::ProxyPre<nimbus_host::wasi::StoreState>,
}

fn p2_pre() -> PreFixture {
    use nimbus_host::limits::{LimitDefaults, Limits};
    use nimbus_host::wasi::{ComponentEnv, wasi_linker};
    let engine = nimbus_host::engine::Engine::new(&engine_config()).expect("engine");
    let store = nimbus_host::artifact::ArtifactStore::new(engine.clone(), Some(cache_dir()));
    let bytes = std::fs::read(test_programs::P2_HELLO).expect("P2 hello guest");
    let artifact = store.load(&bytes).expect("compile");
    let linker = wasi_linker(engine.wasmtime()).expect("linker");
    let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(
        linker
            .instantiate_pre(&artifact.component)
            .expect("instantiate_pre"),
    )
    .expect("proxy pre");
    let env = Arc::new(ComponentEnv::standalone(
        "bench/p2",
        "p2",
        Limits::resolve(&Default::default(), &LimitDefaults::default(), usize::MAX),
    ));
    PreFixture {
        rt: runtime(),
        engine,
        env,
        pre,
    }
}

#[library_benchmark]
#[bench::p2_from_pre(p2_pre())]
fn instantiate(fixture: PreFixture) -> PreFixture {
    fixture.rt.block_on(async {
        let mut store = fixture
            .env
            .new_store(fixture.engine.wasmtime())
            .expect("store");
        let proxy = fixture
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        black_box((proxy, store));
    });
    fixture
}

// ------------------------------------------------------------------ handle

struct HostFixture {
    rt: tokio::runtime::Runtime,
    host: Host,
    host_name: &'static str,
}

fn host_serving(name: &'static str, guest: &str, host_name: &'static str) -> HostFixture {
    let rt = runtime();
    let host = Host::new(
        HostConfig {
            engine: engine_config(),
            cache_dir: Some(cache_dir()),
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .expect("host");
    rt.block_on(async {
        host.start_workload(workload(name, guest))
            .await
            .expect("start");
        // The first request pays one-off costs (P3: creating the instance
        // that later requests reuse); measure a steady-state one.
        one_request(&host, host_name).await;
    });
    HostFixture {
        rt,
        host,
        host_name,
    }
}

#[library_benchmark]
#[bench::p2_fresh_instance(host_serving("p2", test_programs::P2_HELLO, "p2.bench"))]
#[bench::p3_reused_instance(host_serving("p3", test_programs::P3_HELLO, "p3.bench"))]
fn handle(fixture: HostFixture) -> HostFixture {
    let bytes = fixture
        .rt
        .block_on(one_request(&fixture.host, fixture.host_name));
    black_box(bytes);
    fixture
}

library_benchmark_group!(name = hot_path; benchmarks = router, instantiate, handle);

main!(library_benchmark_groups = hot_path);
