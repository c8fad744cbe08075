//! gRPC through Nimbus, both ways, against real gRPC peers: a guest calling
//! a tonic server that speaks HTTP/2 only (as gRPC servers do), and tonic's
//! generated client calling a guest that serves a gRPC method.

use crate::common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use test_programs::P2_GRPC;
use test_programs::otlp::OtlpReceiver;

/// The receiver owns a runtime of its own, so it is started and dropped
/// outside the test's.
fn with_receiver(test: impl AsyncFnOnce(&OtlpReceiver)) {
    let receiver = OtlpReceiver::start_grpc_only();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(test(&receiver));
}

#[test]
pub(crate) fn a_guest_calls_a_grpc_server_over_h2c_and_reads_its_trailers() {
    with_receiver(async |receiver| {
        let target = receiver
            .endpoint()
            .trim_start_matches("http://")
            .to_string();
        let t = TestHost::dynamic().await;
        let mut workload = http_workload("grpc", P2_GRPC, "grpc.test");
        resources(&mut workload).allowed_hosts = vec![target.clone()];
        t.host.start_workload(workload).await.unwrap();

        let (status, body) = t
            .get(
                "grpc.test",
                &format!("/call?to={target}&name=span-from-guest"),
            )
            .await;
        // The server answered over HTTP/2, and its `grpc-status` came back
        // in the trailers (an empty ExportTraceServiceResponse: 0 bytes).
        assert_eq!(
            (status, body.as_str()),
            (200, "http=200 grpc-status=0 bytes=0\n")
        );
        let names: Vec<String> = receiver.spans().into_iter().map(|(_, s)| s.name).collect();
        assert_eq!(names, ["span-from-guest"]);
    });
}

#[test]
fn a_grpc_call_from_a_guest_is_still_held_to_allowed_hosts() {
    with_receiver(async |receiver| {
        let target = receiver
            .endpoint()
            .trim_start_matches("http://")
            .to_string();
        let t = TestHost::dynamic().await;
        t.host
            .start_workload(http_workload("grpc", P2_GRPC, "grpc.test"))
            .await
            .unwrap();
        let (status, body) = t.get("grpc.test", &format!("/call?to={target}")).await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("HttpRequestDenied"), "{body}");
        assert!(receiver.spans().is_empty());
    });
}

#[tokio::test]
async fn a_tonic_client_calls_a_guest_grpc_server_and_gets_its_trailers() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("grpc", P2_GRPC, "127.0.0.1"))
        .await
        .unwrap();
    // tonic's generated client over an HTTP/2-only (h2c) hyper client, the
    // way a gRPC client reaches a plain-text server.
    let channel = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let origin: http::Uri = format!("http://127.0.0.1:{}", t.addr.port())
        .parse()
        .unwrap();
    let mut client = TraceServiceClient::with_origin(channel, origin);
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "to-the-guest".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let size = prost::Message::encoded_len(&request);
    let response = tokio::time::timeout(TIMEOUT, client.export(request))
        .await
        .expect("the call finishes")
        .expect("the guest answers grpc-status 0");
    // tonic folds a unary call's trailers into its metadata.
    let seen = response
        .metadata()
        .get("x-request-bytes")
        .expect("the guest's trailer reached the client");
    assert_eq!(seen.to_str().unwrap(), size.to_string());
    assert!(response.into_inner().partial_success.is_none());
}
