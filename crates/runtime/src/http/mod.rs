//! HTTP ingress: the server accepting connections ([`server`]), the routers
//! choosing a workload per request ([`router`]), and the bodies and error
//! responses the host sends ([`body`]), the access log ([`access`]) and the
//! admin endpoint ([`admin`]: metrics, health, readiness).

pub mod access;
pub mod admin;
pub mod body;
pub mod router;
pub mod server;

pub use router::{DevRouter, DynamicRouter, RouteError, Router};
pub use server::{IngressLimits, MAX_REQUEST_HEAD_BYTES, serve};
