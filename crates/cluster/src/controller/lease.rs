//! The leader lease: one key in the desired-state bucket, taken and renewed
//! by compare-and-set on its revision.
//!
//! The leader rewrites the key every third of the lease time. A standby
//! takes the lease when the key's revision has not changed for a whole
//! lease time *as measured by its own clock* (no clock comparison between
//! machines). A leader that cannot renew within two thirds of the lease
//! time steps down on its own, so it has stopped acting before any standby
//! can take over.

use crate::store::{LEASE_KEY, Store};
use async_nats::jetstream::kv;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the lease key holds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRecord {
    holder: String,
    ttl_ms: u64,
}

enum State {
    Standby { seen: Option<(u64, Instant)> },
    Leader { revision: u64, renewed: Instant },
}

pub(crate) struct Lease {
    store: Store,
    holder: String,
    ttl: Duration,
    state: State,
}

impl Lease {
    pub(crate) fn new(store: Store, holder: String, ttl: Duration) -> Self {
        Self {
            store,
            holder,
            ttl,
            state: State::Standby { seen: None },
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        matches!(self.state, State::Leader { .. })
    }

    fn record(&self) -> bytes::Bytes {
        crate::store::encode(&LeaseRecord {
            holder: self.holder.clone(),
            ttl_ms: self.ttl.as_millis() as u64,
        })
        .into()
    }

    /// Renews, takes or watches the lease; returns whether we lead.
    pub(crate) async fn tick(&mut self) -> bool {
        let kv = self.store.kv().clone();
        let timeout = self.store.timeout().min(self.ttl / 3);
        match self.state {
            State::Leader { revision, renewed } => {
                if renewed.elapsed() < self.ttl / 3 {
                    return true;
                }
                match tokio::time::timeout(timeout, kv.update(LEASE_KEY, self.record(), revision))
                    .await
                {
                    Ok(Ok(revision)) => {
                        self.state = State::Leader {
                            revision,
                            renewed: Instant::now(),
                        };
                    }
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        tracing::warn!("lost the controller lease to another controller");
                        self.state = State::Standby { seen: None };
                    }
                    _ if renewed.elapsed() >= self.ttl * 2 / 3 => {
                        tracing::warn!("cannot renew the controller lease; standing by");
                        self.state = State::Standby { seen: None };
                    }
                    _ => {}
                }
            }
            State::Standby { seen } => {
                let entry = match tokio::time::timeout(timeout, kv.entry(LEASE_KEY)).await {
                    Ok(Ok(entry)) => entry,
                    _ => return false,
                };
                let taken = match entry {
                    None => tokio::time::timeout(timeout, kv.create(LEASE_KEY, self.record()))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Some(entry) if entry.operation != kv::Operation::Put => {
                        self.take(&kv, entry.revision, timeout).await
                    }
                    Some(entry) => match seen {
                        Some((revision, since))
                            if revision == entry.revision && since.elapsed() >= self.ttl =>
                        {
                            self.take(&kv, entry.revision, timeout).await
                        }
                        Some((revision, _)) if revision == entry.revision => None,
                        _ => {
                            self.state = State::Standby {
                                seen: Some((entry.revision, Instant::now())),
                            };
                            None
                        }
                    },
                };
                if let Some(revision) = taken {
                    tracing::info!(controller = %self.holder, "took the controller lease; leading");
                    self.state = State::Leader {
                        revision,
                        renewed: Instant::now(),
                    };
                }
            }
        }
        self.is_leader()
    }

    async fn take(&self, kv: &kv::Store, revision: u64, timeout: Duration) -> Option<u64> {
        tokio::time::timeout(timeout, kv.update(LEASE_KEY, self.record(), revision))
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Gives the lease up (on shutdown), so a standby need not wait.
    pub(crate) async fn release(&mut self) {
        if let State::Leader { revision, .. } = self.state {
            let kv = self.store.kv();
            let _ = tokio::time::timeout(
                self.store.timeout(),
                kv.delete_expect_revision(LEASE_KEY, Some(revision)),
            )
            .await;
            self.state = State::Standby { seen: None };
        }
    }
}
