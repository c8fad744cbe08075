//! OpenTelemetry export as a user turns it on: `nimbus serve` with the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` sends traces, metrics and logs to
//! a real OTLP/gRPC receiver (`test_programs::otlp`). An incoming
//! `traceparent` is the parent of the request's span tree, and the guest's
//! outbound request carries the trace on to the server it reaches. An
//! `https://` receiver is trusted through `OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! `http/protobuf` posts to the signals' `/v1/…` paths, and exports that
//! fail (untrusted, unreachable, refused) are reported on stderr. A guest's
//! own spans, logs and metrics (`wasi:otel`) join the same pipeline, under
//! the request's component span, tagged with their workload and component.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_programs::P2_BEHAVIORS;
use test_programs::otlp::{OtlpReceiver, Span};

/// An HTTP server that answers `up` to everything and keeps each request's
/// `traceparent` header (or `none`).
fn upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn({
        let seen = seen.clone();
        move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut traceparent = "none".to_string();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("traceparent")
                    {
                        traceparent = value.trim().to_string();
                    }
                    line.clear();
                }
                seen.lock().unwrap().push(traceparent);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nup\n",
                );
            }
        }
    });
    (port, seen)
}

fn manifest(dir: &std::path::Path, upstream_port: u16) -> String {
    let text = format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: front
  namespace: shop
spec:
  components:
    - name: mw
      image: file://{mw}
    - name: app
      image: file://{app}
      localResources:
        allowedHosts: ["127.0.0.1:{upstream_port}"]
  middleware: [mw]
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: front.test
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: counter
  namespace: shop
spec:
  components:
    - name: kv
      image: file://{kv}
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: kv.test
    - namespace: wasi
      package: keyvalue
      interfaces: [store, atomics]
      config:
        backend: memory
"#,
        mw = test_programs::P3_MW_LOGGING,
        app = test_programs::P2_BEHAVIORS,
        kv = test_programs::P2_PLUGINS,
    );
    let path = dir.join("workloads.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

/// The one span of `trace` named `name`.
fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{name}` span, got {}: {:#?}",
        found.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

#[test]
fn traces_metrics_and_logs_reach_an_otlp_receiver_with_the_callers_trace() {
    let receiver = OtlpReceiver::start();
    let (upstream_port, seen) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), upstream_port);
    let server = Server::start(
        dir.path(),
        &["serve", &manifest, "--addr", "127.0.0.1:0", "--access-log"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_SERVICE_NAME", "shop-edge"),
        ],
        Duration::from_secs(120),
    );

    // The caller's trace: its id and the span that made the request.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let fetch = format!("/fetch?url=http://127.0.0.1:{upstream_port}/up");
    let (status, _, body) = request_with_headers(
        &server.addr,
        "GET",
        &fetch,
        &[("Host", "front.test"), ("traceparent", &traceparent)],
        "",
    );
    assert_eq!((status, body.as_str()), (200, "status: 200\nup\n"));

    let kv_trace = "0af7651916cd43dd8448eb211c80319c";
    let (status, _, _) = request_with_headers(
        &server.addr,
        "POST",
        "/kv/incr?key=visits&delta=2",
        &[
            ("Host", "kv.test"),
            ("traceparent", &format!("00-{kv_trace}-b7ad6b7169203331-01")),
        ],
        "",
    );
    assert_eq!(status, 200);

    let in_trace = |id: &str| -> Vec<Span> {
        receiver
            .spans()
            .into_iter()
            .filter(|(_, s)| hex(&s.trace_id) == id)
            .map(|(_, s)| s)
            .collect()
    };
    let arrived = receiver.wait_until(Duration::from_secs(30), |_| {
        in_trace(trace_id).len() >= 4 && in_trace(kv_trace).len() >= 4
    });
    assert!(
        arrived,
        "spans did not arrive: {:#?}",
        receiver
            .spans()
            .iter()
            .map(|(_, s)| (&s.name, hex(&s.trace_id)))
            .collect::<Vec<_>>()
    );

    // request → component mw → component app → outbound, under the caller.
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let spans = in_trace(trace_id);
    let servers: Vec<Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .cloned()
        .collect();
    let request = named(&servers, "GET");
    let mw = named(&spans, "component mw");
    let app = named(&spans, "component app");
    let outbound = spans
        .iter()
        .find(|s| attribute(s, "server.address").as_deref() == Some("127.0.0.1"))
        .unwrap_or_else(|| panic!("no outbound span: {spans:#?}"));
    assert_eq!(hex(&request.parent_span_id), caller_span);
    assert_eq!(hex(&mw.parent_span_id), hex(&request.span_id));
    assert_eq!(hex(&app.parent_span_id), hex(&mw.span_id));
    assert_eq!(hex(&outbound.parent_span_id), hex(&app.span_id));
    // Each span ends with its own work, inside its parent: a reused (P3)
    // instance does not hold its last request's span open.
    for (child, parent) in [(mw, request), (app, mw), (outbound, app)] {
        assert!(
            child.end_time_unix_nano <= parent.end_time_unix_nano,
            "`{}` ended after its parent `{}`",
            child.name,
            parent.name
        );
    }
    assert_eq!(outbound.kind, SpanKind::Client as i32);
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(request, "nimbus.workload").as_deref(),
        Some("shop/front")
    );
    assert_eq!(
        attribute(outbound, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        receiver
            .spans()
            .iter()
            .all(|(service, _)| service.contains("shop-edge")),
        "OTEL_SERVICE_NAME was not the resource's service.name"
    );

    // The server the guest reached got the trace, with the outbound span
    // as its parent.
    let upstream_saw = seen.lock().unwrap().clone();
    assert_eq!(
        upstream_saw,
        [format!("00-{trace_id}-{}-01", hex(&outbound.span_id))]
    );

    // Plugin calls are children of the component that made them.
    let spans = in_trace(kv_trace);
    let kv = named(&spans, "component kv");
    for name in [
        "wasi:keyvalue/store open",
        "wasi:keyvalue/atomics increment",
    ] {
        let call = named(&spans, name);
        assert_eq!(hex(&call.parent_span_id), hex(&kv.span_id), "{name}");
        assert_eq!(
            attribute(call, "rpc.service").as_deref(),
            name.split(' ').next()
        );
    }

    // Metrics: the host's series, with the plugin calls by interface.
    let has_metric = |name: &str| receiver.metrics().iter().any(|m| m.name == name);
    assert!(
        receiver.wait_until(Duration::from_secs(30), |_| {
            has_metric("nimbus_requests_total") && has_metric("nimbus_plugin_calls_total")
        }),
        "metrics did not arrive: {:?}",
        receiver
            .metrics()
            .iter()
            .map(|m| &m.name)
            .collect::<Vec<_>>()
    );

    // The increment is counted under its interface, as a success.
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let plugin_calls = |metric: &test_programs::otlp::Metric| -> f64 {
        let Some(Data::Sum(sum)) = &metric.data else {
            return 0.0;
        };
        sum.data_points
            .iter()
            .filter(|point| {
                let has = |key: &str, value: &str| {
                    point.attributes.iter().any(|a| {
                        a.key == key
                            && a.value.as_ref().is_some_and(|v| {
                                format!("{:?}", v.value) == format!("Some(StringValue({value:?}))")
                            })
                    })
                };
                has("interface", "wasi:keyvalue/atomics")
                    && has("outcome", "ok")
                    && has("workload", "counter")
            })
            .map(|point| match point.value {
                Some(Value::AsDouble(v)) => v,
                Some(Value::AsInt(v)) => v as f64,
                None => 0.0,
            })
            .sum()
    };
    let counted = receiver
        .metrics()
        .iter()
        .filter(|m| m.name == "nimbus_plugin_calls_total")
        .map(plugin_calls)
        .fold(0.0, f64::max);
    assert_eq!(counted, 1.0, "one increment call");

    // Logs: the access-log lines, among others.
    assert!(
        receiver.wait_until(Duration::from_secs(30), |r| {
            r.logs().iter().any(|record| {
                record.attributes.iter().any(|a| {
                    a.key == "path"
                        && a.value
                            .as_ref()
                            .is_some_and(|v| format!("{:?}", v.value).contains("/kv/incr"))
                })
            })
        }),
        "no access-log record arrived; got {} records",
        receiver.logs().len()
    );
    assert!(server.interrupt(), "nimbus serve did not exit cleanly");
}

#[test]
fn without_otel_nothing_is_propagated_and_other_protocols_are_refused() {
    let (upstream_port, seen) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), upstream_port);
    let server = Server::start(
        dir.path(),
        &["serve", &manifest, "--addr", "127.0.0.1:0"],
        &[],
        Duration::from_secs(120),
    );
    let fetch = format!("/fetch?url=http://127.0.0.1:{upstream_port}/up");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _, _) = request_with_headers(
        &server.addr,
        "GET",
        &fetch,
        &[("Host", "front.test"), ("traceparent", traceparent)],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(*seen.lock().unwrap(), ["none"]);
    drop(server);

    let mut command = nimbus();
    command
        .args(["serve", &manifest, "--addr", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .current_dir(dir.path());
    let out = command.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported"),
        "{stderr}"
    );
}

#[test]
fn an_otlp_endpoint_that_is_no_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for endpoint in ["notaurl", "127.0.0.1:4317", "ftp://collector:21"] {
        let line = fails_in(
            dir.path(),
            &["--otlp-endpoint", endpoint, "serve", P2_BEHAVIORS],
        );
        assert_eq!(line.trim().lines().count(), 1, "{line}");
        assert!(
            line.contains(&format!(
                "--otlp-endpoint `{endpoint}` is not an http:// or https:// URL"
            )),
            "{line}"
        );
    }
}

/// `nimbus serve P2_BEHAVIORS` exporting traces only, with `envs`.
fn serve_exporting_traces(dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ];
    all.extend_from_slice(envs);
    Server::start(
        dir,
        &["serve", P2_BEHAVIORS, "--addr", "127.0.0.1:0"],
        &all,
        Duration::from_secs(120),
    )
}

/// A TLS receiver, and the path of its certificate written in `dir`.
fn tls_receiver(dir: &std::path::Path) -> (OtlpReceiver, String) {
    let receiver = OtlpReceiver::start_tls();
    let ca = dir.join("collector-ca.pem");
    std::fs::write(&ca, receiver.certificate_pem().unwrap()).unwrap();
    (receiver, ca.display().to_string())
}

/// Sends `/ok` every 200 ms until `stderr` shows `needle` (up to 30 s).
fn request_until_stderr_shows(server: &Server, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !server.stderr().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "`{needle}` not seen within 30 s; stderr:\n{}",
            server.stderr()
        );
        assert_eq!(server.get("/ok").0, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tls_collectors_are_trusted_through_the_standard_variables_and_failures_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, ca) = tls_receiver(dir.path());
    let endpoint = receiver.endpoint().to_string();
    let received_requests = |r: &OtlpReceiver| {
        r.spans()
            .iter()
            .filter(|(_, s)| s.name == "GET" && attribute(s, "url.path").as_deref() == Some("/ok"))
            .count()
    };

    // Trusted through OTEL_EXPORTER_OTLP_CERTIFICATE: spans arrive over TLS.
    let server = serve_exporting_traces(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ],
    );
    assert_eq!(server.get("/ok").0, 200);
    assert!(
        receiver.wait_until(Duration::from_secs(30), |r| received_requests(r) == 1),
        "no span arrived over TLS; stderr:\n{}",
        server.stderr()
    );
    assert!(!server.stderr().contains("OTLP"), "{}", server.stderr());
    assert!(server.interrupt());

    // Without that CA, the collector's certificate is refused: said once on
    // stderr, and serving goes on.
    let server = serve_exporting_traces(dir.path(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let failed = format!("OTLP traces export to {endpoint} failed");
    request_until_stderr_shows(&server, &failed);
    for _ in 0..3 {
        assert_eq!(server.get("/ok").0, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = server.stderr();
    assert_eq!(stderr.matches("OTLP traces export").count(), 1, "{stderr}");
    let warning = stderr.lines().find(|l| l.contains(&failed)).unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.to_lowercase().contains("certificate"),
        "the reason is missing: {warning}"
    );
    assert_eq!(
        received_requests(&receiver),
        1,
        "an untrusted export arrived"
    );
    assert!(server.interrupt());

    // A collector that is down is reported, and so is its return.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = serve_exporting_traces(dir.path(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    request_until_stderr_shows(&server, &format!("OTLP traces export to {endpoint} failed"));
    let receiver = OtlpReceiver::start_on(&format!("127.0.0.1:{port}"), false);
    request_until_stderr_shows(
        &server,
        &format!("OTLP traces export to {endpoint} works again"),
    );
    assert!(received_requests(&receiver) >= 1);
    assert!(server.interrupt());

    // Unreadable or half-given TLS files stop the start, in one line.
    for (envs, expected) in [
        (
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")],
            "error: cannot read OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", ca.as_str())],
            "error: OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE is set without its pair",
        ),
    ] {
        let out = nimbus()
            .args(["serve", P2_BEHAVIORS, "--addr", "127.0.0.1:0"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:4317")
            .envs(envs)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(expected), "{stderr}");
    }
}

#[test]
fn http_protobuf_posts_each_signal_to_its_path_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, ca) = tls_receiver(dir.path());
    let endpoint = receiver.endpoint().to_string();

    // The flag is a base URL: each signal goes to its own path under it.
    let server = Server::start(
        dir.path(),
        &[
            "--otlp-endpoint",
            &endpoint,
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--access-log",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(server.get("/ok").0, 200);
    let arrived = receiver.wait_until(Duration::from_secs(30), |r| {
        r.spans()
            .iter()
            .any(|(_, s)| s.name == "GET" && attribute(s, "url.path").as_deref() == Some("/ok"))
            && r.metrics()
                .iter()
                .any(|m| m.name == "nimbus_requests_total")
            && r.logs().iter().any(|record| {
                record.attributes.iter().any(|a| {
                    a.key == "path"
                        && a.value
                            .as_ref()
                            .is_some_and(|v| format!("{:?}", v.value).contains("/ok"))
                })
            })
    });
    assert!(
        arrived,
        "not everything arrived over OTLP/HTTP: posts {:?}; stderr:\n{}",
        receiver.http_posts(),
        server.stderr()
    );
    let mut paths = receiver.http_posts();
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["/v1/logs", "/v1/metrics", "/v1/traces"]);
    assert!(!server.stderr().contains("OTLP"), "{}", server.stderr());
    assert!(server.interrupt());

    // A signal's own endpoint is the whole URL; the collector's refusal
    // (here a 404) is reported with the URL and the status.
    let wrong = format!("{endpoint}/elsewhere");
    let server = serve_exporting_traces(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &wrong),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ],
    );
    let failed = format!("OTLP traces export to {wrong} failed");
    request_until_stderr_shows(&server, &failed);
    let stderr = server.stderr();
    let warning = stderr.lines().find(|l| l.contains(&failed)).unwrap();
    assert!(warning.contains("404"), "{warning}");
    assert!(receiver.http_posts().contains(&"/elsewhere".to_string()));
    assert!(server.interrupt());
}

/// A wasmCloud manifest whose component uses `wasi:otel` (with the
/// `wasi:otel` host-interface entry wasmCloud asks for).
fn otel_manifest(dir: &std::path::Path) -> String {
    let text = format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: orders
  namespace: shop
spec:
  components:
    - name: app
      image: file://{app}
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: orders.test
    - namespace: wasi
      package: otel
      version: 0.2.0-rc.2
      interfaces: [types, tracing, logs, metrics]
"#,
        app = test_programs::P2_OTEL,
    );
    let path = dir.join("orders.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn guest_telemetry_joins_the_hosts_otlp_pipeline_and_the_request_trace() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};

    let receiver = OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = otel_manifest(dir.path());
    let server = Server::start(
        dir.path(),
        &["serve", &manifest, "--addr", "127.0.0.1:0"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_SERVICE_NAME", "shop-edge"),
        ],
        Duration::from_secs(120),
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (status, _, body) = request_with_headers(
        &server.addr,
        "GET",
        "/",
        &[("Host", "orders.test"), ("traceparent", &traceparent)],
        "",
    );
    assert_eq!(status, 200, "{body}");

    let in_trace = |r: &OtlpReceiver| -> Vec<(test_programs::otlp::ResourceAttributes, Span)> {
        r.spans_with_resource()
            .into_iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace_id)
            .collect()
    };
    let guest_log = |r: &OtlpReceiver| {
        r.logs_with_resource().into_iter().find(|(_, l)| {
            l.body
                .as_ref()
                .and_then(|b| b.value.as_ref())
                .is_some_and(|v| *v == AnyValue::StringValue("hello from the guest".into()))
        })
    };
    let guest_metric = |r: &OtlpReceiver| {
        r.metrics_with_resource()
            .into_iter()
            .find(|(_, m)| m.name == "guest_requests")
    };
    let arrived = receiver.wait_until(Duration::from_secs(30), |r| {
        let spans = in_trace(r);
        spans.iter().any(|(_, s)| s.name == "guest work")
            && spans.iter().any(|(_, s)| s.name == "component app")
            && guest_log(r).is_some()
            && guest_metric(r).is_some()
    });
    assert!(
        arrived,
        "guest telemetry did not arrive: spans {:?}, {} logs, metrics {:?}; stderr:\n{}",
        receiver
            .spans()
            .iter()
            .map(|(_, s)| (&s.name, hex(&s.trace_id)))
            .collect::<Vec<_>>(),
        receiver.logs().len(),
        receiver
            .metrics()
            .iter()
            .map(|m| &m.name)
            .collect::<Vec<_>>(),
        server.stderr()
    );

    // The guest's span is the component span's child, in the caller's trace.
    let spans = in_trace(&receiver);
    let find = |name: &str| spans.iter().find(|(_, s)| s.name == name).cloned().unwrap();
    let (_, component) = find("component app");
    let (resource, guest) = find("guest work");
    assert_eq!(hex(&guest.parent_span_id), hex(&component.span_id));
    assert_eq!(attribute(&guest, "guest.answer").as_deref(), Some("42"));
    assert!(
        body.contains(&format!("span {}", hex(&guest.span_id))),
        "{body}"
    );
    assert!(
        body.contains(&format!("outer {trace_id}-{}", hex(&component.span_id))),
        "{body}"
    );
    let who = |resource: &test_programs::otlp::ResourceAttributes| {
        (
            resource.get("nimbus.workload").cloned(),
            resource.get("nimbus.component").cloned(),
            resource.get("service.name").cloned(),
        )
    };
    let expected = (
        Some("shop/orders".to_string()),
        Some("app".to_string()),
        Some("shop-edge".to_string()),
    );
    assert_eq!(who(&resource), expected);

    // The log record: its body, in the guest's span.
    let (resource, log) = guest_log(&receiver).unwrap();
    assert_eq!(hex(&log.trace_id), trace_id);
    assert_eq!(hex(&log.span_id), hex(&guest.span_id));
    assert_eq!(who(&resource), expected);

    // The metric: its value, named as the guest named it.
    let (resource, metric) = guest_metric(&receiver).unwrap();
    let Some(Data::Sum(sum)) = &metric.data else {
        panic!("guest_requests is not a sum: {metric:?}");
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 1);
    assert_eq!(sum.data_points[0].value, Some(Value::AsInt(1)));
    assert_eq!(who(&resource), expected);
    assert!(server.interrupt(), "nimbus serve did not exit cleanly");
}
