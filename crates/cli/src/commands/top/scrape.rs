//! Reading a host's `/metrics`: one scrape, parsed into counters per
//! component.

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use std::collections::BTreeMap;
use std::time::Duration;

/// The plain-HTTP client that reads `/metrics`.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<bytes::Bytes>,
>;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one scrape says about one component.
#[derive(Clone, Default)]
pub(super) struct Counters {
    pub(super) requests: f64,
    pub(super) errors: f64,
    pub(super) cpu_seconds: f64,
    /// Wall time instances were held over the CPU limit, summed.
    pub(super) throttled_seconds: f64,
    pub(super) memory_bytes: f64,
    pub(super) instances: f64,
    /// Cumulative histogram buckets: (upper bound, count).
    pub(super) latency: Vec<(f64, f64)>,
}

/// The host (empty when one admin endpoint is read), `namespace/workload`,
/// component.
pub(super) type RowKey = (String, String, String);

pub(super) fn metrics_url(addr: &str) -> anyhow::Result<http::Uri> {
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

/// Every host of a cluster, asked over NATS for its metrics (the host
/// API's `metrics` request), by host and component. Hosts are found with a
/// ping each time, so hosts that join or leave show.
pub(super) async fn scrape_cluster(
    client: &async_nats::Client,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
    use nimbus_cluster::api::{Reply, metrics_subject};
    let hosts = nimbus_cluster::overview::ping_hosts(client, nimbus_cluster::overview::PING_WAIT)
        .await
        .map_err(anyhow::Error::msg)?;
    let asks = hosts.iter().map(|host| async move {
        let ask = client.request(metrics_subject(&host.id), "".into());
        let answer = match tokio::time::timeout(timeout, ask).await {
            Ok(Ok(message)) => message,
            // A host that stops answering between the ping and the ask is
            // left out of this sample, not an error of the whole view.
            _ => return None,
        };
        let text = serde_json::from_slice::<Reply<String>>(&answer.payload)
            .ok()?
            .into_result()
            .ok()?;
        parse(&text, &host.id).ok()
    });
    let mut all = BTreeMap::new();
    for counters in futures::future::join_all(asks).await.into_iter().flatten() {
        all.extend(counters);
    }
    Ok(all)
}

/// The largest `/metrics` answer read: a host's text for many thousands
/// of components is a few megabytes.
const MAX_METRICS_BYTES: usize = 64 << 20;

/// One scrape of `/metrics`, by component.
pub(super) async fn scrape(
    client: &HttpClient,
    url: &http::Uri,
) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
    let fetch = async {
        let response = client.get(url.clone()).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_METRICS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    anyhow::anyhow!("its answer is larger than {} MiB", MAX_METRICS_BYTES >> 20)
                } else {
                    anyhow::anyhow!(e)
                }
            })?
            .to_bytes();
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
    parse(&text, "").with_context(|| format!("{url} did not return Prometheus metrics"))
}

/// The components in a Prometheus text exposition of `host`.
pub(super) fn parse(text: &str, host: &str) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
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
            .entry((
                host.to_string(),
                format!("{namespace}/{workload}"),
                component.to_string(),
            ))
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
            "nimbus_guest_cpu_throttled_seconds_total" => entry.throttled_seconds = value,
            "nimbus_memory_bytes" => entry.memory_bytes = value,
            "nimbus_instances" => entry.instances = value,
            _ => {}
        }
    }
    Ok(components)
}
