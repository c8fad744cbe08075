//! A workload's `wasmcloud:nats` settings, in wasmCloud's keys: every
//! `wasmcloud:nats` host interface entry of the workload (an imports entry
//! and a handler entry may be separate) folded into one map, kebab-case or
//! snake_case, credentials only from `secretFrom`.

use crate::grant::{Grant, check_subject};
use nimbus_model::Secret;
use nimbus_plugin::{BindContext, PluginError};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const ID: &str = "nats";

/// Default wait of a `core.request` whose guest passes 0.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on core messages being handled at once per component.
const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default bound on deliveries of one JetStream message: a handler that
/// traps on it every time stops being offered it.
const DEFAULT_MAX_DELIVER: i64 = 32;
/// Default ack wait of the consumers the host makes for subscriptions.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Keys that are wasmCloud's but that this host does not implement: named
/// in the error, so nobody thinks they took effect.
const NOT_SUPPORTED: [&str; 12] = [
    "creds",
    "creds-file",
    "jwt",
    "nkey-seed",
    "nkey",
    "tls-ca",
    "tls-cert",
    "tls-key",
    "tls-first",
    "subscription-capacity-bytes",
    "subscription-capacity",
    "inbox-prefix",
];

const KNOWN: [&str; 19] = [
    "servers",
    "name",
    "subject-allow",
    "stream-allow",
    "bucket-allow",
    "ack-mode",
    "ack-wait-ms",
    "request-timeout-ms",
    "max-in-flight",
    "max-deliver",
    "max-ack-pending",
    "core-subscriptions",
    "jetstream-subscriptions",
    "kv-watches",
    "component",
    "jetstream-domain",
    "token",
    "username",
    "password",
];

/// Who settles a JetStream delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMode {
    /// The host: ack on `ok`, nak on `error`, trap or timeout.
    Auto,
    /// The handler, through its handle.
    Manual,
}

/// Where JetStream deliveries start for a new consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartAt {
    All,
    Last,
    LastPerSubject,
    New,
}

/// `subject[:queue]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CoreSubscription {
    pub(crate) subject: String,
    pub(crate) queue: Option<String>,
}

/// `STREAM:filter[:policy[:queue]]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JetStreamSubscription {
    pub(crate) stream: String,
    pub(crate) filter: String,
    pub(crate) start: StartAt,
    pub(crate) queue: Option<String>,
}

/// `bucket[:filter]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KvWatch {
    pub(crate) bucket: String,
    pub(crate) filter: String,
}

/// How the host signs in to NATS.
#[derive(Clone, Default)]
pub(crate) enum Credentials {
    #[default]
    None,
    Token(Secret),
    User {
        name: String,
        password: Secret,
    },
}

impl Credentials {
    /// A name for the connection cache that holds no secret: a digest.
    pub(crate) fn fingerprint(&self) -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        match self {
            Self::None => return "anonymous".into(),
            Self::Token(token) => ("token", token.expose()).hash(&mut hasher),
            Self::User { name, password } => ("user", name, password.expose()).hash(&mut hasher),
        }
        format!("{:016x}", hasher.finish())
    }
}

/// One component's settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) servers: String,
    pub(crate) name: Option<String>,
    pub(crate) credentials: Credentials,
    pub(crate) grant: Grant,
    pub(crate) ack_mode: AckMode,
    pub(crate) ack_wait: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_deliver: i64,
    pub(crate) max_ack_pending: Option<i64>,
    pub(crate) domain: Option<String>,
    pub(crate) core_subscriptions: Vec<CoreSubscription>,
    pub(crate) jetstream_subscriptions: Vec<JetStreamSubscription>,
    pub(crate) kv_watches: Vec<KvWatch>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("servers", &self.servers)
            .field("grant", &self.grant)
            .field("ack_mode", &self.ack_mode)
            .field("credentials", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn error(message: impl Into<String>) -> PluginError {
    PluginError::new(ID, message)
}

fn canonical(key: &str) -> String {
    key.trim().replace('_', "-")
}

/// A workload's plain settings and its credentials, by key.
type Folded = (BTreeMap<String, String>, BTreeMap<String, Secret>);

/// Every `wasmcloud:nats` entry's plain settings, folded; two entries
/// giving one key different values is an error naming it.
fn fold(ctx: &BindContext<'_>) -> Result<Folded, PluginError> {
    let mut plain: BTreeMap<String, String> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Secret> = BTreeMap::new();
    for entry in ctx
        .spec
        .host_interfaces
        .iter()
        .filter(|entry| entry.is("wasmcloud", "nats"))
    {
        let values = ctx
            .sources
            .plain_layer(&entry.config, &entry.config_from)
            .map_err(|e| PluginError::new("host interface", e.to_string()))?;
        for (key, value) in values {
            let key = canonical(&key);
            match plain.get(&key) {
                Some(earlier) if earlier.trim() != value.trim() => {
                    return Err(error(format!(
                        "two wasmcloud:nats entries give `{key}` different values; give it once"
                    )));
                }
                _ => {
                    plain.insert(key, value);
                }
            }
        }
        let values = ctx
            .sources
            .secret_layer(&entry.secret_from)
            .map_err(|e| PluginError::new("host interface", e.to_string()))?;
        for (key, value) in values {
            secrets.insert(canonical(&key), value);
        }
    }
    Ok((plain, secrets))
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn number<N: std::str::FromStr>(
    config: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<N>, PluginError> {
    config
        .get(key)
        .map(|value| {
            value.trim().parse::<N>().map_err(|_| {
                error(format!(
                    "`{key}` `{}` is not a whole number",
                    value.escape_debug()
                ))
            })
        })
        .transpose()
}

fn positive(config: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, PluginError> {
    match number::<u64>(config, key)? {
        Some(0) => Err(error(format!("`{key}` must be above 0"))),
        other => Ok(other),
    }
}

/// `max-in-flight`: core messages handled at once, 1 up to what a tokio
/// semaphore holds (past that it would panic where deliveries start).
fn max_in_flight(config: &BTreeMap<String, String>) -> Result<usize, PluginError> {
    let Some(asked) = positive(config, "max-in-flight")? else {
        return Ok(DEFAULT_MAX_IN_FLIGHT);
    };
    usize::try_from(asked)
        .ok()
        .filter(|n| *n <= tokio::sync::Semaphore::MAX_PERMITS)
        .ok_or_else(|| {
            error(format!(
                "`max-in-flight` must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            ))
        })
}

fn check_queue(entry: &str, queue: &str, durable: bool) -> Result<(), PluginError> {
    if queue.is_empty() || queue.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(error(format!(
            "subscription `{entry}` has an empty or blank queue group"
        )));
    }
    if durable && queue.starts_with("nimbus-") {
        return Err(error(format!(
            "subscription `{entry}`: queue groups starting with `nimbus-` name the host's own consumers"
        )));
    }
    if durable && queue.contains(['.', '*', '>', '/', '\\']) {
        return Err(error(format!(
            "subscription `{entry}`: the queue group names a durable consumer, so it cannot hold `.`, `*`, `>`, `/` or `\\`"
        )));
    }
    Ok(())
}

impl Settings {
    /// The settings of `ctx`'s component. `host_servers` is the host's
    /// NATS, used when the workload names none.
    pub(crate) fn resolve(
        ctx: &BindContext<'_>,
        host_servers: Option<&str>,
    ) -> Result<Self, PluginError> {
        let (config, secrets) = fold(ctx)?;
        for key in config.keys().chain(secrets.keys()) {
            if NOT_SUPPORTED.contains(&key.as_str()) {
                return Err(error(format!("`{key}` is not supported by this host yet")));
            }
            if !KNOWN.contains(&key.as_str()) {
                return Err(error(format!("unknown setting `{key}`")));
            }
        }
        for key in ["token", "password"] {
            if config.contains_key(key) {
                return Err(error(format!(
                    "`{key}` is a credential: give it through secretFrom, not config"
                )));
            }
        }
        let servers = match config
            .get("servers")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(servers) => servers.to_string(),
            None => host_servers.map(str::to_string).ok_or_else(|| {
                error("wasmcloud:nats needs `servers` (or a NATS server for the host)")
            })?,
        };
        for server in servers.split(',') {
            if server.contains('@') {
                return Err(error(
                    "`servers` must not hold credentials; give `username`/`password` or `token` through secretFrom",
                ));
            }
        }
        let username = config
            .get("username")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let credentials = match (username, secrets.get("password"), secrets.get("token")) {
            (Some(_), _, Some(_)) => {
                return Err(error(
                    "give either `username`/`password` or `token`, not both",
                ));
            }
            (Some(name), Some(password), None) => Credentials::User {
                name,
                password: password.clone(),
            },
            (Some(_), None, None) => {
                return Err(error("`username` needs `password` (through secretFrom)"));
            }
            (None, Some(_), _) => return Err(error("`password` needs `username`")),
            (None, None, Some(token)) => Credentials::Token(token.clone()),
            (None, None, None) => Credentials::None,
        };
        let grant = Grant {
            subjects: list(config.get("subject-allow")),
            streams: list(config.get("stream-allow")),
            buckets: list(config.get("bucket-allow")),
        };
        for pattern in &grant.subjects {
            check_subject(pattern).map_err(|e| error(format!("subject-allow: {e}")))?;
        }
        let ack_mode = match config.get("ack-mode").map(|s| s.trim()) {
            None | Some("auto") => AckMode::Auto,
            Some("manual") => AckMode::Manual,
            Some(other) => {
                return Err(error(format!(
                    "`ack-mode` must be `auto` or `manual`, not `{}`",
                    other.escape_debug()
                )));
            }
        };
        let request_timeout = positive(&config, "request-timeout-ms")?
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let ack_wait = positive(&config, "ack-wait-ms")?
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_ACK_WAIT);
        let max_in_flight = max_in_flight(&config)?;
        // 0 is the server's unlimited, as in wasmCloud.
        let max_deliver = match number::<i64>(&config, "max-deliver")? {
            Some(0) => -1,
            Some(n) if n > 0 => n,
            Some(_) => return Err(error("`max-deliver` must not be negative")),
            None => DEFAULT_MAX_DELIVER,
        };
        let max_ack_pending = number::<i64>(&config, "max-ack-pending")?;
        // Subscriptions are the component's that the entry names (or every
        // component's when it names none).
        let targeted = config
            .get("component")
            .is_none_or(|target| target.trim() == ctx.component);
        let (core_subscriptions, jetstream_subscriptions, kv_watches) = if targeted {
            (
                core_subscriptions(config.get("core-subscriptions"), &grant)?,
                jetstream_subscriptions(config.get("jetstream-subscriptions"), &grant)?,
                kv_watches(config.get("kv-watches"), &grant)?,
            )
        } else {
            Default::default()
        };
        Ok(Self {
            servers,
            name: config.get("name").cloned(),
            credentials,
            grant,
            ack_mode,
            ack_wait,
            request_timeout,
            max_in_flight,
            max_deliver,
            max_ack_pending,
            domain: config.get("jetstream-domain").cloned(),
            core_subscriptions,
            jetstream_subscriptions,
            kv_watches,
        })
    }
}

fn granted(grant: &Grant, subject: &str, entry: &str) -> Result<(), PluginError> {
    // A leading wildcard would match the reserved spaces too.
    if subject.starts_with(['*', '>']) {
        return Err(error(format!(
            "subscription `{entry}`: `{subject}` starts with a wildcard, which would take the host's own subjects too; start it with a literal token"
        )));
    }
    check_subject(subject).map_err(|e| error(format!("subscription `{entry}`: {e}")))?;
    grant.subject(subject).map_err(|refusal| {
        error(format!(
            "subscription `{entry}`: `{subject}` is {}",
            match refusal {
                crate::grant::Refusal::Reserved => "in a space the host keeps for itself",
                _ => "not covered by `subject-allow`",
            }
        ))
    })
}

fn core_subscriptions(
    raw: Option<&String>,
    grant: &Grant,
) -> Result<Vec<CoreSubscription>, PluginError> {
    list(raw)
        .into_iter()
        .map(|entry| {
            let (subject, queue) = match entry.split_once(':') {
                Some((subject, queue)) => (subject.to_string(), Some(queue.to_string())),
                None => (entry.clone(), None),
            };
            if let Some(queue) = &queue {
                check_queue(&entry, queue, false)?;
            }
            granted(grant, &subject, &entry)?;
            Ok(CoreSubscription { subject, queue })
        })
        .collect()
}

fn jetstream_subscriptions(
    raw: Option<&String>,
    grant: &Grant,
) -> Result<Vec<JetStreamSubscription>, PluginError> {
    list(raw)
        .into_iter()
        .map(|entry| {
            let parts: Vec<&str> = entry.splitn(4, ':').collect();
            let (stream, filter) = match parts[..] {
                [stream, filter, ..] if !stream.is_empty() && !filter.is_empty() => (stream, filter),
                _ => {
                    return Err(error(format!(
                        "jetstream subscription `{entry}`: expected STREAM:filter[:policy[:queue]]"
                    )));
                }
            };
            let start = match parts.get(2).copied().unwrap_or("new") {
                "all" => StartAt::All,
                "last" => StartAt::Last,
                "last-per-subject" => StartAt::LastPerSubject,
                "new" => StartAt::New,
                other => {
                    return Err(error(format!(
                        "jetstream subscription `{entry}`: unknown deliver policy `{other}` (all, last, last-per-subject or new)"
                    )));
                }
            };
            let queue = parts.get(3).map(|q| q.to_string());
            if let Some(queue) = &queue {
                check_queue(&entry, queue, true)?;
            }
            grant.stream(stream).map_err(|_| {
                error(format!(
                    "jetstream subscription `{entry}`: stream `{stream}` is not covered by `stream-allow`"
                ))
            })?;
            granted(grant, filter, &entry)?;
            Ok(JetStreamSubscription {
                stream: stream.to_string(),
                filter: filter.to_string(),
                start,
                queue,
            })
        })
        .collect()
}

fn kv_watches(raw: Option<&String>, grant: &Grant) -> Result<Vec<KvWatch>, PluginError> {
    list(raw)
        .into_iter()
        .map(|entry| {
            let (bucket, filter) = match entry.split_once(':') {
                Some((bucket, filter)) => (bucket.to_string(), filter.to_string()),
                None => (entry.clone(), ">".to_string()),
            };
            if bucket.is_empty() || filter.is_empty() {
                return Err(error(format!(
                    "kv watch `{entry}` has an empty bucket or filter"
                )));
            }
            check_subject(&filter).map_err(|e| error(format!("kv watch `{entry}`: {e}")))?;
            grant.bucket(&bucket).map_err(|_| {
                error(format!(
                    "kv watch `{entry}`: bucket `{bucket}` is not covered by `bucket-allow`"
                ))
            })?;
            Ok(KvWatch { bucket, filter })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("max-in-flight".to_string(), value.to_string())])
    }

    #[test]
    fn max_in_flight_is_bounded_by_what_a_semaphore_holds() {
        assert_eq!(
            max_in_flight(&BTreeMap::new()).unwrap(),
            DEFAULT_MAX_IN_FLIGHT
        );
        assert_eq!(max_in_flight(&config("8")).unwrap(), 8);
        let most = tokio::sync::Semaphore::MAX_PERMITS;
        assert_eq!(max_in_flight(&config(&most.to_string())).unwrap(), most);
        let error = max_in_flight(&config(&u64::MAX.to_string())).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`max-in-flight` must be at most"),
            "{error}"
        );
        assert!(max_in_flight(&config("0")).is_err());
        assert!(max_in_flight(&config("lots")).is_err());
    }
}
