//! `wasmcloud:messaging@0.3.0`: the same broker calls as `0.2.0`, as
//! component-model `async` functions with `stream<u8>` bodies and typed
//! errors, and a handler export that is itself `async`.
//!
//! Bodies a guest sends are taken as it writes them (the guest is held back
//! while the host is busy) and buffered up to the binding's
//! `max_body_bytes` (default 8 MiB; NATS sends a message as one payload, so
//! a body is whole before it leaves); a larger body is `message-too-large`
//! without reading the rest. Bodies a guest receives are streams it reads
//! at its own pace. `timeout-ms` counts from the moment the request body
//! is whole; `none` means the binding's `timeout_ms` (default 2 s).

use crate::{Broker, ConsumerView, Message, MessagingError};
use nimbus_plugin::streams;
use std::time::Duration;
use wasmtime::component::{Accessor, StreamReader};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-0.3.0",
        world: "wasmcloud:messaging/handler-service",
        imports: { default: store | trappable },
        exports: { default: async | store },
    });
}

use bindings::wasmcloud::messaging::{consumer, types};

pub(crate) use bindings::HandlerServicePre;

const CONSUMER: &str = "wasmcloud:messaging/consumer@0.3.0";

/// What the guest is told for a broker failure.
fn guest_error(error: MessagingError) -> types::Error {
    match error {
        MessagingError::InvalidSubject(_) => types::Error::SubjectInvalid,
        MessagingError::NoReply { .. } => types::Error::Timeout,
        MessagingError::TooLarge { .. } => types::Error::MessageTooLarge,
        MessagingError::Unreachable(_) => types::Error::BrokerUnavailable,
        // No responders, a closed reply subscription, a server error: the
        // words say which.
        other => types::Error::Other(other.to_string()),
    }
}

/// The binding's broker, body limit and default request timeout.
fn binding_parts<T>(
    accessor: &Accessor<T, HasConsumerV3>,
) -> wasmtime::Result<(std::sync::Arc<dyn Broker>, usize, Duration)> {
    accessor.with(|mut access| {
        let view = access.get();
        let binding = view.binding()?;
        Ok((
            binding.broker.clone(),
            binding.max_body_bytes,
            binding.timeout,
        ))
    })
}

/// Takes the guest's body whole, or says why not.
async fn take_body<T>(
    accessor: &Accessor<T, HasConsumerV3>,
    body: StreamReader<u8>,
    limit: usize,
) -> wasmtime::Result<Result<bytes::Bytes, MessagingError>> {
    let mut chunks = streams::receive(accessor, body)?;
    Ok(streams::collect(&mut chunks, limit)
        .await
        .map_err(|bytes| MessagingError::TooLarge { bytes, limit }))
}

/// Runs `call` as one observed plugin call of this component (span,
/// metrics).
async fn observed<T, R>(
    accessor: &Accessor<T, HasConsumerV3>,
    function: &'static str,
    call: impl Future<Output = Result<R, MessagingError>>,
) -> Result<R, MessagingError> {
    let observation = accessor.with(|mut access| access.get().calls.start(CONSUMER, function));
    let result = observation.run(call).await;
    accessor.with(|mut access| observation.finish(&access.get().calls, result.is_ok()));
    result
}

impl types::Host for ConsumerView<'_> {}
impl consumer::Host for ConsumerView<'_> {}

impl<T> consumer::HostWithStore<T> for HasConsumerV3 {
    async fn request(
        accessor: &Accessor<T, Self>,
        subject: String,
        body: StreamReader<u8>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<types::BrokerMessage, types::Error>> {
        let (broker, limit, default_timeout) = match binding_parts(accessor) {
            Ok(parts) => parts,
            Err(error) => {
                streams::discard(accessor, body)?;
                return Err(error);
            }
        };
        let body = match take_body(accessor, body, limit).await? {
            Ok(body) => body,
            Err(error) => return Ok(Err(guest_error(error))),
        };
        let timeout = timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(default_timeout);
        // The broker bounds the wait; this also bounds reaching it.
        let call = async {
            tokio::time::timeout(
                timeout + Duration::from_millis(100),
                broker.request(subject.clone(), body, timeout),
            )
            .await
            .unwrap_or_else(|_| {
                Err(MessagingError::NoReply {
                    subject: subject.clone(),
                    ms: timeout.as_millis(),
                })
            })
        };
        let reply = match observed(accessor, "request", call).await {
            Ok(reply) => reply,
            Err(error) => return Ok(Err(guest_error(error))),
        };
        let body =
            accessor.with(|mut access| StreamReader::new(&mut access, reply.body.to_vec()))?;
        Ok(Ok(types::BrokerMessage {
            subject: reply.subject,
            body,
            reply_to: reply.reply_to,
        }))
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        msg: types::BrokerMessage,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let (broker, limit, _) = match binding_parts(accessor) {
            Ok(parts) => parts,
            Err(error) => {
                streams::discard(accessor, msg.body)?;
                return Err(error);
            }
        };
        let body = match take_body(accessor, msg.body, limit).await? {
            Ok(body) => body,
            Err(error) => return Ok(Err(guest_error(error))),
        };
        let call = broker.publish(Message {
            subject: msg.subject,
            body,
            reply_to: msg.reply_to,
        });
        Ok(observed(accessor, "publish", call)
            .await
            .map_err(guest_error))
    }
}

/// Runs `handle-message` on `instance` with `message`; the error is the
/// handler's disposition in words.
pub(crate) async fn handle<T: Send + 'static>(
    store: &mut wasmtime::Store<T>,
    instance: &bindings::HandlerService,
    message: Message,
) -> wasmtime::Result<Result<(), String>> {
    let body = StreamReader::new(&mut *store, message.body.to_vec())?;
    let message = types::BrokerMessage {
        subject: message.subject,
        body,
        reply_to: message.reply_to,
    };
    let outcome = store
        .run_concurrent(async |accessor| {
            instance
                .wasmcloud_messaging_handler()
                .call_handle_message(accessor, message)
                .await
        })
        .await??;
    Ok(outcome.map_err(|error| match error {
        types::HandleMessageError::Reject => "rejected".to_string(),
        types::HandleMessageError::Retry => "failed; asked for a retry".to_string(),
        types::HandleMessageError::Other(detail) => detail,
    }))
}

pub(crate) struct HasConsumerV3;

impl wasmtime::component::HasData for HasConsumerV3 {
    type Data<'a> = ConsumerView<'a>;
}
