//! HTTP ingress: the server accepting connections ([`server`]), the access
//! log ([`access`]) and the admin endpoint ([`admin`]: metrics, health,
//! readiness, the web console of [`console`]), protocol upgrades handed to plugins ([`upgrade`]), with the runtime's routers ([`router`]) and the bodies and
//! error responses a workload answers with ([`body`]); requests the host
//! refuses itself before routing ([`malformed`]).

pub mod access;
pub mod admin;
pub mod console;
pub(crate) mod malformed;
pub mod server;
pub(crate) mod upgrade;

pub use nimbus_runtime::http::{body, router};
pub use router::{DevRouter, DynamicRouter, RouteError, Router};
pub use server::{IngressLimits, MAX_REQUEST_HEAD_BYTES, serve};
