//! `wasi:sockets/tcp@0.2` for every P2 component that may use sockets.
//!
//! A socket starts undecided, holding no host descriptor. Its first bind or
//! connect decides: a loopback (or, for binds, unspecified) address keeps it
//! on the workload's [`VirtualNetwork`], when the workload has one; any other
//! address turns it into one of wasmtime-wasi's real sockets, to which every
//! later call is passed on unchanged (so the workload's `wasi:sockets`
//! permission and address checks still apply). Options set before that
//! decision are kept and applied to the real socket. Every real socket, an
//! accepted one included, holds a slot of the component's and the host's
//! outgoing-connection caps (`crate::outbound::OutboundSlots`) until the
//! guest drops it; past either cap the guest gets `new-socket-limit`.

use super::pipe::{PipeCloser, PipeReader, PipeWriter};
use super::{Backlog, Binding, ConnectError, Connection, Family, VirtualNetwork};
use crate::outbound::{OutboundSlots, Slot};
use crate::wasi::StoreState;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::{
    HostTcpSocket as RealTcp, ShutdownType as RealShutdown, TcpSocket as RealSocket,
};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as RealCreate;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, SocketResult};
use wasmtime_wasi::sockets::{WasiSocketsCtx, WasiSocketsCtxView};
use wasmtime_wasi_io::poll::Pollable;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/loopback",
        world: "nimbus:loopback/tcp",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/tcp.tcp-socket": super::LoopbackSocket,
        },
    });
}

use bindings::wasi::sockets::tcp::{self, ShutdownType};
use bindings::wasi::sockets::tcp_create_socket;

/// What a call returns: a trap, or the WIT result.
type CallResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

const DEFAULT_BACKLOG: usize = 128;
// What Linux reports for a fresh socket, so guests see familiar values.
const DEFAULT_KEEP_ALIVE_IDLE_NS: u64 = 7_200_000_000_000;
const DEFAULT_KEEP_ALIVE_INTERVAL_NS: u64 = 75_000_000_000;
const DEFAULT_KEEP_ALIVE_COUNT: u32 = 9;
const DEFAULT_HOP_LIMIT: u8 = 64;

/// Replaces wasmtime-wasi's `wasi:sockets/tcp` and `tcp-create-socket` in
/// `linker` (which must allow shadowing) with the loopback-aware ones.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    tcp::add_to_linker::<StoreState, Loopback>(linker, view)?;
    tcp_create_socket::add_to_linker::<StoreState, Loopback>(linker, view)?;
    Ok(())
}

fn view(state: &mut StoreState) -> LoopbackView<'_> {
    LoopbackView {
        table: &mut state.table,
        sockets: state.wasi.sockets(),
        network: state.env.loopback.as_ref(),
        slots: &state.env.outbound_slots,
        workload: &state.env.workload,
        component: &state.env.component,
    }
}

struct Loopback;

impl HasData for Loopback {
    type Data<'a> = LoopbackView<'a>;
}

/// What the socket functions reach in a store.
pub(crate) struct LoopbackView<'a> {
    table: &'a mut ResourceTable,
    sockets: &'a mut WasiSocketsCtx,
    network: Option<&'a Arc<VirtualNetwork>>,
    /// The outgoing-connection caps every real socket counts against.
    slots: &'a OutboundSlots,
    workload: &'a str,
    component: &'a str,
}

/// A guest's TCP socket: virtual, real, or not yet decided.
#[allow(unreachable_pub)] // bindgen re-exports it as the `tcp-socket` resource type
pub struct LoopbackSocket {
    family: IpAddressFamily,
    state: State,
    options: Options,
    /// A real socket's claim on the component's and the host's connection
    /// caps, given back when the guest drops the socket.
    slot: Option<Slot>,
}

enum State {
    Unbound,
    BindStarted(Binding),
    Bound(Binding),
    ListenStarted(Binding, Backlog),
    Listening {
        binding: Binding,
        backlog: Backlog,
        // A connection `subscribe`'s pollable took off the backlog.
        next: Option<Connection>,
    },
    ConnectStarted(Result<(Binding, Connection), ErrorCode>),
    Connected {
        // The client's ephemeral port; an accepted socket shares its listener's.
        _binding: Option<Binding>,
        local: SocketAddr,
        remote: SocketAddr,
        inbound: PipeCloser,
        outbound: PipeCloser,
    },
    Real(Resource<RealSocket>),
    Closed,
}

/// Options set on an undecided socket (and what virtual sockets report).
#[derive(Default)]
struct Options {
    backlog: Option<u64>,
    keep_alive: Option<bool>,
    keep_alive_idle: Option<u64>,
    keep_alive_interval: Option<u64>,
    keep_alive_count: Option<u32>,
    hop_limit: Option<u8>,
    receive_buffer: Option<u64>,
    send_buffer: Option<u64>,
}

impl LoopbackSocket {
    fn new(family: IpAddressFamily, state: State) -> Self {
        Self {
            family,
            state,
            options: Options::default(),
            slot: None,
        }
    }

    fn family_matches(&self, addr: &SocketAddr) -> bool {
        matches!(
            (self.family, Family::of(addr)),
            (IpAddressFamily::Ipv4, Family::V4) | (IpAddressFamily::Ipv6, Family::V6)
        )
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Bound(b) | State::ListenStarted(b, _) | State::Listening { binding: b, .. } => {
                Some(b.addr())
            }
            State::Connected { local, .. } => Some(*local),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LoopbackSocket {
    async fn ready(&mut self) {
        if let State::Listening { backlog, next, .. } = &mut self.state
            && next.is_none()
        {
            *next = backlog.recv().await;
        }
    }
}

/// wasmtime-wasi's result as ours: its error codes stay results, its traps traps.
fn lift<T>(result: SocketResult<T>) -> CallResult<T> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => error.downcast().map(Err),
    }
}

impl LoopbackView<'_> {
    fn real_view(&mut self) -> WasiSocketsCtxView<'_> {
        WasiSocketsCtxView {
            ctx: &mut *self.sockets,
            table: &mut *self.table,
        }
    }

    /// The real socket behind `this`, if it was decided real.
    fn real(
        &self,
        this: &Resource<LoopbackSocket>,
    ) -> wasmtime::Result<Option<Resource<RealSocket>>> {
        Ok(match &self.table.get(this)?.state {
            State::Real(real) => Some(Resource::new_borrow(real.rep())),
            _ => None,
        })
    }

    fn socket(&mut self, this: &Resource<LoopbackSocket>) -> wasmtime::Result<&mut LoopbackSocket> {
        Ok(self.table.get_mut(this)?)
    }

    /// Turns an undecided socket into a real one, applying the options set so far.
    async fn make_real(
        &mut self,
        this: &Resource<LoopbackSocket>,
    ) -> CallResult<Resource<RealSocket>> {
        let socket = self.socket(this)?;
        // A socket already bound, listening or connected on the virtual
        // network stays there.
        if !matches!(socket.state, State::Unbound) {
            return Ok(Err(ErrorCode::InvalidState));
        }
        let family = socket.family;
        // Each real socket is a host descriptor: capped like outbound HTTP.
        let Some(slot) = self.slots.take_socket(self.workload, self.component) else {
            return Ok(Err(ErrorCode::NewSocketLimit));
        };
        let real = match lift(RealCreate::create_tcp_socket(&mut self.real_view(), family))? {
            Ok(real) => real,
            Err(code) => return Ok(Err(code)),
        };
        let rep = real.rep();
        let borrow = move || Resource::<RealSocket>::new_borrow(rep);
        let options = std::mem::take(&mut self.socket(this)?.options);
        let mut view = self.real_view();
        let applied = (|| -> SocketResult<()> {
            if let Some(v) = options.backlog {
                RealTcp::set_listen_backlog_size(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.keep_alive {
                RealTcp::set_keep_alive_enabled(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.keep_alive_idle {
                RealTcp::set_keep_alive_idle_time(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.keep_alive_interval {
                RealTcp::set_keep_alive_interval(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.keep_alive_count {
                RealTcp::set_keep_alive_count(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.hop_limit {
                RealTcp::set_hop_limit(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.receive_buffer {
                RealTcp::set_receive_buffer_size(&mut view, borrow(), v)?;
            }
            if let Some(v) = options.send_buffer {
                RealTcp::set_send_buffer_size(&mut view, borrow(), v)?;
            }
            Ok(())
        })();
        if let Err(code) = lift(applied)? {
            RealTcp::drop(&mut self.real_view(), real)?;
            return Ok(Err(code));
        }
        let socket = self.socket(this)?;
        socket.state = State::Real(real);
        socket.slot = Some(slot);
        Ok(Ok(borrow()))
    }

    /// Gets or sets an option: on the real socket if there is one, else in
    /// the socket's own record.
    fn option<T>(
        &mut self,
        this: &Resource<LoopbackSocket>,
        real: impl FnOnce(&mut WasiSocketsCtxView<'_>, Resource<RealSocket>) -> SocketResult<T>,
        local: impl FnOnce(&mut Options) -> Result<T, ErrorCode>,
    ) -> CallResult<T> {
        if let Some(socket) = self.real(this)? {
            return lift(real(&mut self.real_view(), socket));
        }
        Ok(local(&mut self.socket(this)?.options))
    }
}

fn nonzero<T: PartialEq + Default>(value: T) -> Result<T, ErrorCode> {
    if value == T::default() {
        Err(ErrorCode::InvalidArgument)
    } else {
        Ok(value)
    }
}

impl tcp_create_socket::Host for LoopbackView<'_> {
    async fn create_tcp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> CallResult<Resource<LoopbackSocket>> {
        Ok(Ok(self
            .table
            .push(LoopbackSocket::new(family, State::Unbound))?))
    }
}

impl tcp::Host for LoopbackView<'_> {}

impl tcp::HostTcpSocket for LoopbackView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<LoopbackSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            return lift(
                RealTcp::start_bind(&mut self.real_view(), real, network, local_address).await,
            );
        }
        let addr: SocketAddr = local_address.into();
        let Some(net) = self
            .network
            .filter(|_| super::binds_virtually(addr.ip()))
            .cloned()
        else {
            let real = match self.make_real(&this).await? {
                Ok(real) => real,
                Err(code) => return Ok(Err(code)),
            };
            return lift(
                RealTcp::start_bind(&mut self.real_view(), real, network, addr.into()).await,
            );
        };
        self.table.get(&network)?;
        let socket = self.socket(&this)?;
        if !socket.family_matches(&addr) {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        if !matches!(socket.state, State::Unbound) {
            return Ok(Err(ErrorCode::InvalidState));
        }
        match net.bind(addr) {
            Some(binding) => {
                socket.state = State::BindStarted(binding);
                Ok(Ok(()))
            }
            None => Ok(Err(ErrorCode::AddressInUse)),
        }
    }

    async fn finish_bind(&mut self, this: Resource<LoopbackSocket>) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::finish_bind(&mut self.real_view(), real));
        }
        let socket = self.socket(&this)?;
        match std::mem::replace(&mut socket.state, State::Closed) {
            State::BindStarted(binding) => {
                socket.state = State::Bound(binding);
                Ok(Ok(()))
            }
            other => {
                socket.state = other;
                Ok(Err(ErrorCode::NotInProgress))
            }
        }
    }

    async fn start_connect(
        &mut self,
        this: Resource<LoopbackSocket>,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::start_connect(
                &mut self.real_view(),
                real,
                network,
                remote_address,
            ));
        }
        let remote: SocketAddr = remote_address.into();
        let socket = self.socket(&this)?;
        let bound_virtually = matches!(socket.state, State::Bound(_));
        let Some(net) = self
            .network
            .filter(|_| super::connects_virtually(remote.ip()))
            .cloned()
        else {
            if bound_virtually {
                // Bound to a loopback port: no route out of the workload.
                return Ok(Err(ErrorCode::RemoteUnreachable));
            }
            let real = match self.make_real(&this).await? {
                Ok(real) => real,
                Err(code) => return Ok(Err(code)),
            };
            return lift(RealTcp::start_connect(
                &mut self.real_view(),
                real,
                network,
                remote.into(),
            ));
        };
        self.table.get(&network)?;
        let socket = self.socket(&this)?;
        if !socket.family_matches(&remote) || remote.port() == 0 {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        let local = match std::mem::replace(&mut socket.state, State::Closed) {
            State::Unbound => None,
            State::Bound(binding) => Some(binding),
            other => {
                socket.state = other;
                return Ok(Err(ErrorCode::InvalidState));
            }
        };
        let outcome = net.connect(remote, local).map_err(|e| match e {
            ConnectError::Refused | ConnectError::BacklogFull => ErrorCode::ConnectionRefused,
            ConnectError::NoPorts => ErrorCode::AddressNotBindable,
        });
        socket.state = State::ConnectStarted(outcome);
        Ok(Ok(()))
    }

    async fn finish_connect(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> CallResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::finish_connect(&mut self.real_view(), real));
        }
        let socket = self.socket(&this)?;
        let (binding, connection) = match std::mem::replace(&mut socket.state, State::Closed) {
            State::ConnectStarted(Ok(connected)) => connected,
            // A failed connect leaves the socket closed, as on a real host.
            State::ConnectStarted(Err(code)) => return Ok(Err(code)),
            other => {
                socket.state = other;
                return Ok(Err(ErrorCode::NotInProgress));
            }
        };
        let (input, output) = connected(socket, connection, Some(binding));
        let input = self.table.push_child(input, &this)?;
        let output = self.table.push_child(output, &this)?;
        Ok(Ok((input, output)))
    }

    async fn start_listen(&mut self, this: Resource<LoopbackSocket>) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::start_listen(&mut self.real_view(), real).await);
        }
        let socket = self.socket(&this)?;
        match std::mem::replace(&mut socket.state, State::Closed) {
            State::Bound(binding) => {
                let backlog = socket.options.backlog.map_or(DEFAULT_BACKLOG, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX).min(4096)
                });
                let queue = binding.listen(backlog);
                socket.state = State::ListenStarted(binding, queue);
                Ok(Ok(()))
            }
            other => {
                socket.state = other;
                Ok(Err(ErrorCode::InvalidState))
            }
        }
    }

    async fn finish_listen(&mut self, this: Resource<LoopbackSocket>) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::finish_listen(&mut self.real_view(), real));
        }
        let socket = self.socket(&this)?;
        match std::mem::replace(&mut socket.state, State::Closed) {
            State::ListenStarted(binding, backlog) => {
                socket.state = State::Listening {
                    binding,
                    backlog,
                    next: None,
                };
                Ok(Ok(()))
            }
            other => {
                socket.state = other;
                Ok(Err(ErrorCode::NotInProgress))
            }
        }
    }

    async fn accept(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> CallResult<(
        Resource<LoopbackSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        if let Some(real) = self.real(&this)? {
            let (accepted, input, output) =
                match lift(RealTcp::accept(&mut self.real_view(), real))? {
                    Ok(accepted) => accepted,
                    Err(code) => return Ok(Err(code)),
                };
            let Some(slot) = self.slots.take_socket(self.workload, self.component) else {
                // Closed at once; its streams go first, as they are its children.
                self.table.delete(input)?;
                self.table.delete(output)?;
                RealTcp::drop(&mut self.real_view(), accepted)?;
                return Ok(Err(ErrorCode::NewSocketLimit));
            };
            let family = self.socket(&this)?.family;
            let mut socket = LoopbackSocket::new(family, State::Real(accepted));
            socket.slot = Some(slot);
            let socket = self.table.push(socket)?;
            return Ok(Ok((socket, input, output)));
        }
        let listener = self.socket(&this)?;
        let family = listener.family;
        let State::Listening { backlog, next, .. } = &mut listener.state else {
            return Ok(Err(ErrorCode::InvalidState));
        };
        let Some(connection) = next.take().or_else(|| backlog.try_recv().ok()) else {
            return Ok(Err(ErrorCode::WouldBlock));
        };
        let mut accepted = LoopbackSocket::new(family, State::Unbound);
        let (input, output) = connected(&mut accepted, connection, None);
        let accepted = self.table.push(accepted)?;
        let input = self.table.push_child(input, &accepted)?;
        let output = self.table.push_child(output, &accepted)?;
        Ok(Ok((accepted, input, output)))
    }

    async fn local_address(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> CallResult<IpSocketAddress> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::local_address(&mut self.real_view(), real));
        }
        Ok(self
            .socket(&this)?
            .local_addr()
            .map(Into::into)
            .ok_or(ErrorCode::InvalidState))
    }

    async fn remote_address(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> CallResult<IpSocketAddress> {
        if let Some(real) = self.real(&this)? {
            return lift(RealTcp::remote_address(&mut self.real_view(), real));
        }
        Ok(match &self.socket(&this)?.state {
            State::Connected { remote, .. } => Ok((*remote).into()),
            _ => Err(ErrorCode::InvalidState),
        })
    }

    async fn is_listening(&mut self, this: Resource<LoopbackSocket>) -> wasmtime::Result<bool> {
        if let Some(real) = self.real(&this)? {
            return RealTcp::is_listening(&mut self.real_view(), real);
        }
        Ok(matches!(self.socket(&this)?.state, State::Listening { .. }))
    }

    async fn address_family(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.socket(&this)?.family)
    }

    async fn set_listen_backlog_size(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u64,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_listen_backlog_size(v, s, value),
            // A virtual listener's queue is sized when it starts listening.
            |o| nonzero(value).map(|v| o.backlog = Some(v)),
        )
    }

    async fn keep_alive_enabled(&mut self, this: Resource<LoopbackSocket>) -> CallResult<bool> {
        self.option(
            &this,
            |v, s| RealTcp::keep_alive_enabled(v, s),
            |o| Ok(o.keep_alive.unwrap_or(false)),
        )
    }

    async fn set_keep_alive_enabled(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: bool,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_keep_alive_enabled(v, s, value),
            |o| {
                o.keep_alive = Some(value);
                Ok(())
            },
        )
    }

    async fn keep_alive_idle_time(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u64> {
        self.option(
            &this,
            |v, s| RealTcp::keep_alive_idle_time(v, s),
            |o| Ok(o.keep_alive_idle.unwrap_or(DEFAULT_KEEP_ALIVE_IDLE_NS)),
        )
    }

    async fn set_keep_alive_idle_time(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u64,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_keep_alive_idle_time(v, s, value),
            |o| nonzero(value).map(|v| o.keep_alive_idle = Some(v)),
        )
    }

    async fn keep_alive_interval(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u64> {
        self.option(
            &this,
            |v, s| RealTcp::keep_alive_interval(v, s),
            |o| {
                Ok(o.keep_alive_interval
                    .unwrap_or(DEFAULT_KEEP_ALIVE_INTERVAL_NS))
            },
        )
    }

    async fn set_keep_alive_interval(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u64,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_keep_alive_interval(v, s, value),
            |o| nonzero(value).map(|v| o.keep_alive_interval = Some(v)),
        )
    }

    async fn keep_alive_count(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u32> {
        self.option(
            &this,
            |v, s| RealTcp::keep_alive_count(v, s),
            |o| Ok(o.keep_alive_count.unwrap_or(DEFAULT_KEEP_ALIVE_COUNT)),
        )
    }

    async fn set_keep_alive_count(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u32,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_keep_alive_count(v, s, value),
            |o| nonzero(value).map(|v| o.keep_alive_count = Some(v)),
        )
    }

    async fn hop_limit(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u8> {
        self.option(
            &this,
            |v, s| RealTcp::hop_limit(v, s),
            |o| Ok(o.hop_limit.unwrap_or(DEFAULT_HOP_LIMIT)),
        )
    }

    async fn set_hop_limit(&mut self, this: Resource<LoopbackSocket>, value: u8) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_hop_limit(v, s, value),
            |o| nonzero(value).map(|v| o.hop_limit = Some(v)),
        )
    }

    async fn receive_buffer_size(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u64> {
        self.option(
            &this,
            |v, s| RealTcp::receive_buffer_size(v, s),
            |o| Ok(o.receive_buffer.unwrap_or(super::pipe::CAPACITY as u64)),
        )
    }

    async fn set_receive_buffer_size(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u64,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_receive_buffer_size(v, s, value),
            |o| nonzero(value).map(|v| o.receive_buffer = Some(v)),
        )
    }

    async fn send_buffer_size(&mut self, this: Resource<LoopbackSocket>) -> CallResult<u64> {
        self.option(
            &this,
            |v, s| RealTcp::send_buffer_size(v, s),
            |o| Ok(o.send_buffer.unwrap_or(super::pipe::CAPACITY as u64)),
        )
    }

    async fn set_send_buffer_size(
        &mut self,
        this: Resource<LoopbackSocket>,
        value: u64,
    ) -> CallResult<()> {
        self.option(
            &this,
            |v, s| RealTcp::set_send_buffer_size(v, s, value),
            |o| nonzero(value).map(|v| o.send_buffer = Some(v)),
        )
    }

    async fn subscribe(
        &mut self,
        this: Resource<LoopbackSocket>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        if let Some(real) = self.real(&this)? {
            return RealTcp::subscribe(&mut self.real_view(), real);
        }
        wasmtime_wasi_io::poll::subscribe(self.table, this)
    }

    async fn shutdown(
        &mut self,
        this: Resource<LoopbackSocket>,
        how: ShutdownType,
    ) -> CallResult<()> {
        if let Some(real) = self.real(&this)? {
            let how = match how {
                ShutdownType::Receive => RealShutdown::Receive,
                ShutdownType::Send => RealShutdown::Send,
                ShutdownType::Both => RealShutdown::Both,
            };
            return lift(RealTcp::shutdown(&mut self.real_view(), real, how));
        }
        let State::Connected {
            inbound, outbound, ..
        } = &self.socket(&this)?.state
        else {
            return Ok(Err(ErrorCode::InvalidState));
        };
        if matches!(how, ShutdownType::Receive | ShutdownType::Both) {
            inbound.close_read();
        }
        if matches!(how, ShutdownType::Send | ShutdownType::Both) {
            outbound.close_write();
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, this: Resource<LoopbackSocket>) -> wasmtime::Result<()> {
        let socket = self.table.delete(this)?;
        if let State::Real(real) = socket.state {
            RealTcp::drop(&mut self.real_view(), real)?;
        }
        Ok(())
    }
}

/// Makes `socket` the connected end of `connection`; returns its streams.
fn connected(
    socket: &mut LoopbackSocket,
    connection: Connection,
    binding: Option<Binding>,
) -> (DynInputStream, DynOutputStream) {
    let Connection {
        local,
        remote,
        reader,
        writer,
    } = connection;
    socket.state = State::Connected {
        _binding: binding,
        local,
        remote,
        inbound: reader.closer(),
        outbound: writer.closer(),
    };
    let input: Box<PipeReader> = Box::new(reader);
    let output: Box<PipeWriter> = Box::new(writer);
    (input, output)
}
