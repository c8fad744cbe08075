//! The runtime's integration tests, in one test binary: one link against
//! wasmtime instead of one per file, which a cold CI build feels. nextest
//! still runs every test in a process of its own.

mod common;

mod accounting;
mod bad_components;
mod blobstore_v1;
mod component_plugins;
mod compose;
mod config;
mod console;
mod cpu_limit;
mod grpc;
mod hardening;
mod http;
mod keyvalue;
mod links;
mod local_calls;
mod messaging3;
mod middleware;
mod nats;
mod oci;
mod otel;
mod plugins;
mod postgres;
mod service;
mod tls;
mod webgpu;
mod websocket;

/// Every guest program in crates/test-programs has a test here that runs
/// it: `foreach_guest!` names each guest, and each name must be one of the
/// tests below, so a guest added without a test fails to compile (as
/// wasmtime's test programs are checked).
mod every_guest_has_a_test {
    mod tests {
        pub(crate) use crate::blobstore_v1::a_p3_component_streams_objects_through_wasmcloud_blobstore as p3_blobstore;
        pub(crate) use crate::component_plugins::workloads_import_a_host_component_plugin_that_restarts_after_a_trap as p2_vault_plugin;
        pub(crate) use crate::component_plugins::workloads_import_a_host_component_plugin_that_restarts_after_a_trap as p2_vault_user;
        pub(crate) use crate::config::wasi_config_serves_component_config_and_named_sources as p2_config;
        pub(crate) use crate::grpc::a_guest_calls_a_grpc_server_over_h2c_and_reads_its_trailers as p2_grpc;
        pub(crate) use crate::hardening::a_p3_response_cut_by_the_deadline_is_visibly_incomplete as p3_hostile;
        pub(crate) use crate::hardening::raw_tcp_sockets_count_against_the_outbound_caps as p2_hostile;
        pub(crate) use crate::http::dev_router_sends_everything_to_the_newest_workload as p2_hello;
        pub(crate) use crate::http::dev_router_sends_everything_to_the_newest_workload as p3_hello;
        pub(crate) use crate::http::sockets_are_denied_unless_the_workload_allows_them as p2_behaviors;
        pub(crate) use crate::http::the_lean_p3_hello_answers_from_reused_instances as p3_lean;
        pub(crate) use crate::links::a_p2_component_calls_and_shares_resources_with_a_p2_component_of_its_workload as p2_link_app;
        pub(crate) use crate::links::a_p2_component_calls_and_shares_resources_with_a_p2_component_of_its_workload as p2_link_lib;
        pub(crate) use crate::links::a_p3_component_awaits_an_async_export_that_itself_links_to_a_p2_component as p3_link_app;
        pub(crate) use crate::links::a_p3_component_awaits_an_async_export_that_itself_links_to_a_p2_component as p3_link_lib;
        pub(crate) use crate::links::components_importing_from_each_other_are_refused_with_the_cycle_spelled_out as p2_link_relay;
        pub(crate) use crate::messaging3::a_p3_component_requests_publishes_and_handles_with_streamed_bodies as p3_messaging;
        pub(crate) use crate::middleware::auth_middleware_short_circuits_and_edits_headers_inward as p3_mw_auth;
        pub(crate) use crate::middleware::p2_and_p3_middleware_mix_in_one_chain as p2_mw_forward;
        pub(crate) use crate::middleware::three_middlewares_wrap_the_handler_in_onion_order as p3_mw_logging;
        pub(crate) use crate::nats::a_p3_component_speaks_core_nats_jetstream_and_key_value as p3_nats;
        pub(crate) use crate::otel::guest_spans_logs_and_metrics_join_the_request_trace as p2_otel;
        pub(crate) use crate::plugins::logging_reaches_tracing_and_secrets_are_served_but_never_logged as p2_plugins;
        pub(crate) use crate::plugins::messaging_on_memory as p2_msg_handler;
        pub(crate) use crate::plugins::secrets_2_1_serve_a_p3_guest_through_async_calls as p3_secrets;
        pub(crate) use crate::postgres::a_guest_queries_postgres_with_parameters_types_errors_and_prepared_statements as p2_postgres;
        pub(crate) use crate::postgres::a_p3_guest_gets_rows_as_a_stream_and_typed_errors as p3_postgres;
        pub(crate) use crate::service::a_p3_service_runs_its_async_run_and_is_restarted as p3_service;
        pub(crate) use crate::service::components_reach_the_service_over_the_virtual_loopback as p2_service;
        pub(crate) use crate::service::components_reach_the_service_over_the_virtual_loopback as p2_service_client;
        pub(crate) use crate::tls::a_guest_talks_tls_to_a_server_it_trusts_and_each_failure_reaches_it as p2_tls;
        pub(crate) use crate::webgpu::a_granted_component_runs_a_compute_shader_on_the_gpu as p3_webgpu;
        pub(crate) use crate::websocket::websocket_connections_open_talk_close_and_hit_each_limit as p2_websocket;
    }

    macro_rules! has_a_test {
        ($guest:ident) => {
            #[allow(unused_imports)]
            use tests::$guest as _;
        };
    }

    test_programs::foreach_guest!(has_a_test);
}
