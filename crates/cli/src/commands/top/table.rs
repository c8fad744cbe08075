//! The table: rates and latency quantiles from two scrapes, sorted and
//! rendered.

use super::SortKey;
use super::scrape::{Counters, RowKey};
use clap::ValueEnum as _;
use nimbus_host::metrics::quantile;
use serde::Serialize;
use std::collections::BTreeMap;

/// One row of the table.
pub(super) struct Row {
    /// The host, reading a cluster; empty otherwise.
    pub(super) host: String,
    pub(super) workload: String,
    pub(super) component: String,
    pub(super) rps: f64,
    pub(super) p50: Option<f64>,
    pub(super) p99: Option<f64>,
    pub(super) cpu_percent: f64,
    /// Time held over the CPU limit per wall time, in percent (summed over
    /// instances: two held the whole interval are 200).
    pub(super) throttled_percent: f64,
    pub(super) memory_bytes: f64,
    pub(super) instances: f64,
    pub(super) errors_per_second: f64,
}

pub(super) fn rows(
    before: &BTreeMap<RowKey, Counters>,
    after: &BTreeMap<RowKey, Counters>,
    seconds: f64,
) -> Vec<Row> {
    after
        .iter()
        .map(|(key, now)| {
            let (host, workload, component) = key;
            let then = before.get(key);
            let delta =
                |f: fn(&Counters) -> f64| (f(now) - then.map(f).unwrap_or(0.0)).max(0.0) / seconds;
            let latency: Vec<(f64, f64)> = now
                .latency
                .iter()
                .map(|&(bound, count)| {
                    let earlier = then
                        .and_then(|t| t.latency.iter().find(|(b, _)| *b == bound))
                        .map(|(_, c)| *c)
                        .unwrap_or(0.0);
                    (bound, (count - earlier).max(0.0))
                })
                .collect();
            Row {
                host: host.clone(),
                workload: workload.clone(),
                component: component.clone(),
                rps: delta(|c| c.requests),
                p50: quantile(&latency, 0.5),
                p99: quantile(&latency, 0.99),
                cpu_percent: delta(|c| c.cpu_seconds) * 100.0,
                throttled_percent: delta(|c| c.throttled_seconds) * 100.0,
                memory_bytes: now.memory_bytes,
                instances: now.instances,
                errors_per_second: delta(|c| c.errors),
            }
        })
        .collect()
}

pub(super) fn sort_rows(rows: &mut [Row], sort: SortKey) {
    let by = |row: &Row| -> f64 {
        match sort {
            SortKey::Cpu => row.cpu_percent,
            SortKey::Throttled => row.throttled_percent,
            SortKey::Rps => row.rps,
            SortKey::P50 => row.p50.unwrap_or(0.0),
            SortKey::P99 => row.p99.unwrap_or(0.0),
            SortKey::Memory => row.memory_bytes,
            SortKey::Instances => row.instances,
            SortKey::Errors => row.errors_per_second,
            SortKey::Name => 0.0,
        }
    };
    rows.sort_by(|a, b| {
        by(b).total_cmp(&by(a)).then_with(|| {
            (&a.workload, &a.component, &a.host).cmp(&(&b.workload, &b.component, &b.host))
        })
    });
}

pub(super) fn render(rows: &[Row], addr: &str, sort: SortKey) -> String {
    let sorted = sort_name(sort);
    let mut out = format!(
        "nimbus top: {addr}, {} components, sorted by {sorted}\n",
        rows.len()
    );
    // A cluster's rows say which host they are from.
    let host_width = rows.iter().map(|r| r.host.len()).max().unwrap_or(0);
    let host_column = |host: &str| {
        if host_width == 0 {
            String::new()
        } else {
            format!("{host:<width$} ", width = host_width.max(4))
        }
    };
    out.push_str(&host_column("HOST"));
    out.push_str(&format!(
        "{:<28} {:<16} {:>9} {:>9} {:>9} {:>7} {:>9} {:>10} {:>5} {:>8}\n",
        "WORKLOAD",
        "COMPONENT",
        "REQ/S",
        "P50",
        "P99",
        "CPU%",
        "THROTTLED",
        "MEMORY",
        "INST",
        "ERR/S"
    ));
    for row in rows {
        out.push_str(&host_column(&row.host));
        out.push_str(&format!(
            "{:<28} {:<16} {:>9.1} {:>9} {:>9} {:>7.1} {:>9} {:>10} {:>5} {:>8.1}\n",
            row.workload,
            row.component,
            row.rps,
            millis(row.p50),
            millis(row.p99),
            row.cpu_percent,
            percent(row.throttled_percent),
            bytes(row.memory_bytes),
            row.instances,
            row.errors_per_second
        ));
    }
    out
}

/// One sample as data (`-o json|yaml`): the table's rows in base units.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Sample {
    /// The admin endpoint scraped.
    admin_addr: String,
    /// The time between the two scrapes the rates come from.
    interval_seconds: f64,
    /// The column the components are sorted by.
    sorted_by: String,
    components: Vec<ComponentSample>,
}

/// One component in a [`Sample`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentSample {
    /// The host, reading a cluster.
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    /// `namespace/name`.
    workload: String,
    component: String,
    requests_per_second: f64,
    /// Median latency; `None` without requests in the interval.
    p50_seconds: Option<f64>,
    p99_seconds: Option<f64>,
    /// Guest CPU time per wall-clock time, in percent of one core.
    cpu_percent: f64,
    /// Time its instances were held over its CPU limit per wall-clock
    /// time, in percent, summed over instances (0 without a limit).
    throttled_percent: f64,
    memory_bytes: u64,
    instances: u64,
    /// 5xx responses per second.
    errors_per_second: f64,
}

impl Sample {
    pub(super) fn new(rows: &[Row], addr: &str, sort: SortKey, seconds: f64) -> Self {
        Self {
            admin_addr: addr.to_string(),
            interval_seconds: seconds,
            sorted_by: sort_name(sort),
            components: rows
                .iter()
                .map(|row| ComponentSample {
                    host: row.host.clone(),
                    workload: row.workload.clone(),
                    component: row.component.clone(),
                    requests_per_second: row.rps,
                    p50_seconds: row.p50,
                    p99_seconds: row.p99,
                    cpu_percent: row.cpu_percent,
                    throttled_percent: row.throttled_percent,
                    // Gauges of whole bytes and instances, read as floats.
                    memory_bytes: row.memory_bytes.max(0.0).round() as u64,
                    instances: row.instances.max(0.0).round() as u64,
                    errors_per_second: row.errors_per_second,
                })
                .collect(),
        }
    }
}

fn sort_name(sort: SortKey) -> String {
    sort.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

pub(super) fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{:.1}ms", s * 1000.0),
        None => "-".into(),
    }
}

/// A percentage, or `-` for none (most components are never held).
pub(super) fn percent(p: f64) -> String {
    if p > 0.0 {
        format!("{p:.1}%")
    } else {
        "-".into()
    }
}

pub(super) fn bytes(n: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= MIB {
        format!("{:.1}MiB", n / MIB)
    } else {
        format!("{:.0}KiB", n / 1024.0)
    }
}
