//! Nimbus cluster mode: many hosts, one desired state.
//!
//! Hosts are simple: each runs a `nimbus_host::Host` and answers the
//! host API over NATS. A controller holds desired state in a JetStream
//! key-value bucket and tells hosts what to run. NATS carries commands and
//! heartbeats; JetStream keeps desired state replicated and durable, so the
//! cluster stands on an existing distributed engine.
//!
//! # Layout
//!
//! - [`api`]: the host API's subjects and JSON bodies (wasmCloud v2 shapes).
//! - [`connect`]: NATS connection settings (credentials, nkeys, TLS).
//! - `agent` (the `agent` feature): puts a host on NATS: answers the host
//!   API, sends heartbeats.
//! - [`store`]: desired state and status in the key-value bucket.
//! - [`controller`]: the reconciler: a leader lease, placement across
//!   hosts, rescheduling when heartbeats stop, status written back.
//! - [`overview`]: the cluster as a host's console shows it, and the host
//!   ping.
//! - [`events`]: what happened to a resource (placements, failures), a
//!   short list kept in its status for `nimbus describe` and `nimbus logs`.

#[cfg(feature = "agent")]
pub mod agent;
pub mod api;
pub mod connect;
pub mod controller;
pub mod events;
pub mod overview;
pub mod store;
