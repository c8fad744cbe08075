//! Cold start and density, measured in process (no load generator):
//!
//! - time from `start_workload` to the first 200: first compile, digest
//!   already compiled in this host, and digest in the on-disk cache of a
//!   fresh host;
//! - scale to zero: a parked workload's next request, held while the host
//!   starts it again, to its 200 (the wake latency);
//! - idle host resident memory;
//! - starting N workloads (default 10,000) of one component, each on its own
//!   Host name: total time and extra resident memory per workload;
//! - requests/s through `Host::handle` with one route vs N routes.
//!
//! Run: `cargo bench -p nimbus-host --bench density [-- --workloads N --seconds S]`.

#![allow(missing_docs)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use nimbus_host::http::DynamicRouter;
use nimbus_host::workload::Workload;
use nimbus_host::{Host, HostConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn workload(i: usize) -> Workload {
    Workload::single_http_component(
        "density",
        &format!("w{i}"),
        &format!("file://{}", test_programs::P2_HELLO),
        &format!("w{i}.density"),
    )
}

fn request(host: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri("/")
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap()
}

async fn first_200(host: &Host, i: usize) -> Duration {
    let started = Instant::now();
    host.start_workload(workload(i))
        .await
        .expect("workload starts");
    let response = host.handle(request(&format!("w{i}.density"))).await;
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    started.elapsed()
}

fn new_host(cache: &std::path::Path) -> Host {
    Host::new(
        HostConfig {
            cache_dir: Some(cache.to_path_buf()),
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .unwrap()
}

/// Requests/s over `seconds` with `concurrency` tasks spreading requests
/// round-robin over the first `routes` host names.
async fn throughput(host: &Host, routes: usize, seconds: f64, concurrency: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let names: Arc<Vec<String>> = Arc::new((0..routes).map(|i| format!("w{i}.density")).collect());
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (host, done, names) = (host.clone(), done.clone(), names.clone());
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    let response = host.handle(request(&names[i % names.len()])).await;
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i = i.wrapping_add(7919);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / seconds
}

fn main() {
    // `cargo bench` passes `--bench`; criterion-style filters are ignored.
    let workloads = test_programs::bench_arg("--workloads", 10_000.0) as usize;
    let seconds = test_programs::bench_arg("--seconds", 3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = tempfile::tempdir().unwrap();

        let rss_before_host = rss_bytes();
        let host = new_host(cache.path());
        let idle_rss = rss_bytes();
        let first_compile = first_200(&host, 0).await;
        let compiled_in_memory = first_200(&host, 1).await;
        // Scale to zero: parked, then woken by its next request.
        host.park_workload("density/w1").await.unwrap();
        let wake = {
            let started = Instant::now();
            let response = host.handle(request("w1.density")).await;
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
            started.elapsed()
        };
        host.stop_workload("density/w1").await.unwrap();
        let (new_host_time, disk_cached) = {
            let started = Instant::now();
            let fresh = new_host(cache.path());
            let new_host_time = started.elapsed();
            let t = first_200(&fresh, 0).await;
            assert_eq!(fresh.artifacts().compilations(), 0);
            (new_host_time, t)
        };

        let one_route = throughput(&host, 1, seconds, 16).await;

        let rss_before = rss_bytes();
        let started = Instant::now();
        for i in 1..workloads {
            host.start_workload(workload(i)).await.expect("workload starts");
        }
        let start_all = started.elapsed();
        let rss_after = rss_bytes();
        let per_workload = rss_after.saturating_sub(rss_before) as f64 / (workloads.max(2) - 1) as f64;
        let many_routes = throughput(&host, workloads, seconds, 16).await;
        let one_route_again = throughput(&host, 1, seconds, 16).await;

        println!("| measure | value |");
        println!("|---|---|");
        println!("| host process before the host (RSS) | {:.1} MiB |", rss_before_host as f64 / 1048576.0);
        println!("| idle host (RSS, engine + pool reserved, no workload) | {:.1} MiB |", idle_rss as f64 / 1048576.0);
        println!("| start → first 200, first compile | {:.1} ms |", first_compile.as_secs_f64() * 1e3);
        println!("| start → first 200, digest compiled in this host | {:.2} ms |", compiled_in_memory.as_secs_f64() * 1e3);
        println!("| start → first 200, fresh host, digest in disk cache | {:.2} ms |", disk_cached.as_secs_f64() * 1e3);
        println!("| parked (scaled to zero) → its next request answered | {:.2} ms ({:.2}x of a start with the digest compiled) |", wake.as_secs_f64() * 1e3, wake.as_secs_f64() / compiled_in_memory.as_secs_f64());
        println!("| a fresh host itself (`Host::new`: engine, pool, linker) | {:.2} ms |", new_host_time.as_secs_f64() * 1e3);
        println!("| start {workloads} workloads (one component, own Host each) | {:.2} s |", start_all.as_secs_f64());
        println!("| extra RSS per workload | {:.1} KiB |", per_workload / 1024.0);
        println!("| req/s, 1 route | {one_route:.0} |");
        println!("| req/s, {workloads} routes (round-robin over all) | {many_routes:.0} ({:.2}x of 1 route) |", many_routes / one_route);
        println!("| req/s, 1 route, with {workloads} workloads loaded | {one_route_again:.0} ({:.2}x) |", one_route_again / one_route);
    });
}
