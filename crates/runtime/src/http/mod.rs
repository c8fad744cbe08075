//! HTTP ingress: the server accepting connections ([`server`]), the routers
//! choosing a workload per request ([`router`]), and the bodies and error
//! responses the host sends ([`body`]).

pub mod body;
pub mod router;
pub mod server;

pub use router::{DevRouter, DynamicRouter, RouteError, Router};
pub use server::serve;
