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
//! A layer that answers without calling inward short-circuits the chain. A
//! failure in an inner layer reaches the layer outside it as that failure's
//! 5xx response, and the host log names the failing component.

use super::running::HttpTarget;
use crate::http::body::error_response;
use crate::wasi::StoreState;
use std::sync::Arc;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::{Request, Response};
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttp, WasiHttpView};

/// The P3 handler interface a middleware imports to call inward.
pub const P3_HANDLER: &str = "wasi:http/handler@0.3.0";

/// Most distinct authorities one instance remembers being called on (a
/// reused P3 instance may be reached under several host names).
const MAX_CALLED_AS: usize = 8;

/// The next layer inward of one middleware.
pub struct Inward {
    /// `namespace/name` of the workload the chain belongs to.
    pub workload: Arc<str>,
    /// The layer a request goes to next.
    pub next: Arc<HttpTarget>,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl Inward {
    /// Hands `request` to the next layer. Its failures come back as its 5xx
    /// response (already logged with its name), so the status survives the
    /// layers outside it.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
        let response = match self.next.dispatch(&self.workload, request, None).await {
            Ok(response) => response,
            Err(failure) => error_response(failure.status, &failure.message),
        };
        Ok((response, Box::new(async { Ok(()) })))
    }
}

/// Per-store state of a middleware layer, kept in its outbound hooks.
#[derive(Default)]
pub(crate) struct LayerState {
    /// Authorities this instance was called on.
    called_as: Vec<Arc<str>>,
    /// Set by the `wasi:http/handler` import just before it sends, consumed
    /// by the send it triggers (no await point lies between the two).
    handler_call: bool,
}

impl LayerState {
    pub(crate) fn record_called_as(&mut self, authority: Arc<str>) {
        if self.called_as.len() < MAX_CALLED_AS
            && !self
                .called_as
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&authority))
        {
            self.called_as.push(authority);
        }
    }

    pub(crate) fn mark_handler_call(&mut self) {
        self.handler_call = true;
    }

    pub(crate) fn clear_handler_call(&mut self) {
        self.handler_call = false;
    }

    /// Whether this outgoing request goes to the next layer: it came through
    /// the handler import, or it is addressed to where this layer was called.
    pub(crate) fn goes_inward(&mut self, uri: &http::Uri) -> bool {
        if std::mem::take(&mut self.handler_call) {
            return true;
        }
        uri.authority().is_some_and(|authority| {
            self.called_as
                .iter()
                .any(|a| a.eq_ignore_ascii_case(authority.as_str()))
        })
    }
}

/// The authority a request is addressed to (URI authority or `Host`).
pub(crate) fn request_authority<B>(request: &http::Request<B>) -> Option<Arc<str>> {
    match request.uri().authority() {
        Some(authority) => Some(Arc::from(authority.as_str())),
        None => request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(Arc::from),
    }
}

/// Defines the `wasi:http/handler@0.3.0` import: a call hands the request to
/// the caller's next layer. It reuses `wasi:http/client`'s implementation
/// (the two functions have the same type), flagging the send as inward.
pub(crate) fn add_handler_import(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.instance(P3_HANDLER)?.func_wrap_concurrent(
        "handle",
        |accessor: &Accessor<StoreState>, (request,): (Resource<Request>,)| {
            Box::pin(async move {
                accessor.with(|mut access| access.get().mark_handler_call());
                let http = accessor.with_getter::<WasiHttp>(<StoreState as WasiHttpView>::http);
                let result: Result<Resource<Response>, _> =
                    <WasiHttp as HostWithStore<StoreState>>::send(&http, request).await;
                // A request refused before it reached the hooks left the flag
                // set; never let it route a later, unrelated send inward.
                accessor.with(|mut access| access.get().clear_handler_call());
                match result {
                    Ok(response) => Ok((Ok(response),)),
                    Err(error) => Ok((Err(error.downcast()?),)),
                }
            })
        },
    )
}
