//! A guest's spans and log records as the SDK's types, within a budget.
//!
//! Everything here reads guest input: ids are parsed strictly (hex only,
//! at most the id's width; the SDKs for WASI write them without leading
//! zeros, so shorter is fine), times that do not fit are replaced by now,
//! and every string and list is cut to the caps below, what was cut
//! counted in the span's dropped counts. Nothing panics on any input.

use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::otel::logs::LogRecord as WitLogRecord;
use crate::bindings::wasi::otel::tracing as wit;
use crate::bindings::wasi::otel::types::{
    InstrumentationScope as WitScope, KeyValue as WitKeyValue,
};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest name, key, unit or scope field kept, in bytes.
pub(crate) const MAX_NAME: usize = 256;
/// Longest attribute value or status message kept, in bytes.
pub(crate) const MAX_VALUE: usize = 4 * 1024;
/// Longest log body kept, in bytes.
const MAX_BODY: usize = 16 * 1024;
/// What one span or log record may hold, in bytes (about).
const ITEM_BYTES: usize = 64 * 1024;
/// Attributes one span or log record may hold, its events' and links'
/// included.
const ITEM_ATTRIBUTES: usize = 256;
/// Events and links one span may hold.
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;
/// Trace-state entries kept (the W3C limit).
const MAX_TRACE_STATE: usize = 32;
/// What one attribute costs besides its text.
const ATTRIBUTE_OVERHEAD: usize = std::mem::size_of::<KeyValue>();

/// Why a guest span was not exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidId {
    /// The span's trace id is not 1 to 32 hex digits, or is zero.
    #[error("its trace id is not 1 to 32 hex digits, or is zero")]
    Trace,
    /// The span's own id is not 1 to 16 hex digits, or is zero.
    #[error("its span id is not 1 to 16 hex digits, or is zero")]
    Span,
    /// The parent id is neither empty nor 1 to 16 hex digits.
    #[error("its parent span id is not hex")]
    Parent,
}

/// A converted span or record, and about how many bytes it holds.
pub(crate) struct Converted<T> {
    pub(crate) item: T,
    pub(crate) bytes: usize,
}

/// `text` as a trace id: 1 to 32 hex digits, not zero.
pub(crate) fn trace_id(text: &str) -> Option<TraceId> {
    parse_hex(text, 32)
        .map(TraceId::from)
        .filter(|id| *id != TraceId::INVALID)
}

/// `text` as a span id: 1 to 16 hex digits, not zero.
pub(crate) fn span_id(text: &str) -> Option<SpanId> {
    parse_hex(text, 16)
        .and_then(|v| u64::try_from(v).ok())
        .map(SpanId::from)
        .filter(|id| *id != SpanId::INVALID)
}

/// Up to `digits` hex digits and nothing else (no sign, no prefix).
fn parse_hex(text: &str, digits: usize) -> Option<u128> {
    if text.is_empty() || text.len() > digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

/// A span context as the interface carries it: ids in full-width lower-case
/// hex (the invalid context as all zeros).
pub(crate) fn wit_span_context(context: &SpanContext) -> wit::SpanContext {
    let header = context.trace_state().header();
    wit::SpanContext {
        trace_id: format!("{}", context.trace_id()),
        span_id: format!("{}", context.span_id()),
        trace_flags: if context.is_sampled() {
            wit::TraceFlags::SAMPLED
        } else {
            wit::TraceFlags::empty()
        },
        // The host's span is outside the guest.
        is_remote: context.is_valid(),
        trace_state: header
            .split(',')
            .filter_map(|entry| entry.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A guest time, or now when it is not one (nanoseconds past a second, or
/// past what the system clock holds).
fn time(datetime: Datetime) -> SystemTime {
    if datetime.nanoseconds >= 1_000_000_000 {
        return SystemTime::now();
    }
    UNIX_EPOCH
        .checked_add(Duration::new(datetime.seconds, datetime.nanoseconds))
        .unwrap_or_else(SystemTime::now)
}

/// `text` cut to at most `max` bytes, on a character boundary. A cut
/// string is copied: `String::truncate` would keep the guest-sized
/// allocation behind the short text, and the queue's budget counts bytes
/// kept, so what it counts must be all that is held.
pub(crate) fn truncate(text: String, max: usize) -> String {
    if text.len() > max {
        let end = text.floor_char_boundary(max);
        return text[..end].to_owned();
    }
    if text.capacity() > text.len() {
        // Lifted strings are exact; this is for callers' own.
        return text.into_boxed_str().into_string();
    }
    text
}

/// What one item may still take: bytes and attributes. Strings are cut to
/// fit, attributes that do not fit are dropped and counted.
pub(crate) struct Budget {
    bytes: usize,
    attributes: usize,
    used: usize,
}

impl Budget {
    pub(crate) fn new(bytes: usize, attributes: usize) -> Self {
        Self {
            bytes,
            attributes,
            used: 0,
        }
    }

    /// Bytes taken so far.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Takes `bytes` (saturating at nothing left).
    pub(crate) fn charge(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.used += bytes;
    }

    /// `text`, cut to `max` and to what is left, charged.
    pub(crate) fn text(&mut self, text: String, max: usize) -> String {
        let text = truncate(text, max.min(self.bytes));
        self.charge(text.len());
        text
    }

    /// Whether no further attribute can fit.
    fn exhausted(&self) -> bool {
        self.attributes == 0 || self.bytes < ATTRIBUTE_OVERHEAD
    }

    /// Whether one more attribute of `bytes` fits; takes it if so.
    fn admit(&mut self, bytes: usize) -> bool {
        let cost = bytes + ATTRIBUTE_OVERHEAD;
        if self.attributes == 0 || cost > self.bytes {
            return false;
        }
        self.attributes -= 1;
        self.charge(cost);
        true
    }

    /// Cuts one guest attribute to the caps in place; whether it fits.
    pub(crate) fn keep(&mut self, pair: &mut WitKeyValue) -> bool {
        pair.key = truncate(std::mem::take(&mut pair.key), MAX_NAME);
        pair.value = truncate(std::mem::take(&mut pair.value), MAX_VALUE);
        self.admit(pair.key.len() + pair.value.len())
    }

    /// A guest's attributes as typed ones, with how many were dropped.
    pub(crate) fn attributes(&mut self, list: Vec<WitKeyValue>) -> (Vec<KeyValue>, u32) {
        let mut kept = Vec::with_capacity(list.len().min(self.attributes));
        let mut dropped = 0u32;
        for pair in list {
            if self.exhausted() {
                // Nothing more fits: count the rest without parsing it.
                dropped = dropped.saturating_add(1);
                continue;
            }
            let key = truncate(pair.key, MAX_NAME);
            let value = truncate(pair.value, MAX_VALUE);
            let value = value_of(value);
            if self.admit(key.len() + value_size(&value)) {
                kept.push(KeyValue::new(key, value));
            } else {
                dropped = dropped.saturating_add(1);
            }
        }
        (kept, dropped)
    }

    /// A guest's attributes as log attributes, with how many were dropped.
    fn log_attributes(&mut self, list: Vec<WitKeyValue>) -> (Vec<(Key, AnyValue)>, u32) {
        let mut kept = Vec::with_capacity(list.len().min(self.attributes));
        let mut dropped = 0u32;
        for pair in list {
            if self.exhausted() {
                dropped = dropped.saturating_add(1);
                continue;
            }
            let key = truncate(pair.key, MAX_NAME);
            let (value, size) = any_value_of(truncate(pair.value, MAX_VALUE));
            if self.admit(key.len() + size) {
                kept.push((Key::new(key), value));
            } else {
                dropped = dropped.saturating_add(1);
            }
        }
        (kept, dropped)
    }

    /// A guest's instrumentation scope.
    pub(crate) fn scope(&mut self, scope: WitScope) -> InstrumentationScope {
        let name = self.text(scope.name, MAX_NAME);
        let (attributes, _) = self.attributes(scope.attributes);
        let mut builder = InstrumentationScope::builder(name).with_attributes(attributes);
        if let Some(version) = scope.version {
            builder = builder.with_version(self.text(version, MAX_NAME));
        }
        if let Some(url) = scope.schema_url {
            builder = builder.with_schema_url(self.text(url, MAX_NAME));
        }
        builder.build()
    }
}

/// A JSON-encoded attribute value as a typed one: a string, number,
/// boolean or an array of one of those; anything else is the text itself.
pub(crate) fn value_of(text: String) -> Value {
    use serde_json::Value as Json;
    let Ok(json) = serde_json::from_str::<Json>(&text) else {
        return Value::String(text.into());
    };
    match json {
        Json::String(s) => Value::String(s.into()),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None => n.as_f64().map_or(Value::String(text.into()), Value::F64),
        },
        Json::Array(items) => array_of(items).unwrap_or_else(|| Value::String(text.into())),
        Json::Null | Json::Object(_) => Value::String(text.into()),
    }
}

/// A homogeneous JSON array as a typed one.
fn array_of(items: Vec<serde_json::Value>) -> Option<Value> {
    use serde_json::Value as Json;
    let array = match items.first() {
        None => Array::String(Vec::new()),
        Some(Json::Bool(_)) => Array::Bool(
            items
                .iter()
                .map(Json::as_bool)
                .collect::<Option<Vec<_>>>()?,
        ),
        Some(Json::Number(_)) if items.iter().all(|i| i.as_i64().is_some()) => {
            Array::I64(items.iter().filter_map(Json::as_i64).collect())
        }
        Some(Json::Number(_)) => {
            Array::F64(items.iter().map(Json::as_f64).collect::<Option<Vec<_>>>()?)
        }
        Some(Json::String(_)) => Array::String(
            items
                .into_iter()
                .map(|i| match i {
                    Json::String(s) => Some(StringValue::from(s)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        Some(_) => return None,
    };
    Some(Value::Array(array))
}

/// About how many bytes a value holds.
fn value_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::String(items)) => items
            .iter()
            .map(|s| s.as_str().len() + std::mem::size_of::<StringValue>())
            .sum(),
        Value::Array(Array::Bool(items)) => items.len(),
        Value::Array(Array::I64(items)) => items.len() * 8,
        Value::Array(Array::F64(items)) => items.len() * 8,
        _ => 8,
    }
}

/// A JSON-encoded log value (body or attribute) as a typed one, any shape,
/// with about how many bytes it holds; text that is not JSON, or whose
/// typed form would hold more than twice the text and over 4 KiB (`[0,0,…]`
/// grows about sixteenfold), stays text.
fn any_value_of(text: String) -> (AnyValue, usize) {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        let mut size = 0;
        let value = any_value(json, &mut size);
        if size <= text.len().saturating_mul(2).max(4096) {
            return (value, size);
        }
    }
    let size = text.len();
    (AnyValue::String(text.into()), size)
}

/// One JSON value as an `AnyValue` (serde_json bounds the nesting).
fn any_value(json: serde_json::Value, size: &mut usize) -> AnyValue {
    use serde_json::Value as Json;
    *size += std::mem::size_of::<AnyValue>();
    match json {
        Json::Null => AnyValue::String("null".into()),
        Json::Bool(b) => AnyValue::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => {
            *size += s.len();
            AnyValue::String(s.into())
        }
        Json::Array(items) => AnyValue::ListAny(Box::new(
            items.into_iter().map(|i| any_value(i, size)).collect(),
        )),
        Json::Object(map) => AnyValue::Map(Box::new(
            map.into_iter()
                .map(|(k, v)| {
                    *size += k.len();
                    (Key::new(k), any_value(v, size))
                })
                .collect(),
        )),
    }
}

fn span_kind(kind: wit::SpanKind) -> SpanKind {
    match kind {
        wit::SpanKind::Client => SpanKind::Client,
        wit::SpanKind::Server => SpanKind::Server,
        wit::SpanKind::Producer => SpanKind::Producer,
        wit::SpanKind::Consumer => SpanKind::Consumer,
        wit::SpanKind::Internal => SpanKind::Internal,
    }
}

fn flags(flags: wit::TraceFlags) -> TraceFlags {
    if flags.contains(wit::TraceFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

/// A guest's trace state, or an empty one when it is not valid.
fn trace_state(budget: &mut Budget, entries: Vec<(String, String)>) -> TraceState {
    let entries: Vec<(String, String)> = entries
        .into_iter()
        .take(MAX_TRACE_STATE)
        .map(|(k, v)| (budget.text(k, MAX_NAME), budget.text(v, MAX_NAME)))
        .collect();
    TraceState::from_key_value(entries).unwrap_or_default()
}

/// A link's span context, if its ids are valid.
fn link_context(budget: &mut Budget, context: wit::SpanContext) -> Option<SpanContext> {
    let trace = trace_id(&context.trace_id)?;
    let span = span_id(&context.span_id)?;
    Some(SpanContext::new(
        trace,
        span,
        flags(context.trace_flags),
        context.is_remote,
        trace_state(budget, context.trace_state),
    ))
}

/// A finished guest span as the SDK's `SpanData`; `None` when the guest
/// did not sample it. `outer` is the host span the guest runs under: a
/// span whose parent it is has a remote parent.
pub(crate) fn span(
    span: wit::SpanData,
    outer: Option<&SpanContext>,
) -> Result<Option<Converted<SpanData>>, InvalidId> {
    let trace = trace_id(&span.span_context.trace_id).ok_or(InvalidId::Trace)?;
    let id = span_id(&span.span_context.span_id).ok_or(InvalidId::Span)?;
    let parent = match span.parent_span_id.as_str() {
        "" => SpanId::INVALID,
        text if text.bytes().all(|b| b == b'0') => SpanId::INVALID,
        text => span_id(text).ok_or(InvalidId::Parent)?,
    };
    if !span
        .span_context
        .trace_flags
        .contains(wit::TraceFlags::SAMPLED)
    {
        return Ok(None);
    }
    let mut budget = Budget::new(ITEM_BYTES, ITEM_ATTRIBUTES);
    let state = trace_state(&mut budget, span.span_context.trace_state);
    let context = SpanContext::new(trace, id, TraceFlags::SAMPLED, false, state);
    let name = budget.text(span.name, MAX_NAME);
    let (attributes, dropped) = budget.attributes(span.attributes);

    let mut events = SpanEvents::default();
    let event_count = span.events.len();
    for event in span.events.into_iter().take(MAX_EVENTS) {
        let name = budget.text(event.name, MAX_NAME);
        let (attributes, dropped) = budget.attributes(event.attributes);
        events
            .events
            .push(Event::new(name, time(event.time), attributes, dropped));
    }
    events.dropped_count = span
        .dropped_events
        .saturating_add(u32::try_from(event_count - events.events.len()).unwrap_or(u32::MAX));

    let mut links = SpanLinks::default();
    let mut links_dropped = 0u32;
    for link in span.links {
        if links.links.len() == MAX_LINKS {
            links_dropped = links_dropped.saturating_add(1);
            continue;
        }
        let Some(context) = link_context(&mut budget, link.span_context) else {
            links_dropped = links_dropped.saturating_add(1);
            continue;
        };
        let (attributes, dropped) = budget.attributes(link.attributes);
        links.links.push(Link::new(context, attributes, dropped));
    }
    links.dropped_count = span.dropped_links.saturating_add(links_dropped);

    let status = match span.status {
        wit::Status::Unset => Status::Unset,
        wit::Status::Ok => Status::Ok,
        wit::Status::Error(message) => Status::error(budget.text(message, MAX_VALUE)),
    };
    let instrumentation_scope = budget.scope(span.instrumentation_scope);
    let parent_span_is_remote =
        parent != SpanId::INVALID && outer.is_some_and(|o| o.span_id() == parent);
    let data = SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote,
        span_kind: span_kind(span.span_kind),
        name: name.into(),
        start_time: time(span.start_time),
        end_time: time(span.end_time),
        attributes,
        dropped_attributes_count: span.dropped_attributes.saturating_add(dropped),
        events,
        links,
        status,
        instrumentation_scope,
    };
    let bytes = budget.used() + std::mem::size_of::<SpanData>();
    Ok(Some(Converted { item: data, bytes }))
}

/// Severity numbers 1 to 24, in order.
const SEVERITIES: [Severity; 24] = [
    Severity::Trace,
    Severity::Trace2,
    Severity::Trace3,
    Severity::Trace4,
    Severity::Debug,
    Severity::Debug2,
    Severity::Debug3,
    Severity::Debug4,
    Severity::Info,
    Severity::Info2,
    Severity::Info3,
    Severity::Info4,
    Severity::Warn,
    Severity::Warn2,
    Severity::Warn3,
    Severity::Warn4,
    Severity::Error,
    Severity::Error2,
    Severity::Error3,
    Severity::Error4,
    Severity::Fatal,
    Severity::Fatal2,
    Severity::Fatal3,
    Severity::Fatal4,
];

/// The record's severity: its number, else its text if that is one of the
/// data model's short names.
fn severity(number: Option<u8>, text: Option<&str>) -> Option<Severity> {
    if let Some(n) = number {
        return usize::from(n)
            .checked_sub(1)
            .and_then(|i| SEVERITIES.get(i))
            .copied();
    }
    let text = text?.trim();
    SEVERITIES
        .iter()
        .find(|s| s.name().eq_ignore_ascii_case(text))
        .copied()
}

/// A guest log record as the SDK's, with the scope it came from. Records
/// without trace ids get `outer`'s, so they join the request's trace; ids
/// that are not hex leave the record without trace context.
pub(crate) fn log(
    logger: &SdkLogger,
    record: WitLogRecord,
    outer: Option<&SpanContext>,
) -> Converted<(SdkLogRecord, InstrumentationScope)> {
    let mut budget = Budget::new(ITEM_BYTES, ITEM_ATTRIBUTES);
    let mut out = logger.create_log_record();
    if let Some(at) = record.timestamp {
        out.set_timestamp(time(at));
    }
    out.set_observed_timestamp(record.observed_timestamp.map_or_else(SystemTime::now, time));
    if let Some(severity) = severity(record.severity_number, record.severity_text.as_deref()) {
        out.set_severity_number(severity);
        out.set_severity_text(severity.name());
    }
    if let Some(body) = record.body {
        let (body, size) = any_value_of(truncate(body, MAX_BODY));
        budget.charge(size);
        out.set_body(body);
    }
    if let Some(name) = record.event_name {
        let name = budget.text(name, MAX_NAME);
        out.add_attribute("event.name", name);
    }
    if let Some(attributes) = record.attributes {
        let (attributes, _) = budget.log_attributes(attributes);
        for (key, value) in attributes {
            out.add_attribute(key, value);
        }
    }
    // SDKs send all-zero ids outside a span: as good as none.
    let unset = |id: &Option<String>| id.as_deref().is_none_or(|id| id.bytes().all(|b| b == b'0'));
    let (trace_ids, span_ids) = if unset(&record.trace_id) && unset(&record.span_id) {
        (None, None)
    } else {
        (record.trace_id, record.span_id)
    };
    match (trace_ids, span_ids) {
        (None, None) => {
            if let Some(outer) = outer {
                out.set_trace_context(outer.trace_id(), outer.span_id(), Some(outer.trace_flags()));
            }
        }
        (trace, span) => {
            let trace = trace.as_deref().map(trace_id);
            let span = span.as_deref().map(span_id);
            match (trace, span) {
                (Some(Some(trace)), span) => out.set_trace_context(
                    trace,
                    span.flatten().unwrap_or(SpanId::INVALID),
                    record.trace_flags.map(flags),
                ),
                _ => tracing::debug!(
                    target: "nimbus::otel",
                    "a guest log record's trace id is not hex; sent without trace context"
                ),
            }
        }
    }
    let scope = match record.instrumentation_scope {
        Some(scope) => budget.scope(scope),
        None => InstrumentationScope::builder("wasi:otel").build(),
    };
    let bytes = budget.used() + std::mem::size_of::<SdkLogRecord>();
    Converted {
        item: (out, scope),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_their_width_and_never_zero() {
        assert_eq!(
            trace_id("4bf92f3577b34da6a3ce929d0e0e4736"),
            Some(TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736u128))
        );
        // The WASI SDKs write ids without leading zeros.
        assert_eq!(trace_id("abc"), Some(TraceId::from(0xabcu128)));
        for bad in [
            "",
            "0",
            "00000000000000000000000000000000",
            "+abc",
            "0x12",
            "zz",
            "4bf92f3577b34da6a3ce929d0e0e47361",
            "é",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
        assert_eq!(
            span_id("00f067aa0ba902b7"),
            Some(SpanId::from(0x00f067aa0ba902b7))
        );
        assert_eq!(span_id("00f067aa0ba902b7a"), None);
        assert_eq!(span_id("-1"), None);
    }

    #[test]
    fn times_that_do_not_fit_are_now() {
        let at = |seconds, nanoseconds| {
            time(Datetime {
                seconds,
                nanoseconds,
            })
        };
        assert_eq!(at(1, 5), UNIX_EPOCH + Duration::new(1, 5));
        let before = SystemTime::now();
        assert!(at(u64::MAX, 999_999_999) >= before);
        assert!(at(0, u32::MAX) >= before);
    }

    #[test]
    fn json_values_become_typed_attributes() {
        assert_eq!(value_of("\"hi\"".into()), Value::String("hi".into()));
        assert_eq!(value_of("7".into()), Value::I64(7));
        assert_eq!(value_of("1.5".into()), Value::F64(1.5));
        assert_eq!(value_of("true".into()), Value::Bool(true));
        assert_eq!(
            value_of("[1,2]".into()),
            Value::Array(Array::I64(vec![1, 2]))
        );
        assert_eq!(
            value_of("[1,2.5]".into()),
            Value::Array(Array::F64(vec![1.0, 2.5]))
        );
        // Mixed arrays, objects, null and plain text stay text.
        for text in ["[1,\"a\"]", "{\"a\":1}", "null", "plain text", "\"cut"] {
            assert_eq!(
                value_of(text.into()),
                Value::String(text.to_string().into())
            );
        }
        let (map, _) = any_value_of("{\"a\":[1,\"b\"]}".into());
        assert!(matches!(map, AnyValue::Map(_)), "{map:?}");
        // A value whose typed form would balloon stays text.
        let zeros = format!("[{}0]", "0,".repeat(8000));
        let (value, size) = any_value_of(zeros.clone());
        assert_eq!(
            (value, size),
            (AnyValue::String(zeros.clone().into()), zeros.len())
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("héllo".into(), 3), "hé");
        assert_eq!(truncate("hi".into(), 10), "hi");
    }

    #[test]
    fn attributes_past_the_budget_are_dropped_and_counted() {
        let list: Vec<WitKeyValue> = (0..1000)
            .map(|i| WitKeyValue {
                key: format!("k{i}"),
                value: "\"x\"".repeat(2000),
            })
            .collect();
        let mut budget = Budget::new(ITEM_BYTES, ITEM_ATTRIBUTES);
        let (kept, dropped) = budget.attributes(list);
        assert_eq!(kept.len() + dropped as usize, 1000);
        assert!(kept.len() < ITEM_ATTRIBUTES);
        assert!(budget.used() <= ITEM_BYTES);
        for kv in &kept {
            assert!(value_size(&kv.value) <= MAX_VALUE);
        }
    }

    fn wit_span(trace: &str, id: &str, parent: &str) -> wit::SpanData {
        let now = Datetime {
            seconds: 1_700_000_000,
            nanoseconds: 0,
        };
        wit::SpanData {
            span_context: wit::SpanContext {
                trace_id: trace.into(),
                span_id: id.into(),
                trace_flags: wit::TraceFlags::SAMPLED,
                is_remote: false,
                trace_state: vec![
                    ("vendor".into(), "v1".into()),
                    ("bad key".into(), "x".into()),
                ],
            },
            parent_span_id: parent.into(),
            span_kind: wit::SpanKind::Internal,
            name: "n".repeat(10_000),
            start_time: now,
            end_time: now,
            attributes: vec![WitKeyValue {
                key: "a".into(),
                value: "1".into(),
            }],
            events: (0..500)
                .map(|i| wit::Event {
                    name: format!("e{i}"),
                    time: now,
                    attributes: Vec::new(),
                })
                .collect(),
            links: vec![wit::Link {
                span_context: wit::SpanContext {
                    trace_id: "nothex".into(),
                    span_id: "1".into(),
                    trace_flags: wit::TraceFlags::empty(),
                    is_remote: false,
                    trace_state: Vec::new(),
                },
                attributes: Vec::new(),
            }],
            status: wit::Status::Error("boom".into()),
            instrumentation_scope: WitScope {
                name: "guest".into(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 2,
            dropped_events: 0,
            dropped_links: 0,
        }
    }

    #[test]
    fn a_span_is_bounded_and_keeps_its_ids() {
        let outer = SpanContext::new(
            TraceId::from(0xabu128),
            SpanId::from(0xcd),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let converted = span(wit_span("ab", "ef", "cd"), Some(&outer))
            .unwrap()
            .unwrap();
        let data = converted.item;
        assert_eq!(data.span_context.trace_id(), TraceId::from(0xabu128));
        assert_eq!(data.span_context.span_id(), SpanId::from(0xef));
        assert_eq!(data.parent_span_id, SpanId::from(0xcd));
        assert!(data.parent_span_is_remote);
        assert_eq!(data.name.len(), MAX_NAME);
        assert_eq!(data.attributes, [KeyValue::new("a", 1i64)]);
        assert_eq!(data.dropped_attributes_count, 2);
        assert_eq!(data.events.events.len(), MAX_EVENTS);
        assert_eq!(data.events.dropped_count, 500 - MAX_EVENTS as u32);
        assert!(data.links.links.is_empty());
        assert_eq!(data.links.dropped_count, 1);
        assert_eq!(data.status, Status::error("boom"));
        assert!(converted.bytes <= ITEM_BYTES + std::mem::size_of::<SpanData>());
        // A root span: empty or zero parent.
        for root in ["", "0000000000000000"] {
            let data = span(wit_span("ab", "ef", root), None)
                .unwrap()
                .unwrap()
                .item;
            assert_eq!(data.parent_span_id, SpanId::INVALID);
        }
    }

    #[test]
    fn spans_with_bad_ids_are_rejected_and_unsampled_ones_skipped() {
        assert_eq!(
            span(wit_span("", "ef", ""), None).err(),
            Some(InvalidId::Trace)
        );
        assert_eq!(
            span(wit_span("ab", "xyz", ""), None).err(),
            Some(InvalidId::Span)
        );
        assert_eq!(
            span(wit_span("ab", "ef", "parent!"), None).err(),
            Some(InvalidId::Parent)
        );
        let mut unsampled = wit_span("ab", "ef", "");
        unsampled.span_context.trace_flags = wit::TraceFlags::empty();
        assert!(span(unsampled, None).unwrap().is_none());
    }

    #[test]
    fn the_outer_context_goes_out_in_full_width_hex() {
        let invalid = wit_span_context(&SpanContext::empty_context());
        assert_eq!(invalid.trace_id, "0".repeat(32));
        assert_eq!(invalid.span_id, "0".repeat(16));
        assert!(!invalid.is_remote);
        assert_eq!(invalid.trace_flags, wit::TraceFlags::empty());
        let outer = wit_span_context(&SpanContext::new(
            TraceId::from(0xabu128),
            SpanId::from(0xcd),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("k", "v")]).unwrap(),
        ));
        assert_eq!(outer.trace_id, format!("{:032x}", 0xab));
        assert_eq!(outer.span_id, "00000000000000cd");
        assert_eq!(outer.trace_flags, wit::TraceFlags::SAMPLED);
        assert_eq!(outer.trace_state, [("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn severities_come_from_the_number_or_a_known_name() {
        assert_eq!(severity(Some(9), None), Some(Severity::Info));
        assert_eq!(severity(Some(24), Some("x")), Some(Severity::Fatal4));
        assert_eq!(severity(Some(0), None), None);
        assert_eq!(severity(Some(25), None), None);
        assert_eq!(severity(None, Some("warn")), Some(Severity::Warn));
        assert_eq!(severity(None, Some("loud")), None);
    }
}
