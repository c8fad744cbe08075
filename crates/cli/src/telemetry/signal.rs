//! The OpenTelemetry signals and whether each is asked for: by
//! `--otlp-endpoint` or the standard `OTEL_EXPORTER_OTLP_*` variables (a
//! signal's own variable wins over the general one), unless
//! `OTEL_SDK_DISABLED` or `OTEL_{SIGNAL}_EXPORTER=none` turns it off. Read
//! in every build, so a build without the exporters can say it has none.

#[derive(Clone, Copy, Debug)]
/// One OpenTelemetry signal.
pub(super) enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Traces => "TRACES",
            Self::Metrics => "METRICS",
            Self::Logs => "LOGS",
        }
    }

    /// Lower-case name, for messages and OTLP/HTTP paths.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
        }
    }

    /// `OTEL_EXPORTER_OTLP_{SIGNAL}_{setting}`, else
    /// `OTEL_EXPORTER_OTLP_{setting}`: the variable that is set (and not
    /// blank), with its value.
    pub(super) fn setting(self, setting: &str) -> Option<(String, String)> {
        [
            format!("OTEL_EXPORTER_OTLP_{}_{setting}", self.name()),
            format!("OTEL_EXPORTER_OTLP_{setting}"),
        ]
        .into_iter()
        .find_map(|name| {
            let value = std::env::var(&name).ok()?.trim().to_string();
            (!value.is_empty()).then_some((name, value))
        })
    }

    /// Whether this signal is exported: an endpoint for it is given and
    /// nothing turns it off.
    pub(super) fn wanted(self, endpoint_flag: bool) -> bool {
        let is = |name: &str, value: &str| {
            std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
        };
        if is("OTEL_SDK_DISABLED", "true") || is(&format!("OTEL_{}_EXPORTER", self.name()), "none")
        {
            return false;
        }
        endpoint_flag || self.setting("ENDPOINT").is_some()
    }
}
