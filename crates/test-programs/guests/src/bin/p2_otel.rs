//! `wasi:http/incoming-handler@0.2` component (wstd) using `wasi:otel`
//! directly, as an OpenTelemetry SDK for WASI would:
//!
//! - `/` reads `outer-span-context`, starts one span under it (`on-start`,
//!   a new trace when the host gave no valid context), emits one log record
//!   in that span (body `"hello from the guest"`), ends the span
//!   (`on-end`, name `guest work`, attribute `guest.answer` = 42), and
//!   exports one monotonic u64 sum, `guest_requests` = 1 (route `/`). It
//!   answers 200 with `outer TRACE-SPAN` and `span SPAN` lines (the ids in
//!   hex), or 500 with the export's error.
//! - `/bad` sends what a broken or hostile guest would: spans with ids that
//!   are not hex, zero or too long, a span with thousands of large
//!   attributes, events and links, a log record with garbled ids and a
//!   100 KiB body, a metrics export with a thousand metrics and times past
//!   the clock's range; it answers 200 `survived` (and the export's
//!   outcome) if the host took it all without trapping.

wit_bindgen::generate!({
    path: "../../capabilities/otel/wit",
    world: "wasi:otel/imports",
    generate_all,
});

use wasi::clocks::wall_clock::{self, Datetime};
use wasi::otel::logs::{self, LogRecord};
use wasi::otel::metrics::{self as otel_metrics, MetricData, MetricNumber};
use wasi::otel::tracing::{
    self as otel_tracing, SpanContext, SpanData, SpanKind, Status, TraceFlags,
};
use wasi::otel::types::{InstrumentationScope, KeyValue, Resource};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (status, body) = match request.uri().path() {
        "/bad" => bad(),
        _ => traced(),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}

fn kv(key: &str, json: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: json.into(),
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "p2-otel".into(),
        version: Some("0.1.0".into()),
        schema_url: None,
        attributes: Vec::new(),
    }
}

fn random_hex(bytes: usize) -> String {
    loop {
        let id: String = (0..bytes.div_ceil(8))
            .map(|_| format!("{:016x}", wasip2::random::random::get_random_u64()))
            .collect::<String>()[..bytes * 2]
            .to_string();
        if id.bytes().any(|b| b != b'0') {
            return id;
        }
    }
}

fn is_valid(id: &str) -> bool {
    !id.is_empty() && id.bytes().any(|b| b != b'0')
}

fn span_data(context: SpanContext, parent: String, start: Datetime) -> SpanData {
    SpanData {
        span_context: context,
        parent_span_id: parent,
        span_kind: SpanKind::Internal,
        name: "guest work".into(),
        start_time: start,
        end_time: wall_clock::now(),
        attributes: vec![kv("guest.answer", "42")],
        events: Vec::new(),
        links: Vec::new(),
        status: Status::Ok,
        instrumentation_scope: scope(),
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    }
}

fn resource_metrics(metrics: Vec<otel_metrics::Metric>) -> otel_metrics::ResourceMetrics {
    otel_metrics::ResourceMetrics {
        resource: Resource {
            attributes: vec![kv("service.name", "\"spoofed\"")],
            schema_url: None,
        },
        scope_metrics: vec![otel_metrics::ScopeMetrics {
            scope: scope(),
            metrics,
        }],
    }
}

fn requests_sum(name: String, value: u64, time: Datetime) -> otel_metrics::Metric {
    otel_metrics::Metric {
        name,
        description: "requests the guest saw".into(),
        unit: "1".into(),
        data: MetricData::U64Sum(otel_metrics::Sum {
            data_points: vec![otel_metrics::SumDataPoint {
                attributes: vec![kv("route", "\"/\"")],
                value: MetricNumber::U64(value),
                exemplars: Vec::new(),
            }],
            start_time: time,
            time,
            temporality: otel_metrics::Temporality::Cumulative,
            is_monotonic: true,
        }),
    }
}

/// One span under the host's, a log in it, a metric.
fn traced() -> (StatusCode, String) {
    let start = wall_clock::now();
    let outer = otel_tracing::outer_span_context();
    let (trace_id, parent) = if is_valid(&outer.trace_id) && is_valid(&outer.span_id) {
        (outer.trace_id.clone(), outer.span_id.clone())
    } else {
        (random_hex(16), String::new())
    };
    let span_id = random_hex(8);
    let context = SpanContext {
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        trace_flags: TraceFlags::SAMPLED,
        is_remote: false,
        trace_state: outer.trace_state.clone(),
    };
    otel_tracing::on_start(&context);

    logs::on_emit(&LogRecord {
        timestamp: Some(wall_clock::now()),
        observed_timestamp: None,
        severity_text: Some("INFO".into()),
        severity_number: Some(9),
        body: Some("\"hello from the guest\"".into()),
        attributes: Some(vec![kv("order", "42"), kv("tags", "[\"a\",\"b\"]")]),
        event_name: Some("guest.hello".into()),
        resource: None,
        instrumentation_scope: Some(scope()),
        trace_id: Some(trace_id.clone()),
        span_id: Some(span_id.clone()),
        trace_flags: Some(TraceFlags::SAMPLED),
    });

    otel_tracing::on_end(&span_data(context, parent, start));

    let now = wall_clock::now();
    let exported = otel_metrics::export(&resource_metrics(vec![requests_sum(
        "guest_requests".into(),
        1,
        now,
    )]));
    match exported {
        Ok(()) => (
            StatusCode::OK,
            format!(
                "outer {}-{}\nspan {span_id}\n",
                outer.trace_id, outer.span_id
            ),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("export: {error}\n"),
        ),
    }
}

/// Everything a host must survive.
fn bad() -> (StatusCode, String) {
    let now = wall_clock::now();
    let far = Datetime {
        seconds: u64::MAX,
        nanoseconds: u32::MAX,
    };
    let context = |trace: &str, span: &str| SpanContext {
        trace_id: trace.into(),
        span_id: span.into(),
        trace_flags: TraceFlags::SAMPLED,
        is_remote: true,
        trace_state: vec![
            ("bad key!".into(), "x".into()),
            ("k".into(), "v".repeat(600)),
        ],
    };
    for (trace, span, parent) in [
        ("zz", "1", ""),
        ("+1", "1", ""),
        ("0", "1", ""),
        ("ab", "0", ""),
        ("ab", "12345678901234567", ""),
        ("123456789012345678901234567890123", "1", ""),
        ("ab", "cd", "not hex"),
        ("", "", ""),
    ] {
        otel_tracing::on_start(&context(trace, span));
        otel_tracing::on_end(&span_data(context(trace, span), parent.into(), now));
    }
    // One valid span, stuffed.
    let big = "\"".to_string() + &"x".repeat(1024) + "\"";
    let mut heavy = span_data(context("ab", "ef"), "cd".into(), far);
    heavy.name = "n".repeat(100_000);
    heavy.attributes = (0..4000).map(|i| kv(&format!("k{i}"), &big)).collect();
    heavy.events = (0..1000)
        .map(|i| otel_tracing::Event {
            name: format!("e{i}"),
            time: far,
            attributes: vec![kv("x", &big)],
        })
        .collect();
    heavy.links = (0..1000)
        .map(|i| otel_tracing::Link {
            span_context: context(if i % 2 == 0 { "ab" } else { "?" }, "1"),
            attributes: vec![kv("x", "{\"deep\":[[[[[[[[[[1]]]]]]]]]]}")],
        })
        .collect();
    heavy.status = Status::Error("e".repeat(100_000));
    heavy.dropped_attributes = u32::MAX;
    heavy.dropped_events = u32::MAX;
    otel_tracing::on_end(&heavy);

    logs::on_emit(&LogRecord {
        timestamp: Some(far),
        observed_timestamp: Some(Datetime {
            seconds: 0,
            nanoseconds: 2_000_000_000,
        }),
        severity_text: Some("LOUD".into()),
        severity_number: Some(200),
        body: Some("[".repeat(10_000)),
        attributes: Some((0..4000).map(|i| kv(&format!("k{i}"), &big)).collect()),
        event_name: Some("x".repeat(10_000)),
        resource: None,
        instrumentation_scope: None,
        trace_id: Some("not-hex".into()),
        span_id: Some("".into()),
        trace_flags: None,
    });
    logs::on_emit(&LogRecord {
        timestamp: None,
        observed_timestamp: None,
        severity_text: None,
        severity_number: None,
        body: Some("x".repeat(100 * 1024)),
        attributes: None,
        event_name: None,
        resource: None,
        instrumentation_scope: None,
        trace_id: None,
        span_id: Some("zz".into()),
        trace_flags: None,
    });

    let metrics: Vec<otel_metrics::Metric> = (0..1000)
        .map(|i| requests_sum(format!("m{i}"), i, far))
        .chain([otel_metrics::Metric {
            name: "bad name with spaces".into(),
            description: String::new(),
            unit: String::new(),
            data: MetricData::F64Histogram(otel_metrics::Histogram {
                data_points: vec![otel_metrics::HistogramDataPoint {
                    attributes: Vec::new(),
                    count: u64::MAX,
                    bounds: vec![f64::NAN; 1000],
                    bucket_counts: vec![u64::MAX; 1000],
                    min: Some(MetricNumber::F64(f64::NEG_INFINITY)),
                    max: Some(MetricNumber::S64(i64::MIN)),
                    sum: MetricNumber::F64(f64::NAN),
                    exemplars: Vec::new(),
                }],
                start_time: far,
                time: far,
                temporality: otel_metrics::Temporality::LowMemory,
            }),
        }])
        .collect();
    let exported = otel_metrics::export(&resource_metrics(metrics));
    (
        StatusCode::OK,
        format!(
            "survived (export: {})\n",
            match exported {
                Ok(()) => "ok".to_string(),
                Err(error) => error,
            }
        ),
    )
}
