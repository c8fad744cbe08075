//! Admission control for subscribed messages: how many messages one
//! component handles at once, how many the whole host does, and how long a
//! received message waits for a slot before it is shed.
//!
//! Two ceilings, because neither covers the other: a component's own
//! `max_in_flight` (default 32) keeps one busy component from taking the
//! host, and the host's total (default 128, the plugin default
//! `host_max_in_flight`) keeps many components, each within its own
//! ceiling, from adding up to more instances than the host can carry.
//! A component's ceiling is shared by all its subscriptions and by every
//! copy of it on the host (a reload's old and new version included, unless
//! the new one sets another ceiling: the newest setting wins).
//!
//! A subscription loop that waits for a slot is not reading from the
//! broker, and a broker drops what a slow subscriber does not take (NATS
//! counts it only as a slow consumer). So the wait is bounded
//! (`admission_wait`, default 30 s, at most 10 minutes): a message that
//! finds no slot in that time is dropped on purpose, logged and counted
//! (`nimbus_messages_shed_total`), and the loop moves on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Messages one component handles at once unless it says otherwise.
pub(crate) const DEFAULT_PER_COMPONENT: usize = 32;
/// Messages all components of a host handle at once unless the host says
/// otherwise.
pub(crate) const DEFAULT_HOST_TOTAL: usize = 128;
/// How long a message waits for a slot unless the component says otherwise.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a component may ask for; more is clamped, with a warning.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);

/// The host's admission state, one per messaging plugin.
pub(crate) struct Admission {
    host: Arc<Semaphore>,
    host_total: usize,
    /// Per-component ceilings by `workload/component`; an entry lives as
    /// long as some subscription holds its semaphore.
    components: Mutex<HashMap<String, (Weak<Semaphore>, usize)>>,
}

impl Admission {
    pub(crate) fn new(host_total: usize) -> Self {
        let host_total = host_total.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            host: Arc::new(Semaphore::new(host_total)),
            host_total,
            components: Mutex::default(),
        }
    }

    /// The gate a subscription of `key` admits its messages through. Copies
    /// of a component share one ceiling; a copy that asks for a different
    /// one (a redeploy that changed it) starts a new ceiling, which the
    /// copies after it share: the newest setting wins.
    pub(crate) fn gate(&self, key: &str, max_in_flight: usize, wait: Duration) -> Gate {
        let asked = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        components.retain(|_, (gate, _)| gate.strong_count() > 0);
        let shared = components
            .get(key)
            .filter(|(_, limit)| *limit == asked)
            .and_then(|(gate, _)| gate.upgrade());
        let component = match shared {
            Some(gate) => gate,
            None => {
                let created = Arc::new(Semaphore::new(asked));
                components.insert(key.to_string(), (Arc::downgrade(&created), asked));
                created
            }
        };
        Gate {
            host: self.host.clone(),
            component,
            limit: asked.min(self.host_total),
            wait,
        }
    }
}

/// Admits one component's messages.
#[derive(Clone)]
pub(crate) struct Gate {
    host: Arc<Semaphore>,
    component: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
}

/// A message's slot, released when dropped.
pub(crate) struct Admitted {
    _component: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl Gate {
    /// A slot for one message, or `None` when none freed up within the
    /// wait (the message is to be shed).
    pub(crate) async fn admit(&self) -> Option<Admitted> {
        let acquire = async {
            // The component's own slot first: a component at its ceiling
            // must not hold host slots others could use.
            let component = self.component.clone().acquire_owned().await.ok()?;
            let host = self.host.clone().acquire_owned().await.ok()?;
            Some(Admitted {
                _component: component,
                _host: host,
            })
        };
        tokio::time::timeout(self.wait, acquire).await.ok()?
    }

    /// The ceiling in force for this gate's messages.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// How long a message waits for a slot.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }
}

/// Reads `admission_wait`: `45s`, `2m`, `1h`, `500ms`, or bare seconds.
/// More than [`MAX_WAIT`] is clamped (the caller is told, to warn).
pub(crate) fn parse_wait(value: &str) -> Result<(Duration, bool), String> {
    let text = value.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!(
            "admission_wait `{}` is not a duration (write `45s`, `2m` or a number of seconds)",
            value.escape_debug()
        )
    };
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(invalid()),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(invalid());
    }
    if seconds > MAX_WAIT.as_secs_f64() {
        return Ok((MAX_WAIT, true));
    }
    Ok((Duration::from_secs_f64(seconds), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_like_wasmcloud_writes_them() {
        assert_eq!(parse_wait("45s"), Ok((Duration::from_secs(45), false)));
        assert_eq!(parse_wait("2m"), Ok((Duration::from_secs(120), false)));
        assert_eq!(parse_wait(" 7 "), Ok((Duration::from_secs(7), false)));
        assert_eq!(parse_wait("250ms"), Ok((Duration::from_millis(250), false)));
        assert_eq!(parse_wait("2h"), Ok((MAX_WAIT, true)));
        for bad in ["", "soon", "5 parsecs", "-1", "1e400"] {
            let error = parse_wait(bad).unwrap_err();
            assert!(error.starts_with("admission_wait `"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn a_component_s_ceiling_is_shared_and_a_full_gate_sheds_after_its_wait() {
        let admission = Admission::new(8);
        let wait = Duration::from_millis(50);
        let first = admission.gate("ns/w/c", 2, wait);
        let second = admission.gate("ns/w/c", 2, wait);
        let a = first.admit().await.expect("a slot");
        let b = second.admit().await.expect("a slot");
        // Both gates share one ceiling of two.
        assert!(first.admit().await.is_none());
        drop(a);
        assert!(second.admit().await.is_some());
        drop(b);
        // A redeploy with another ceiling gets it, not the old one.
        let raised = admission.gate("ns/w/c", 3, wait);
        let held: Vec<_> = [
            raised.admit().await,
            raised.admit().await,
            raised.admit().await,
        ]
        .into_iter()
        .collect();
        assert!(held.iter().all(Option::is_some));
        assert!(raised.admit().await.is_none());
        drop(held);
        // Another component has its own ceiling.
        let other = admission.gate("ns/w/other", 1, wait);
        assert!(other.admit().await.is_some());
    }

    #[tokio::test]
    async fn the_host_total_binds_across_components() {
        let admission = Admission::new(2);
        let wait = Duration::from_millis(50);
        let mut held = Vec::new();
        for component in ["a", "b"] {
            held.push(admission.gate(component, 4, wait).admit().await);
        }
        assert!(held.iter().all(Option::is_some));
        assert!(admission.gate("c", 4, wait).admit().await.is_none());
        drop(held);
        assert!(admission.gate("c", 4, wait).admit().await.is_some());
    }
}
