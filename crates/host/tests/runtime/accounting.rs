//! Per-component accounting measured against the truth: guest CPU against
//! the process's own CPU clock, async waits near zero, memory growth in the
//! peak, and `/metrics` read back with a Prometheus text parser.

use crate::common;

use common::*;
use nimbus_host::HostConfig;
use nimbus_host::http::DynamicRouter;
use prometheus_parse::{Scrape, Value};
use std::sync::Arc;
use std::time::Duration;
use test_programs::P2_BEHAVIORS;

fn process_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

async fn accounting_host() -> TestHost {
    TestHost::start_with(
        HostConfig {
            cache_dir: Some(shared_cache_dir()),
            accounting: true,
            access_log: true,
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .await
}

/// The value of `field=` in the last access-log line for `path`.
fn logged(log: &str, path: &str, field: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("nimbus::access") && l.contains(&format!("path={path} ")))
        .unwrap_or_else(|| panic!("no access-log line for {path}:\n{log}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in: {line}"))
}

fn access_lines(log: &str, path: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("nimbus::access") && l.contains(&format!("path={path} ")))
        .count()
}

/// The log once it holds more than `before` access-log lines for `path`:
/// a line is written when the response body ends, which may be after the
/// client has read it.
async fn log_after(log: &Captured, path: &str, before: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = log.text();
        if access_lines(&text, path) > before {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new access-log line for {path} within 10 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

pub(crate) fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find_map(|s| {
        let matches = s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v));
        match (&s.value, matches) {
            (Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v), true) => Some(*v),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_cpu_memory_and_requests_are_measured_per_component() {
    let log = Captured::install_global();
    let test = accounting_host().await;
    test.host
        .start_workload(http_workload("acct", P2_BEHAVIORS, "acct.test"))
        .await
        .unwrap();
    assert_eq!(test.get("acct.test", "/ok").await.0, 200);

    // A guest that does a fixed amount of work costing about 50 ms of CPU
    // (a fixed amount of work, not 50 ms of wall time: on a busy machine the
    // guest's thread gets less CPU than wall time). The round count is
    // calibrated against the process's CPU clock on this machine.
    let spend = async |rounds: u64| {
        let before = process_cpu();
        let (status, body) = test.get("acct.test", &format!("/spin?n={rounds}")).await;
        assert_eq!(status, 200, "{body}");
        process_cpu() - before
    };
    // The difference of two sizes is the work alone, without the request's
    // fixed cost.
    let calibration = 20_000_000u64;
    let per_calibration = spend(2 * calibration)
        .await
        .saturating_sub(spend(calibration).await);
    let rounds = (calibration as f64 * 0.050 / per_calibration.as_secs_f64().max(1e-4)) as u64;
    // What the host reports matches the CPU the process really spent on the
    // request (±20%). The process's clock also counts its other threads
    // (runtime workers, the logger), which now and then spend tens of
    // milliseconds during one request on a loaded CI machine: a report may
    // never exceed the process's CPU by more than 20%, and two of the three
    // must be within 20% of it.
    let mut reported = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..3 {
        let lines = access_lines(&log.text(), "/spin");
        let before = process_cpu();
        let (status, body) = test.get("acct.test", &format!("/spin?n={rounds}")).await;
        let truth = process_cpu() - before;
        assert_eq!(status, 200, "{body}");
        let cpu = Duration::from_micros(logged(
            &log_after(&log, "/spin", lines).await,
            "/spin",
            "cpu_us",
        ));
        let error = cpu.as_secs_f64() / truth.as_secs_f64() - 1.0;
        eprintln!("spin for ~50 ms: reported {cpu:?}, process spent {truth:?}");
        assert!(
            error <= 0.2,
            "reported {cpu:?} for a request that cost the whole process {truth:?}"
        );
        reported.push(cpu);
        errors.push(error.abs());
    }
    errors.sort_by(f64::total_cmp);
    assert!(
        errors[1] <= 0.2,
        "reported {reported:?}: more than one off by over 20% (errors {errors:?})"
    );
    // The work really took tens of milliseconds. Its exact cost moves with
    // this VM's CPU speed (40 to 70 ms seen for the same rounds), so the
    // check above, against the process's own clock, is the accurate one.
    reported.sort();
    assert!(
        reported[1] >= Duration::from_millis(25),
        "about 50 ms of spinning reported as {reported:?}"
    );

    // An async sleep of 50 ms costs (nearly) nothing.
    let lines = access_lines(&log.text(), "/sleep");
    let (status, _) = test.get("acct.test", "/sleep?ms=50").await;
    assert_eq!(status, 200);
    let text = log_after(&log, "/sleep", lines).await;
    assert!(logged(&text, "/sleep", "duration_us") >= 50_000);
    let slept = logged(&text, "/sleep", "cpu_us");
    eprintln!("sleep 50 ms: reported {slept} µs of CPU");
    assert!(slept < 5_000, "a 50 ms sleep reported {slept} µs of CPU");

    // 16 MiB of growth shows in the request's peak and the component's.
    let lines = access_lines(&log.text(), "/grow");
    let (status, body) = test.get("acct.test", "/grow?mb=16").await;
    assert_eq!(status, 200, "{body}");
    let peak = logged(
        &log_after(&log, "/grow", lines).await,
        "/grow",
        "memory_peak_bytes",
    );
    assert!(peak >= 16 << 20, "peak {peak} after growing 16 MiB");
    assert_eq!(test.get("acct.test", "/nothing-here").await.0, 404);

    let metrics = scrape(&test.host.metrics().encode());
    let labels = [
        ("namespace", "test"),
        ("workload", "acct"),
        ("component", "acct"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut all = labels.to_vec();
        all.push(extra);
        all
    };
    assert_eq!(
        sample(&metrics, "nimbus_requests_total", &with(("class", "2xx"))),
        Some(8.0)
    );
    assert_eq!(
        sample(&metrics, "nimbus_requests_total", &with(("class", "4xx"))),
        Some(1.0)
    );
    let cpu = sample(&metrics, "nimbus_guest_cpu_seconds_total", &labels).unwrap();
    assert!(
        cpu >= 0.12,
        "component CPU {cpu} s after 150 ms of spinning"
    );
    let peak = sample(&metrics, "nimbus_memory_peak_bytes", &labels).unwrap();
    assert!(peak >= (16 << 20) as f64, "{peak}");
    // P2 instances serve one request each and are gone afterwards.
    assert_eq!(
        sample(&metrics, "nimbus_instances_created_total", &labels),
        Some(9.0)
    );
    assert_eq!(
        sample(&metrics, "nimbus_requests_in_flight", &labels),
        Some(0.0)
    );
    for _ in 0..100 {
        let now = scrape(&test.host.metrics().encode());
        if sample(&now, "nimbus_instances", &labels) == Some(0.0) {
            assert_eq!(sample(&now, "nimbus_memory_bytes", &labels), Some(0.0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = scrape(&test.host.metrics().encode());
    assert_eq!(sample(&now, "nimbus_instances", &labels), Some(0.0));
    assert_eq!(sample(&now, "nimbus_workloads", &[]), Some(1.0));
    let histogram = now
        .samples
        .iter()
        .find(|s| s.metric == "nimbus_request_duration_seconds")
        .expect("latency histogram");
    match &histogram.value {
        Value::Histogram(buckets) => {
            assert_eq!(buckets.last().map(|b| b.count), Some(9.0), "{buckets:?}")
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // Stopping the workload drops its series.
    test.host.stop_workload("test/acct").await.unwrap();
    let text = test.host.metrics().encode();
    assert!(!text.contains("workload=\"acct\""), "{text}");
    assert!(text.contains("nimbus_workloads 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_denied_outbound_requests_are_counted() {
    let test = accounting_host().await;
    let mut workload = http_workload("out", P2_BEHAVIORS, "out.test");
    resources(&mut workload).allowed_hosts = vec!["allowed.invalid".into()];
    test.host.start_workload(workload).await.unwrap();
    assert_eq!(test.get("out.test", "/trap").await.0, 500);
    let (status, body) = test
        .get("out.test", "/fetch?url=http://denied.example/")
        .await;
    assert_eq!(status, 502, "{body}");
    let _ = test
        .get("out.test", "/fetch?url=http://allowed.invalid/")
        .await;
    let metrics = scrape(&test.host.metrics().encode());
    let labels = [
        ("namespace", "test"),
        ("workload", "out"),
        ("component", "out"),
    ];
    assert_eq!(
        sample(&metrics, "nimbus_instances_discarded_total", &labels),
        Some(1.0)
    );
    let outbound = |destination: &'static str, decision: &'static str| {
        let mut all = labels.to_vec();
        all.extend([("destination", destination), ("decision", decision)]);
        sample(&metrics, "nimbus_outbound_requests_total", &all)
    };
    assert_eq!(outbound("denied.example", "denied"), Some(1.0));
    assert_eq!(outbound("allowed.invalid", "allowed"), Some(1.0));
}

/// A client that stops sending in the middle of its request body is counted
/// as the client's doing (400, in the 4xx class), not as the component's
/// failure: the component fails on the broken body, yet no 5xx and no
/// warning; the client, still reading, is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_breaks_off_its_body_gets_400_not_a_component_failure() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let log = Captured::install_global();
    let test = accounting_host().await;
    test.host
        .start_workload(http_workload("upload", P2_BEHAVIORS, "upload.test"))
        .await
        .unwrap();
    let before = access_lines(&log.text(), "/write");
    let mut stream = tokio::net::TcpStream::connect(test.addr).await.unwrap();
    stream
        .write_all(b"POST /write HTTP/1.1\r\nhost: upload.test\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&[b'a'; 1000]).await.unwrap();
    // The rest of the body never comes: the client closes its side.
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("broken off or malformed"), "{answer}");
    let text = log_after(&log, "/write", before).await;
    assert_eq!(logged(&text, "/write", "status"), 400, "{text}");
    assert!(
        !text.contains("component failed"),
        "a client's broken body was logged as the component's failure:\n{text}"
    );
    let metrics = scrape(&test.host.metrics().encode());
    let class = |class: &'static str| {
        sample(
            &metrics,
            "nimbus_requests_total",
            &[
                ("namespace", "test"),
                ("workload", "upload"),
                ("component", "upload"),
                ("class", class),
            ],
        )
    };
    assert_eq!(class("4xx"), Some(1.0));
    assert_eq!(class("5xx"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_accounting_no_component_series_exist() {
    let test = TestHost::dynamic().await;
    test.host
        .start_workload(http_workload("plain", P2_BEHAVIORS, "plain.test"))
        .await
        .unwrap();
    assert_eq!(test.get("plain.test", "/ok").await.0, 200);
    let text = test.host.metrics().encode();
    assert!(!text.contains("workload=\"plain\""), "{text}");
    assert!(text.contains("nimbus_workloads 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_calls_are_counted_by_interface_and_outcome() {
    use nimbus_host::workload::HostInterface;
    let test = accounting_host().await;
    let mut workload = http_workload("kv", test_programs::P2_PLUGINS, "kv.test");
    workload.spec.host_interfaces.push(HostInterface {
        namespace: "wasi".into(),
        package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into()],
        ..Default::default()
    });
    test.host.start_workload(workload).await.unwrap();
    let call = |method: &'static str, path: &'static str, body: &'static [u8]| {
        request(
            test.addr,
            Some("kv.test"),
            method,
            path,
            bytes::Bytes::from_static(body),
        )
    };
    assert_eq!(call("POST", "/kv/incr?key=n&delta=2", b"").await.0, 200);
    assert_eq!(call("POST", "/kv/set?key=word", b"abc").await.0, 204);
    // Incrementing a value that is not a number is the backend's error.
    assert_eq!(call("POST", "/kv/incr?key=word&delta=1", b"").await.0, 500);

    let metrics = scrape(&test.host.metrics().encode());
    let calls = |interface: &'static str, outcome: &'static str| {
        let labels = [
            ("namespace", "test"),
            ("workload", "kv"),
            ("component", "kv"),
            ("interface", interface),
            ("outcome", outcome),
        ];
        sample(&metrics, "nimbus_plugin_calls_total", &labels)
    };
    assert_eq!(calls("wasi:keyvalue/atomics", "ok"), Some(1.0));
    assert_eq!(calls("wasi:keyvalue/atomics", "error"), Some(1.0));
    // Three opens and one set.
    assert_eq!(calls("wasi:keyvalue/store", "ok"), Some(4.0));
    assert_eq!(calls("wasi:keyvalue/store", "error"), None);
    let timed = metrics.samples.iter().any(|s| {
        s.metric == "nimbus_plugin_call_duration_seconds"
            && s.labels.get("interface") == Some("wasi:keyvalue/atomics")
            && matches!(&s.value, Value::Histogram(buckets) if buckets.iter().any(|b| b.count == 2.0))
    });
    assert!(timed, "no latency histogram with both increments");

    test.host.stop_workload("test/kv").await.unwrap();
    let text = test.host.metrics().encode();
    assert!(!text.contains("nimbus_plugin_calls_total{"), "{text}");
}
