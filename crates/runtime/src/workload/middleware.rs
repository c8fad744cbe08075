//! HTTP middleware chains: components a workload lists under `middleware:`
//! wrapped around its HTTP handler like an onion.
//!
//! Every layer is a component of its own, with its own store, environment,
//! config and allowed hosts; the host carries a request from one layer to
//! the next in memory, through the same dispatch the ingress uses (so the
//! inner layer's deadline, instance reuse and failure mapping apply). A
//! middleware calls inward in one of two ways:
//!
//! - P3: it imports `wasi:http/handler@0.3.0` (the `wasi:http/middleware`
//!   world); every call of that import goes to the next layer;
//! - P2 (or P3 without that import): it exports the handler and forwards
//!   with the ordinary outgoing client (`wasi:http/outgoing-handler`, or
//!   `wasi:http/client@0.3.0`); a request sent to the authority the layer was
//!   itself called on goes to the next layer, anything else is ordinary
//!   outbound HTTP under the layer's `allowedHosts`.
//!
//! The per-store half (which authorities a layer was called on, whether a
//! send came through the handler import) lives with the outbound hooks
//! (`crate::outbound`), and the import itself with the linker
//! (`crate::wasi`); this module holds the chain's link from one layer to
//! the next.
//!
//! A layer that answers without calling inward short-circuits the chain. A
//! failure in an inner layer reaches the layer outside it as that failure's
//! 5xx response, and the host log names the failing component.

use super::instance::RequestFate;
use super::running::{HttpTarget, sender_watched};
use crate::http::body::error_response;
use crate::outbound::{InMemoryResponse, InMemoryTarget};
use std::sync::Arc;
use wasmtime_wasi_http::WasiBody;

pub use crate::wasi::P3_HANDLER;

/// The next layer inward of one middleware.
pub struct Inward {
    /// `namespace/name` of the workload the chain belongs to.
    pub workload: Arc<str>,
    /// The layer a request goes to next.
    pub next: Arc<HttpTarget>,
}

// The outbound hooks reach the next layer through this trait (they sit
// below the workload layer and never name it).
impl InMemoryTarget for Inward {
    fn label(&self) -> &str {
        &self.next.component
    }

    fn serve(self: Arc<Self>, request: http::Request<WasiBody>) -> InMemoryResponse {
        Box::pin(async move {
            let fate = Arc::new(RequestFate::default());
            let request = sender_watched(request, &fate);
            match self
                .next
                .dispatch(&self.workload, request, None, fate)
                .await
            {
                Ok(response) => response,
                Err(failure) => error_response(failure.status, &failure.message),
            }
        })
    }
}
