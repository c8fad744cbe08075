//! `wasi:logging/logging@0.1.0-draft` → the host's `tracing`.
//!
//! Each guest message becomes one event with target `guest`, carrying the
//! workload and component ids and the guest's `context` as fields, so the
//! host's log filter (`RUST_LOG=guest=debug`) and any subscriber see guest
//! logs next to the host's own. `critical` maps to `error`.

use nimbus_plugin::PluginState;
use std::sync::Arc;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:logging/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// Forwards guest log lines to `tracing`.
pub struct LoggingPlugin;

impl<T: PluginState> nimbus_plugin::Plugin<T> for LoggingPlugin {
    fn id(&self) -> &'static str {
        "logging"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:logging/logging@0.1.0-draft"]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        logging::add_to_linker::<T, HasLogging>(linker, |state| {
            let (workload, component) = state.ids();
            LogView {
                workload,
                component,
            }
        })
    }

    fn bind(
        &self,
        _ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        Ok(Arc::new(()))
    }
}

struct LogView<'a> {
    workload: &'a str,
    component: &'a str,
}

impl logging::Host for LogView<'_> {
    fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let (workload, component) = (self.workload, self.component);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "guest", $level, workload, component, context = %context, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error | Level::Critical => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

struct HasLogging;

impl wasmtime::component::HasData for HasLogging {
    type Data<'a> = LogView<'a>;
}
