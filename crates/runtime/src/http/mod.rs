//! The HTTP pieces below the host: the routers choosing a workload per
//! request ([`router`]; the outbound sender asks them too), and the bodies
//! and error responses a workload answers with ([`body`]). The server, the
//! access log and the admin endpoint are the host's (`nimbus-host`).

pub mod body;
pub mod router;

pub use router::{DevRouter, DynamicRouter, RouteError, Router};
