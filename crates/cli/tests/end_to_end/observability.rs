//! `nimbus serve --admin-addr --access-log` and `nimbus top` as a user runs
//! them: the admin endpoint answers `/metrics` (read back with a Prometheus
//! text parser), `/healthz` and `/readyz`; the access log has one line per
//! request; `top` shows the component's row.

use crate::common;

use common::*;
use std::time::Duration;
use test_programs::P2_BEHAVIORS;

#[test]
fn admin_endpoint_access_log_and_top() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--access-log",
        ],
        &[],
        Duration::from_secs(120),
    );
    let admin = console_addr(&server);
    assert_eq!(request(&admin, "GET", "/healthz", "").0, 200);
    assert_eq!(request(&admin, "GET", "/readyz", "").0, 200);
    assert_eq!(request(&admin, "GET", "/nope", "").0, 404);

    for _ in 0..5 {
        assert_eq!(server.get("/burn?ms=5&token=secret").0, 200);
    }
    assert_eq!(server.get("/trap").0, 500);
    server.wait_for_stderr("path=/burn", 5, Duration::from_secs(10));
    server.wait_for_stderr("path=/trap", 1, Duration::from_secs(10));
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("path=/burn"))
        .unwrap_or_else(|| panic!("no access-log line:\n{log}"));
    for field in [
        "method=GET",
        "status=200",
        "cpu_us=",
        "memory_peak_bytes=",
        "duration_us=",
    ] {
        assert!(line.contains(field), "{field} missing from: {line}");
    }
    assert!(line.contains("workload=default/"), "{line}");
    assert!(
        !log.contains("token=secret"),
        "the query string was logged:\n{log}"
    );
    assert_eq!(log.matches("path=/burn").count(), 5, "{log}");

    let (status, head, body) = request_with_headers(&admin, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |metric: &str, class: Option<&str>| {
        scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && class.is_none_or(|c| s.labels.get("class") == Some(c))
            })
            .find_map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    };
    assert_eq!(
        value("nimbus_requests_total", Some("2xx")),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        value("nimbus_requests_total", Some("5xx")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value("nimbus_instances_discarded_total", None),
        Some(1.0),
        "{body}"
    );
    // `/burn` spins for wall-clock time, so on a busy CI machine its CPU
    // share is unknown (the accuracy tests use fixed work instead). What
    // must hold: every request was charged some CPU, and the component's
    // counter holds at least what the access log reported (it also counts
    // polls outside any request; each log line rounds down to a microsecond).
    let cpu_us = |path: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| l.contains(&format!("path={path} ")))
            .map(|l| {
                let field = l.split_whitespace().find_map(|w| w.strip_prefix("cpu_us="));
                field
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{l}"))
            })
            .collect()
    };
    let (burns, traps) = (cpu_us("/burn"), cpu_us("/trap"));
    assert!(burns.len() == 5 && burns.iter().all(|&us| us > 0), "{log}");
    assert_eq!(traps.len(), 1, "{log}");
    let counted = value("nimbus_guest_cpu_seconds_total", None).unwrap();
    let logged = (burns.iter().sum::<u64>() + traps[0]) as f64 / 1e6;
    assert!(
        counted >= logged - 1e-9,
        "counter {counted} s < access log {logged} s\n{body}"
    );

    // `top --once` while requests keep coming.
    // The load lasts until `top` is done, so both of its samples see traffic
    // however slowly `top` starts.
    let top_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let addr = server.addr.clone();
        let top_done = top_done.clone();
        std::thread::spawn(move || {
            while !top_done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = request(&addr, "GET", "/burn?ms=5", "");
            }
        })
    };
    let (top, _) = succeeds_in(
        dir.path(),
        &[
            "top",
            "--once",
            "--admin-addr",
            &admin,
            "--interval",
            "500ms",
            "--sort",
            "rps",
        ],
    );
    top_done.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    assert!(top.contains("sorted by rps"), "{top}");
    let row = top
        .lines()
        .find(|l| l.starts_with("default/"))
        .unwrap_or_else(|| panic!("no component row:\n{top}"));
    let rps: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(rps > 0.0, "{top}");

    let line = fails_in(
        dir.path(),
        &["top", "--once", "--admin-addr", "127.0.0.1:1"],
    );
    assert!(
        line.contains("cannot read http://127.0.0.1:1/metrics"),
        "{line}"
    );
    // A usage error, reported by the argument parser (with its `--help` hint).
    let out = nimbus()
        .args(["serve", P2_BEHAVIORS, "--admin-addr", "nowhere"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: ") && stderr.contains("`nowhere` is neither an address"),
        "{stderr}"
    );

    assert!(server.interrupt(), "serve exits cleanly after Ctrl-C");
}

/// The admin endpoint off loopback needs a token, and a token comes from a
/// source (never the command line); each mistake is one line.
#[test]
fn an_admin_endpoint_off_loopback_needs_a_token_from_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let line = fails_in(
        dir.path(),
        &[
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "0.0.0.0:0",
        ],
    );
    assert!(
        line.contains("reachable from other machines") && line.contains("--admin-token"),
        "{line}"
    );
    let line = fails_in(
        dir.path(),
        &[
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--admin-token",
            "env:NIMBUS_TEST_UNSET_TOKEN_VARIABLE",
        ],
    );
    assert!(
        line.contains("env:NIMBUS_TEST_UNSET_TOKEN_VARIABLE") && line.contains("not set"),
        "{line}"
    );
    let out = nimbus()
        .args(["serve", P2_BEHAVIORS, "--admin-token", "hunter2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("env:NAME or file:PATH"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // With a token from a file it starts and says so (on loopback: tests
    // listen nowhere else).
    let token = dir.path().join("token");
    write_private(&token, "file-token-1\n");
    let server = Server::start(
        dir.path(),
        &[
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--admin-token",
            &format!("file:{}", token.display()),
        ],
        &[],
        Duration::from_secs(120),
    );
    let admin = console_addr(&server);
    assert!(
        server.stderr().contains("need the bearer token"),
        "{}",
        server.stderr()
    );
    assert_eq!(request(&admin, "GET", "/metrics", "").0, 401);
    let (status, _, _) = request_with_headers(
        &admin,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer file-token-1")],
        "",
    );
    assert_eq!(status, 200);
    assert!(!server.stderr().contains("file-token-1"));
}
