//! `nimbus logs deployment|workload NAME [-f]`: a resource's events as log
//! lines, oldest first; with `--follow`, new ones as the controller
//! records them.
//!
//! The lines are the events kept in the resource's status (see
//! `nimbus_cluster::events`): placements, resizes, updates and removals,
//! a host's failed or rejected start with the host's error, no live host
//! matching the `hostSelector`, a lost host. Guest output is not among
//! them: hosts do not ship it to the cluster; each writes it to its own log
//! (stderr, and OTLP when exporting), one line per guest line, tagged with
//! the workload and component.

use super::{BucketRef, NatsArgs, ResourceKind, find_resource};
use clap::Args;
use futures::StreamExt as _;
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::events::Event;
use std::collections::HashMap;

/// Arguments of `nimbus logs`.
#[derive(Args)]
pub(crate) struct LogsCommand {
    /// `deployment` or `workload`.
    #[arg(value_enum)]
    kind: ResourceKind,
    /// Its name.
    name: String,
    /// Its namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Keep printing events as the controller records them, until
    /// interrupted or the resource is deleted.
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

/// One event as a log line: `TIME TYPE REASON: MESSAGE`, and for an event
/// seen several times, how often since when.
fn line(event: &Event) -> String {
    let mut line = format!(
        "{} {:<7} {}: {}",
        event.last_timestamp,
        event.event_type.as_str(),
        event.reason,
        event.message
    );
    if event.count > 1 {
        line.push_str(&format!(
            " (x{} since {})",
            event.count, event.first_timestamp
        ));
    }
    line
}

/// What tells one event from another: type, reason, host, message and
/// when it first happened.
type EventKey = (String, String, Option<String>, String, String);

/// Which events have been printed, and how many times each had happened
/// then: an event that happens again is printed again.
#[derive(Default)]
struct Printed(HashMap<EventKey, u32>);

impl Printed {
    /// The lines of `events` not printed yet, in order.
    fn new_lines(&mut self, events: &[Event]) -> Vec<String> {
        let mut lines = Vec::new();
        for event in events {
            let key = (
                event.event_type.as_str().to_string(),
                event.reason.clone(),
                event.host.clone(),
                event.message.clone(),
                event.first_timestamp.clone(),
            );
            if self.0.get(&key).is_some_and(|count| *count >= event.count) {
                continue;
            }
            self.0.insert(key, event.count);
            lines.push(line(event));
        }
        lines
    }
}

impl LogsCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let kind = self.kind.kind();
        let client = self.nats.connect("nimbus-logs", Persistence::Once).await?;
        let store = self.bucket.open(client, self.nats.timeout()).await?;
        let (id, _) = find_resource(&store, kind, &self.name, self.namespace.as_deref()).await?;
        let mut printed = Printed::default();
        if !self.follow {
            match store.status(&id).await? {
                Some(status) => {
                    for line in printed.new_lines(&status.events) {
                        outln!("{line}")?;
                    }
                }
                None => eprintln!(
                    "note: no status for {} {id} yet (is `nimbus controller` running?)",
                    kind.as_str()
                ),
            }
            return Ok(());
        }
        let mut statuses = store.watch_status(&id).await?;
        while let Some(status) = statuses.next().await {
            match status? {
                Some(status) => {
                    for line in printed.new_lines(&status.events) {
                        outln!("{line}")?;
                    }
                }
                None => {
                    eprintln!("{} {id} was deleted", kind.as_str());
                    return Ok(());
                }
            }
        }
        anyhow::bail!("the watch of {id}'s status ended (NATS connection lost?)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_cluster::events::EventType;

    fn event(message: &str) -> Event {
        let mut event = Event::new(EventType::Warning, "FailedStart", message);
        event.first_timestamp = "2025-01-31T09:05:00Z".into();
        event.last_timestamp = event.first_timestamp.clone();
        event
    }

    #[test]
    fn events_print_as_lines_and_again_when_they_recur() {
        let mut placed = event("placed 1 replica on host h0");
        placed.event_type = EventType::Normal;
        placed.reason = "Placed".into();
        let failed = event("host h1 failed to start: boom");
        let mut printed = Printed::default();
        assert_eq!(
            printed.new_lines(&[placed.clone(), failed.clone()]),
            [
                "2025-01-31T09:05:00Z Normal  Placed: placed 1 replica on host h0",
                "2025-01-31T09:05:00Z Warning FailedStart: host h1 failed to start: boom",
            ]
        );
        // Nothing new: nothing printed.
        assert!(
            printed
                .new_lines(&[placed.clone(), failed.clone()])
                .is_empty()
        );
        // The failure again: printed again, with its count.
        let mut again = failed;
        again.count = 2;
        again.last_timestamp = "2025-01-31T09:05:10Z".into();
        assert_eq!(
            printed.new_lines(&[placed, again]),
            [
                "2025-01-31T09:05:10Z Warning FailedStart: host h1 failed to start: boom (x2 since 2025-01-31T09:05:00Z)"
            ]
        );
    }
}
