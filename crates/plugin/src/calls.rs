//! What every plugin call goes through: a `plugin` span under the request
//! the instance is handling, and the component's call count and latency by
//! interface and outcome (`nimbus_plugin_calls_total`,
//! `nimbus_plugin_call_duration_seconds`).
//!
//! Plugins whose calls reach a backend (key-value, blobstore, messaging)
//! wrap each host function's backend work in [`PluginCalls::observe`] (or
//! the whole function in [`PluginCalls::observe_outcome`]), so one guest call
//! is one observation; config, secrets and logging answer from memory and
//! are not timed.

use nimbus_observe::metrics::ComponentMetrics;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// The parent span and series of one store's plugin calls.
#[derive(Clone, Copy)]
pub struct PluginCalls<'a> {
    parent: Option<&'a nimbus_observe::trace::Parent>,
    metrics: Option<&'a Arc<ComponentMetrics>>,
}

impl<'a> PluginCalls<'a> {
    /// Calls under `parent`, counted in `metrics` (with accounting on).
    pub fn new(
        parent: Option<&'a nimbus_observe::trace::Parent>,
        metrics: Option<&'a Arc<ComponentMetrics>>,
    ) -> Self {
        Self { parent, metrics }
    }

    /// The same context and series, owned: for a call whose work goes on
    /// after its host function returned (a TLS handshake the guest polls).
    pub fn detach(&self) -> DetachedCalls {
        DetachedCalls {
            parent: self.parent.cloned(),
            metrics: self.metrics.cloned(),
        }
    }

    /// The trace context the calls go under: the work the instance is
    /// doing (the request's component span), if it is traced.
    pub fn parent(&self) -> Option<&'a nimbus_observe::trace::Parent> {
        self.parent
    }

    /// Runs one call of `function` in `interface` (such as
    /// `wasi:keyvalue/store`), traced and counted; an `Err` is an error
    /// outcome.
    pub async fn observe<T, E>(
        &self,
        interface: &'static str,
        function: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.observe_with(interface, function, call, Result::is_ok)
            .await
    }

    /// [`observe`](Self::observe) for a host function's whole body: both a
    /// trap and an error returned to the guest are error outcomes.
    pub async fn observe_outcome<T, E>(
        &self,
        interface: &'static str,
        function: &'static str,
        call: impl Future<Output = wasmtime::Result<Result<T, E>>>,
    ) -> wasmtime::Result<Result<T, E>> {
        self.observe_with(interface, function, call, |r| matches!(r, Ok(Ok(_))))
            .await
    }

    /// Starts observing one call of a component-model `async` host
    /// function, which cannot hold the store across its awaits: run the
    /// work under [`Observation::run`], then [`Observation::finish`] it
    /// with the store's calls again.
    pub fn start(&self, interface: &'static str, function: &'static str) -> Observation {
        Observation {
            span: nimbus_observe::trace::plugin_span(self.parent, interface, function),
            started: self.metrics.map(|_| Instant::now()),
            interface,
        }
    }

    async fn observe_with<R>(
        &self,
        interface: &'static str,
        function: &'static str,
        call: impl Future<Output = R>,
        is_ok: impl Fn(&R) -> bool,
    ) -> R {
        let span = nimbus_observe::trace::plugin_span(self.parent, interface, function);
        let started = self.metrics.map(|_| Instant::now());
        let result = call.instrument(span.clone()).await;
        let ok = is_ok(&result);
        if !ok {
            nimbus_observe::trace::record_error(&span);
        }
        if let (Some(metrics), Some(started)) = (self.metrics, started) {
            metrics.plugin_call(interface, ok, started.elapsed());
        }
        result
    }
}

/// One call being observed (see [`PluginCalls::start`]).
pub struct Observation {
    span: tracing::Span,
    started: Option<Instant>,
    interface: &'static str,
}

impl Observation {
    /// Runs the call's work under its span.
    pub async fn run<R>(&self, call: impl Future<Output = R>) -> R {
        call.instrument(self.span.clone()).await
    }

    /// Ends the observation: an error outcome unless `ok`.
    pub fn finish(self, calls: &PluginCalls<'_>, ok: bool) {
        if !ok {
            nimbus_observe::trace::record_error(&self.span);
        }
        if let (Some(metrics), Some(started)) = (calls.metrics, self.started) {
            metrics.plugin_call(self.interface, ok, started.elapsed());
        }
    }
}

/// [`PluginCalls`] that own what they point to (see [`PluginCalls::detach`]).
#[derive(Clone, Default)]
pub struct DetachedCalls {
    parent: Option<nimbus_observe::trace::Parent>,
    metrics: Option<Arc<ComponentMetrics>>,
}

impl DetachedCalls {
    /// [`PluginCalls::observe`], for work that outlives the store borrow.
    pub async fn observe<T, E>(
        &self,
        interface: &'static str,
        function: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let calls = PluginCalls::new(self.parent.as_ref(), self.metrics.as_ref());
        calls.observe(interface, function, call).await
    }
}
