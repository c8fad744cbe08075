//! `nimbus top`: a live view of what each workload's components cost, read
//! from a host's admin endpoint (`/metrics`) once per interval.
//!
//! Rates (requests, errors, CPU) and latency quantiles come from the
//! difference between two scrapes, so the first table appears after one
//! interval. On a terminal, keys re-sort the table while it runs.

use super::cluster::parse_duration;
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The plain-HTTP client that reads `/metrics`.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<bytes::Bytes>,
>;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `nimbus top`.
#[derive(Args)]
pub(crate) struct TopCommand {
    /// The host's admin endpoint (`nimbus host` serves it on 127.0.0.1:9090;
    /// `nimbus serve` with --admin-addr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_addr: String,
    /// Column to sort by (keys while running: c r l p m i e n).
    #[arg(long, value_enum, default_value = "cpu")]
    sort: SortKey,
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Print one table, after one interval, and exit.
    #[arg(long)]
    once: bool,
}

/// A column `nimbus top` can sort by.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortKey {
    Cpu,
    Rps,
    P50,
    P99,
    Memory,
    Instances,
    Errors,
    Name,
}

impl SortKey {
    fn from_key(key: char) -> Option<Self> {
        Some(match key {
            'c' => Self::Cpu,
            'r' => Self::Rps,
            'l' => Self::P50,
            'p' => Self::P99,
            'm' => Self::Memory,
            'i' => Self::Instances,
            'e' => Self::Errors,
            'n' => Self::Name,
            _ => return None,
        })
    }
}

/// What one scrape says about one component.
#[derive(Clone, Default)]
struct Counters {
    requests: f64,
    errors: f64,
    cpu_seconds: f64,
    memory_bytes: f64,
    instances: f64,
    /// Cumulative histogram buckets: (upper bound, count).
    latency: Vec<(f64, f64)>,
}

/// `namespace/workload`, component.
type RowKey = (String, String);

/// One row of the table.
struct Row {
    workload: String,
    component: String,
    rps: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu_percent: f64,
    memory_bytes: f64,
    instances: f64,
    errors_per_second: f64,
}

impl TopCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        super::block_on(self.run())
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let url = metrics_url(&self.admin_addr)?;
        // One client for every scrape, so its connection is reused.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>();
        let mut previous = (Instant::now(), scrape(&client, &url).await?);
        let interactive = !self.once && std::io::stdout().is_terminal();
        let _raw = interactive.then(RawMode::enable).transpose()?;
        loop {
            if interactive {
                if let Some(key) = wait_for_key(self.interval).await? {
                    match key {
                        Key::Quit => return Ok(()),
                        Key::Sort(sort) => self.sort = sort,
                    }
                }
            } else {
                tokio::time::sleep(self.interval).await;
            }
            let now = (Instant::now(), scrape(&client, &url).await?);
            let elapsed = now.0.duration_since(previous.0).as_secs_f64().max(1e-3);
            let mut rows = rows(&previous.1, &now.1, elapsed);
            sort_rows(&mut rows, self.sort);
            let table = render(&rows, &self.admin_addr, self.sort);
            let mut out = std::io::stdout().lock();
            if interactive {
                // Clear and home; raw mode needs \r\n line ends.
                write!(out, "\x1b[2J\x1b[H{}", table.replace('\n', "\r\n"))?;
            } else {
                write!(out, "{table}")?;
            }
            out.flush()?;
            if self.once {
                return Ok(());
            }
            previous = now;
        }
    }
}

fn metrics_url(addr: &str) -> anyhow::Result<http::Uri> {
    let base = if addr.contains("://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    };
    let url = if base.ends_with("/metrics") {
        base
    } else {
        format!("{base}/metrics")
    };
    url.parse()
        .with_context(|| format!("`{addr}` is not an address (HOST:PORT) or URL"))
}

/// One scrape of `/metrics`, by component.
async fn scrape(
    client: &HttpClient,
    url: &http::Uri,
) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
    let fetch = async {
        let response = client.get(url.clone()).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("{url} did not answer within {SCRAPE_TIMEOUT:?}"))?
        .with_context(|| {
            format!("cannot read {url} (is a host serving its admin endpoint there?)")
        })?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    parse(&text).with_context(|| format!("{url} did not return Prometheus metrics"))
}

/// The components in a Prometheus text exposition.
fn parse(text: &str) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
    use prometheus_parse::Value;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
    let mut components: BTreeMap<RowKey, Counters> = BTreeMap::new();
    for sample in scrape.samples {
        let (Some(namespace), Some(workload), Some(component)) = (
            sample.labels.get("namespace"),
            sample.labels.get("workload"),
            sample.labels.get("component"),
        ) else {
            continue;
        };
        let entry = components
            .entry((format!("{namespace}/{workload}"), component.to_string()))
            .or_default();
        let value = match &sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => {
                if sample.metric == "nimbus_request_duration_seconds" {
                    entry.latency = buckets.iter().map(|b| (b.less_than, b.count)).collect();
                }
                continue;
            }
            Value::Summary(_) => continue,
        };
        match sample.metric.as_str() {
            "nimbus_requests_total" => {
                entry.requests += value;
                if sample.labels.get("class") == Some("5xx") {
                    entry.errors += value;
                }
            }
            "nimbus_guest_cpu_seconds_total" => entry.cpu_seconds = value,
            "nimbus_memory_bytes" => entry.memory_bytes = value,
            "nimbus_instances" => entry.instances = value,
            _ => {}
        }
    }
    Ok(components)
}

fn rows(
    before: &BTreeMap<RowKey, Counters>,
    after: &BTreeMap<RowKey, Counters>,
    seconds: f64,
) -> Vec<Row> {
    after
        .iter()
        .map(|((workload, component), now)| {
            let then = before.get(&(workload.clone(), component.clone()));
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
                workload: workload.clone(),
                component: component.clone(),
                rps: delta(|c| c.requests),
                p50: quantile(&latency, 0.5),
                p99: quantile(&latency, 0.99),
                cpu_percent: delta(|c| c.cpu_seconds) * 100.0,
                memory_bytes: now.memory_bytes,
                instances: now.instances,
                errors_per_second: delta(|c| c.errors),
            }
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside the
/// bucket it falls in (as Prometheus' `histogram_quantile` does).
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, c)| *c).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let fraction = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

fn sort_rows(rows: &mut [Row], sort: SortKey) {
    let by = |row: &Row| -> f64 {
        match sort {
            SortKey::Cpu => row.cpu_percent,
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
        by(b)
            .total_cmp(&by(a))
            .then_with(|| (&a.workload, &a.component).cmp(&(&b.workload, &b.component)))
    });
}

fn render(rows: &[Row], addr: &str, sort: SortKey) -> String {
    let sorted = sort
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let mut out = format!(
        "nimbus top: {addr}, {} components, sorted by {sorted}\n",
        rows.len()
    );
    out.push_str(&format!(
        "{:<28} {:<16} {:>9} {:>9} {:>9} {:>7} {:>10} {:>5} {:>8}\n",
        "WORKLOAD", "COMPONENT", "REQ/S", "P50", "P99", "CPU%", "MEMORY", "INST", "ERR/S"
    ));
    for row in rows {
        out.push_str(&format!(
            "{:<28} {:<16} {:>9.1} {:>9} {:>9} {:>7.1} {:>10} {:>5} {:>8.1}\n",
            row.workload,
            row.component,
            row.rps,
            millis(row.p50),
            millis(row.p99),
            row.cpu_percent,
            bytes(row.memory_bytes),
            row.instances,
            row.errors_per_second
        ));
    }
    out
}

fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{:.1}ms", s * 1000.0),
        None => "-".into(),
    }
}

fn bytes(n: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= MIB {
        format!("{:.1}MiB", n / MIB)
    } else {
        format!("{:.0}KiB", n / 1024.0)
    }
}

enum Key {
    Quit,
    Sort(SortKey),
}

/// Waits up to `timeout` for a key that changes the view.
async fn wait_for_key(timeout: Duration) -> anyhow::Result<Option<Key>> {
    tokio::task::spawn_blocking(move || {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                return Ok(None);
            }
            if let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                match key.code {
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(Some(Key::Quit));
                    }
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(Some(Key::Quit)),
                    KeyCode::Char(c) => {
                        if let Some(sort) = SortKey::from_key(c) {
                            return Ok(Some(Key::Sort(sort)));
                        }
                    }
                    _ => {}
                }
            }
        }
    })
    .await
    .context("the key reader stopped")?
}

/// The terminal in raw mode (keys arrive one by one), restored on drop.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<Self> {
        crossterm::terminal::enable_raw_mode().context("cannot read keys from the terminal")?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# TYPE nimbus_requests_total counter
nimbus_requests_total{class="2xx",component="api",namespace="shop",workload="cart"} 90
nimbus_requests_total{class="5xx",component="api",namespace="shop",workload="cart"} 10
# TYPE nimbus_guest_cpu_seconds_total counter
nimbus_guest_cpu_seconds_total{component="api",namespace="shop",workload="cart"} 0.5
# TYPE nimbus_memory_bytes gauge
nimbus_memory_bytes{component="api",namespace="shop",workload="cart"} 2097152
# TYPE nimbus_request_duration_seconds histogram
nimbus_request_duration_seconds_bucket{component="api",namespace="shop",workload="cart",le="0.001"} 50
nimbus_request_duration_seconds_bucket{component="api",namespace="shop",workload="cart",le="0.01"} 99
nimbus_request_duration_seconds_bucket{component="api",namespace="shop",workload="cart",le="+Inf"} 100
nimbus_request_duration_seconds_sum{component="api",namespace="shop",workload="cart"} 0.3
nimbus_request_duration_seconds_count{component="api",namespace="shop",workload="cart"} 100
"#;

    #[test]
    fn rates_and_quantiles_come_from_the_difference_of_two_scrapes() {
        let after = parse(SCRAPE).unwrap();
        let rows = rows(&BTreeMap::new(), &after, 2.0);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (row.workload.as_str(), row.component.as_str()),
            ("shop/cart", "api")
        );
        assert_eq!(row.rps, 50.0);
        assert_eq!(row.errors_per_second, 5.0);
        assert_eq!(row.cpu_percent, 25.0);
        assert_eq!(row.memory_bytes, 2097152.0);
        assert!((row.p50.unwrap() - 0.001).abs() < 1e-9, "{:?}", row.p50);
        let p99 = row.p99.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.01 + 1e-12, "{p99}");
        assert!(render(&rows, "x", SortKey::Cpu).contains("shop/cart"));
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let buckets = [(0.1, 0.0), (0.2, 10.0), (f64::INFINITY, 10.0)];
        assert!((quantile(&buckets, 0.5).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(quantile(&[(0.1, 0.0)], 0.5), None);
    }
}
