//! Events: what happened to a resource, as `kubectl describe` shows them.
//!
//! The controller records an [`Event`] when it places replicas on a host,
//! resizes, updates or removes them, when a host fails or rejects a start,
//! when no live host matches a resource's `hostSelector`, and when a host
//! holding replicas is lost. Each resource keeps its last [`MAX_EVENTS`]
//! in its stored status (`status.<namespace>/<name>`), so `nimbus describe`,
//! `nimbus logs` and `nimbus get -o json` read them with the status, and a
//! newly elected controller carries them on.
//!
//! An event that happens again (same type, reason, host and message) is not
//! repeated: its `count` grows and its `lastTimestamp` moves, and it becomes
//! the newest, as Kubernetes aggregates its events.
//!
//! ```
//! use nimbus_cluster::events::{self, Event, EventType};
//!
//! let mut list = Vec::new();
//! let failed = Event::new(EventType::Warning, "FailedStart", "host h1 failed to start: boom")
//!     .on_host("h1");
//! events::record(&mut list, failed.clone());
//! events::record(&mut list, failed);
//! assert_eq!(list.len(), 1);
//! assert_eq!(list[0].count, 2);
//! ```

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// How many events a resource keeps: the oldest goes first.
pub const MAX_EVENTS: usize = 20;

/// Longest message kept, in bytes (a host's error can be long; the status
/// is one key-value entry).
const MAX_MESSAGE: usize = 512;

/// Whether an event is routine or needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Placement did what was asked.
    Normal,
    /// Something failed or cannot be done.
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// One thing that happened to a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// A short CamelCase word: `Placed`, `FailedStart`, `FailedScheduling`, …
    pub reason: String,
    /// What happened, in one line.
    pub message: String,
    /// The host concerned, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How many times it happened.
    pub count: u32,
    /// When it first happened (RFC 3339, UTC, to the second).
    pub first_timestamp: String,
    /// When it last happened.
    pub last_timestamp: String,
}

impl Event {
    /// An event that happens now. The message is made one line and cut to
    /// a bounded length.
    pub fn new(event_type: EventType, reason: &str, message: &str) -> Self {
        let now = timestamp(SystemTime::now());
        Self {
            event_type,
            reason: reason.to_string(),
            message: nimbus_model::text::one_line(message, MAX_MESSAGE),
            host: None,
            count: 1,
            first_timestamp: now.clone(),
            last_timestamp: now,
        }
    }

    /// The same event, concerning `host`.
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    /// Whether `other` is this event happening again.
    fn same_as(&self, other: &Event) -> bool {
        self.event_type == other.event_type
            && self.reason == other.reason
            && self.host == other.host
            && self.message == other.message
    }
}

/// Adds `event` to `list` (oldest first): an event already there happens
/// again instead (count added, last timestamp moved, moved to the end);
/// past [`MAX_EVENTS`] the oldest are dropped.
pub fn record(list: &mut Vec<Event>, event: Event) {
    let event = match list.iter().position(|e| e.same_as(&event)) {
        Some(i) => {
            let mut again = list.remove(i);
            again.count = again.count.saturating_add(event.count);
            again.last_timestamp = event.last_timestamp;
            again
        }
        None => event,
    };
    list.push(event);
    if list.len() > MAX_EVENTS {
        let excess = list.len() - MAX_EVENTS;
        list.drain(..excess);
    }
}

/// `at` as RFC 3339 in UTC, to the second (`2025-01-31T09:05:00Z`).
pub fn timestamp(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// How long ago `timestamp` (as [`timestamp`] writes it) was, seen at
/// `now`; `None` if it is not in that form. A time in the future is zero.
pub fn age(timestamp: &str, now: SystemTime) -> Option<Duration> {
    let at = parse_timestamp(timestamp)?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(now.saturating_sub(at)))
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn parse_timestamp(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let clock = clock.split_once('.').map_or(clock, |(whole, _)| whole);
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let mut date = date.split('-');
    let (year, month, day) = (date.next()?, date.next()?, date.next()?);
    let mut clock = clock.split(':');
    let (hour, minute, second) = (clock.next()?, clock.next()?, clock.next()?);
    if date.next().is_some() || clock.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(month)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(year)?).ok()?,
        month,
        u8::try_from(number(day)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(hour)?).ok()?,
        u8::try_from(number(minute)?).ok()?,
        u8::try_from(number(second)?).ok()?,
    )
    .ok()?;
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(message: &str) -> Event {
        Event::new(EventType::Warning, "FailedStart", message)
    }

    #[test]
    fn an_event_that_happens_again_is_counted_and_becomes_the_newest() {
        let mut list = Vec::new();
        record(&mut list, warning("a"));
        record(&mut list, warning("b"));
        let mut again = warning("a");
        again.last_timestamp = "2099-01-01T00:00:00Z".into();
        record(&mut list, again);
        let messages: Vec<_> = list.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["b", "a"]);
        assert_eq!(list[1].count, 2);
        assert_eq!(list[1].last_timestamp, "2099-01-01T00:00:00Z");
        assert_ne!(list[1].first_timestamp, list[1].last_timestamp);
        // Another host is another event.
        record(&mut list, warning("a").on_host("h1"));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn the_list_keeps_the_newest() {
        let mut list = Vec::new();
        for i in 0..MAX_EVENTS + 5 {
            record(&mut list, warning(&i.to_string()));
        }
        assert_eq!(list.len(), MAX_EVENTS);
        assert_eq!(list[0].message, "5");
        assert_eq!(list[MAX_EVENTS - 1].message, (MAX_EVENTS + 4).to_string());
    }

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(warning("no\nhost\r\n").message, "no host");
        let long = warning(&"é".repeat(MAX_MESSAGE));
        assert!(long.message.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(long.message.ends_with('…'));
    }

    #[test]
    fn timestamps_read_back_as_ages() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_738_314_300);
        let text = timestamp(at);
        assert_eq!(text, "2025-01-31T09:05:00Z");
        let later = at + Duration::from_secs(90);
        assert_eq!(age(&text, later), Some(Duration::from_secs(90)));
        assert_eq!(
            age("2025-01-31T09:05:00.250Z", later),
            Some(Duration::from_secs(90))
        );
        // The future is now; other forms are not read.
        assert_eq!(
            age(&text, at - Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "yesterday",
            "2025-01-31 09:05:00Z",
            "2025-13-01T00:00:00Z",
        ] {
            assert_eq!(age(bad, later), None, "{bad}");
        }
    }
}
