//! Accounting ([`nimbus_observe::metrics`]), and the one part of it that
//! needs the engine: the store limiter every instance's memory grows
//! through ([`MeteredLimiter`]).

mod memory;

pub(crate) use memory::MeteredLimiter;
pub use nimbus_observe::metrics::{
    CONTENT_TYPE, ChargeCpu, ComponentMetrics, ComponentReading, MetricType, Metrics, RequestUsage,
    quantile,
};
pub(crate) use nimbus_observe::metrics::{Metered, WorkerMeter, spawn_metered};
