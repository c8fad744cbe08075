//! `wasi:tls/types@0.2.0-draft` (experimental): TLS client connections a
//! guest opens over its own `wasi:sockets` TCP streams.
//!
//! The host functions are wasmtime-wasi-tls's; this crate decides who may
//! use them and how a handshake is checked:
//!
//! - **Opt-in.** A workload gets `wasi:tls` only through a `wasi:tls` host
//!   interface entry; a component importing it without one fails to start
//!   with a line saying so. The interface is a draft and may change.
//! - **The outbound policy first.** The guest's TCP connection has already
//!   passed the address filter (`wasi:sockets` connects do). Before any TLS
//!   byte is sent, the server name must match the component's
//!   `allowedHosts` (exact, `*.suffix` or `*`; a port in an entry is not
//!   checked here, since the handshake does not know the socket's port).
//!   Certificate validation then ties that name to the peer.
//! - **Validation.** The server's chain must lead to the system's roots
//!   (`systemRoots: "false"` drops them) or to a certificate of the entry's
//!   `caBundle` (a PEM file read once at workload start), and name the
//!   server. A handshake that has not finished within
//!   [`HANDSHAKE_TIMEOUT`] fails.
//!
//! Every refusal and handshake failure reaches the guest as the future's
//! `io-error` (its debug string says why) and is logged once with the
//! workload, component and server name.
//!
//! Each instance gets its own `WasiTlsCtx` in its store, made on first use
//! from the component's binding ([`nimbus_plugin::StoreSlots`]).

use nimbus_model::host_pattern::HostPattern;
use nimbus_plugin::{BindContext, Binding, DetachedCalls, PluginError, PluginState};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi_tls::p2::bindings::types as tls_types;
use wasmtime_wasi_tls::{
    TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsCtxView,
};

const ID: &str = "tls";

/// How long a handshake may take before the guest gets an error.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Provides `wasi:tls` to workloads that opt in.
#[derive(Default)]
pub struct TlsPlugin;

impl<T: PluginState> nimbus_plugin::Plugin<T> for TlsPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:tls/types@0.2.0-draft"]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> WasiTlsCtxView<'_> {
            let (table, bindings, slots, calls) = state.plugin_slots();
            let grant = bindings.get::<Arc<Grant>>(ID).cloned();
            let slot = slots.get_or_insert_with(ID, || Slot::new(grant));
            // Handshakes started from here go under the instance's current
            // work (a reused instance serves request after request).
            *lock(&slot.calls) = calls.detach();
            WasiTlsCtxView {
                table,
                ctx: &mut slot.ctx,
            }
        }
        let mut options = tls_types::LinkOptions::default();
        options.tls(true);
        tls_types::add_to_linker::<T, HasTls>(linker, &options, view::<T>)
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        if ctx.host_interface("wasi", "tls").is_none() {
            return Err(PluginError::new(
                ID,
                "wasi:tls is experimental and off unless the workload lists a `wasi:tls` host interface",
            ));
        }
        let config = ctx.interface_config("wasi", "tls")?;
        for key in config.keys() {
            if !["caBundle", "systemRoots"].contains(&key.as_str()) {
                return Err(PluginError::new(
                    ID,
                    format!("unknown setting `{key}` (known: caBundle, systemRoots)"),
                ));
            }
        }
        let system_roots = match config.get("systemRoots").map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(PluginError::new(
                    ID,
                    format!("systemRoots: `{other}` is not true or false"),
                ));
            }
        };
        let bundle = config
            .get("caBundle")
            .map(|path| ("caBundle", Path::new(path)));
        let roots = nimbus_plugin::roots::trusted_roots(system_roots, bundle)
            .map_err(|e| PluginError::new(ID, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PluginError::new(ID, format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let allowed = allowed_hosts(ctx)
            .iter()
            .map(|entry| HostPattern::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PluginError::new(ID, format!("allowedHosts: {e}")))?;
        let grant: Arc<Grant> = Arc::new(Grant {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            allowed,
            workload: ctx.workload.to_string(),
            component: ctx.component.to_string(),
        });
        Ok(Arc::new(grant))
    }
}

/// The component's `allowedHosts`, whether it is one of the workload's
/// components or its service.
fn allowed_hosts<'a>(ctx: &'a BindContext<'_>) -> &'a [String] {
    let spec = ctx.spec;
    spec.components
        .iter()
        .find(|c| c.name == ctx.component)
        .map(|c| &c.local_resources)
        .or(spec.service.as_ref().map(|s| &s.local_resources))
        .map_or(&[], |resources| &resources.allowed_hosts)
}

/// What a component was granted: how it validates, and which names it may
/// reach.
struct Grant {
    connector: tokio_rustls::TlsConnector,
    allowed: Vec<HostPattern>,
    workload: String,
    component: String,
}

impl Grant {
    fn allows(&self, server_name: &str) -> bool {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|pattern| pattern.matches_host(&name).is_some())
    }
}

/// What an instance keeps: its TLS context, and the context and series its
/// handshakes are observed under, refreshed at each host call.
struct Slot {
    ctx: WasiTlsCtx,
    calls: Arc<Mutex<DetachedCalls>>,
}

impl Slot {
    /// Our provider over the component's grant, or (no grant: the component
    /// never bound) wasmtime-wasi-tls's default, which refuses every
    /// handshake in this build.
    fn new(grant: Option<Arc<Grant>>) -> Self {
        let calls = Arc::new(Mutex::new(DetachedCalls::default()));
        let ctx = match grant {
            Some(grant) => WasiTlsCtxBuilder::new()
                .provider(Box::new(Provider {
                    grant,
                    calls: calls.clone(),
                }))
                .build(),
            None => WasiTlsCtxBuilder::new().build(),
        };
        Self { ctx, calls }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Provider {
    grant: Arc<Grant>,
    calls: Arc<Mutex<DetachedCalls>>,
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error>> + Send>>;

impl TlsProvider for Provider {
    fn connect(&self, server_name: String, transport: Box<dyn TlsTransport>) -> Handshake {
        let grant = self.grant.clone();
        let calls = lock(&self.calls).clone();
        Box::pin(async move {
            let handshake = handshake(&grant, server_name, transport);
            calls
                .observe("wasi:tls/types", "client-handshake.finish", handshake)
                .await
        })
    }
}

/// Checks the name against the grant, then shakes hands within
/// [`HANDSHAKE_TIMEOUT`].
async fn handshake(
    grant: &Grant,
    server_name: String,
    transport: Box<dyn TlsTransport>,
) -> Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error> {
    let refuse = |reason: String| {
        tracing::warn!(
            workload = %grant.workload,
            component = %grant.component,
            server = %server_name,
            "wasi:tls handshake refused: {reason}"
        );
        wasmtime_wasi_tls::Error::msg(reason)
    };
    if !grant.allows(&server_name) {
        return Err(refuse(format!(
            "`{server_name}` is not in the component's allowedHosts"
        )));
    }
    let name = ServerName::try_from(server_name.clone())
        .map_err(|e| refuse(format!("`{server_name}` is not a server name: {e}")))?;
    let handshake = grant.connector.connect(name, transport);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Ok(Box::new(Connection(stream)) as Box<dyn TlsStream>),
        Ok(Err(e)) => Err(refuse(format!(
            "handshake with `{server_name}` failed: {e}"
        ))),
        Err(_) => Err(refuse(format!(
            "handshake with `{server_name}` took over {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        ))),
    }
}

/// A client connection after its handshake.
struct Connection(tokio_rustls::client::TlsStream<Box<dyn TlsTransport>>);

impl TlsStream for Connection {}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct HasTls;

impl wasmtime::component::HasData for HasTls {
    type Data<'a> = WasiTlsCtxView<'a>;
}
