//! `nimbus top`: a live view of what each workload's components cost, read
//! from a host's admin endpoint (`/metrics`) once per interval.
//!
//! Rates (requests, errors, CPU) and latency quantiles come from the
//! difference between two scrapes, so the first table appears after one
//! interval. On a terminal, keys re-sort the table while it runs.
//! `-o json|yaml` prints that one sample as data and exits, as `--once`.
//! With `--nats`, every host of a cluster is read over NATS instead, one
//! row per host and component.

use super::cluster::parse_duration;
use clap::{Args, ValueEnum};
use http_body_util::Empty;
use keys::{Key, RawMode, wait_for_key};
use scrape::{Counters, RowKey, metrics_url, scrape, scrape_cluster};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use table::{Sample, render, rows, sort_rows};

mod keys;
mod scrape;
mod table;

/// Arguments of `nimbus top`.
#[derive(Args)]
pub(crate) struct TopCommand {
    /// The host's admin endpoint (`nimbus host` serves it on 127.0.0.1:9090;
    /// `nimbus serve` with --admin-addr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_addr: String,
    /// Read every host of the cluster at this NATS URL instead of one admin
    /// endpoint: one row per host and component.
    #[arg(long = "nats", value_name = "URL", conflicts_with = "admin_addr")]
    nats: Option<String>,
    #[command(flatten)]
    nats_connection: super::cluster::NatsConnection,
    /// Column to sort by (keys while running: c t r l p m i e n).
    #[arg(long, value_enum, default_value = "cpu")]
    sort: SortKey,
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Print one table, after one interval, and exit.
    #[arg(long)]
    once: bool,
    /// Output format: the table (`table`), or one sample as `json` or
    /// `yaml` (each component's rates, latency quantiles in seconds, CPU
    /// and throttled percent, memory bytes, instances); json and yaml imply
    /// --once.
    #[arg(short, long, value_enum, default_value = "table")]
    output: super::OutputFormat,
}

/// A column `nimbus top` can sort by.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum SortKey {
    Cpu,
    Throttled,
    Rps,
    P50,
    P99,
    Memory,
    Instances,
    Errors,
    Name,
}

impl SortKey {
    pub(super) fn from_key(key: char) -> Option<Self> {
        Some(match key {
            'c' => Self::Cpu,
            't' => Self::Throttled,
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

impl TopCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        super::block_on(self.run())
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let source = match &self.nats {
            Some(url) => {
                let client = self
                    .nats_connection
                    .connect(
                        url,
                        "nimbus-top",
                        nimbus_cluster::connect::Persistence::Once,
                    )
                    .await?;
                Source::Cluster {
                    client,
                    timeout: self.nats_connection.timeout(),
                }
            }
            None => Source::Admin {
                url: metrics_url(&self.admin_addr)?,
                // One client for every scrape, so its connection is reused.
                client: Box::new(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http::<Empty<bytes::Bytes>>(),
                ),
            },
        };
        let shown = match &self.nats {
            Some(url) => format!("cluster at {url}"),
            None => self.admin_addr.clone(),
        };
        let mut previous = (Instant::now(), source.read().await?);
        let data = self.output != super::OutputFormat::Table;
        let once = self.once || data;
        let interactive = !once && std::io::stdout().is_terminal();
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
            let now = (Instant::now(), source.read().await?);
            let elapsed = now.0.duration_since(previous.0).as_secs_f64().max(1e-3);
            let mut rows = rows(&previous.1, &now.1, elapsed);
            sort_rows(&mut rows, self.sort);
            if data {
                let sample = Sample::new(&rows, &shown, self.sort, elapsed);
                super::print_structured(self.output, &sample)?;
                return Ok(());
            }
            let table = render(&rows, &shown, self.sort);
            let mut out = std::io::stdout().lock();
            if interactive {
                // Clear and home; raw mode needs \r\n line ends.
                write!(out, "\x1b[2J\x1b[H{}", table.replace('\n', "\r\n"))?;
            } else {
                write!(out, "{table}")?;
            }
            out.flush()?;
            if once {
                return Ok(());
            }
            previous = now;
        }
    }
}

/// Where `nimbus top` reads its figures.
enum Source {
    /// One host's admin endpoint.
    Admin {
        client: Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                Empty<bytes::Bytes>,
            >,
        >,
        url: http::Uri,
    },
    /// Every host of a cluster, over NATS.
    Cluster {
        client: async_nats::Client,
        timeout: Duration,
    },
}

impl Source {
    async fn read(&self) -> anyhow::Result<BTreeMap<RowKey, Counters>> {
        match self {
            Self::Admin { client, url } => scrape(client, url).await,
            Self::Cluster { client, timeout } => scrape_cluster(client, *timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scrape::parse;
    use super::table::{render, rows};
    use super::*;
    use std::collections::BTreeMap;

    const SCRAPE: &str = r#"# TYPE nimbus_requests_total counter
nimbus_requests_total{class="2xx",component="api",namespace="shop",workload="cart"} 90
nimbus_requests_total{class="5xx",component="api",namespace="shop",workload="cart"} 10
# TYPE nimbus_guest_cpu_seconds_total counter
nimbus_guest_cpu_seconds_total{component="api",namespace="shop",workload="cart"} 0.5
# TYPE nimbus_guest_cpu_throttled_seconds_total counter
nimbus_guest_cpu_throttled_seconds_total{component="api",namespace="shop",workload="cart"} 1.5
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
        let after = parse(SCRAPE, "").unwrap();
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
        assert_eq!(row.throttled_percent, 75.0);
        assert_eq!(row.memory_bytes, 2097152.0);
        assert!((row.p50.unwrap() - 0.001).abs() < 1e-9, "{:?}", row.p50);
        let p99 = row.p99.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.01 + 1e-12, "{p99}");
        let table = render(&rows, "x", SortKey::Throttled);
        assert!(table.contains("shop/cart"), "{table}");
        assert!(
            table.contains("THROTTLED") && table.contains("75.0%"),
            "{table}"
        );
    }

    #[test]
    fn a_sample_as_data_has_every_column_in_base_units() {
        let after = parse(SCRAPE, "").unwrap();
        let busy = rows(&BTreeMap::new(), &after, 2.0);
        let sample = table::Sample::new(&busy, "127.0.0.1:9090", SortKey::Rps, 2.0);
        let json = serde_json::to_value(&sample).unwrap();
        assert_eq!(json["adminAddr"], "127.0.0.1:9090");
        assert_eq!(json["intervalSeconds"], 2.0);
        assert_eq!(json["sortedBy"], "rps");
        let row = &json["components"][0];
        assert_eq!(row["workload"], "shop/cart");
        assert_eq!(row["component"], "api");
        assert_eq!(row["requestsPerSecond"], 50.0);
        assert_eq!(row["errorsPerSecond"], 5.0);
        assert_eq!(row["cpuPercent"], 25.0);
        assert_eq!(row["throttledPercent"], 75.0);
        assert_eq!(row["memoryBytes"], 2097152);
        assert_eq!(row["instances"], 0);
        assert!((row["p50Seconds"].as_f64().unwrap() - 0.001).abs() < 1e-9);
        assert!(row["p99Seconds"].is_f64(), "{row}");
        // No requests in the interval: no quantiles, null rather than 0.
        let idle = table::Sample::new(&rows(&after, &after, 2.0), "x", SortKey::Cpu, 2.0);
        let json = serde_json::to_value(&idle).unwrap();
        assert!(json["components"][0]["p50Seconds"].is_null(), "{json}");
        let yaml = serde_yaml_ng::to_string(&sample).unwrap();
        assert!(yaml.contains("requestsPerSecond: 50.0"), "{yaml}");
    }
}
