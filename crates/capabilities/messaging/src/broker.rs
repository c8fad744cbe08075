//! Message brokers behind `wasmcloud:messaging`: in-memory (dev) and NATS.
//!
//! Both speak NATS's model: subjects of `.`-separated tokens, `*` matching
//! one token and `>` the rest, plain subscribers each receiving every
//! matching message, and queue groups where one member receives each.
//! Requests are a publish with a fresh reply subject and a wait, bounded by
//! the caller's timeout, for the first reply.

use async_trait::async_trait;
use bytes::Bytes;
#[cfg(feature = "nats")]
use futures::StreamExt;
#[cfg(feature = "nats")]
use nimbus_plugin::NatsConnection;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// A message as brokers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Subject it was published on.
    pub subject: String,
    /// Payload.
    pub body: Bytes,
    /// Where a reply should go.
    pub reply_to: Option<String>,
}

/// Messages of one subscription; dropping it unsubscribes.
pub type Subscription = mpsc::Receiver<Message>;

/// A broker one host's workloads share.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `message`.
    async fn publish(&self, message: Message) -> Result<(), MessagingError>;
    /// Publishes to `subject` and waits up to `timeout` for the first reply.
    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, MessagingError>;
    /// Subscribes to `subject`, optionally as a member of queue group `queue`.
    async fn subscribe(
        &self,
        subject: String,
        queue: Option<String>,
    ) -> Result<Subscription, MessagingError>;
}

/// Whether `subject` matches `pattern` (NATS wildcards).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(got)) if want == got => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// Why a messaging call failed. The guest receives its message (the
/// interface's error is a string); the host can match on the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// A subject NATS would refuse (empty tokens, spaces, wildcards where
    /// none may be).
    #[error("invalid subject `{0}`")]
    InvalidSubject(String),
    /// A request no subscriber heard.
    #[error("no responders on `{0}`")]
    NoResponders(String),
    /// No reply came within the request's timeout.
    #[error("no reply on `{subject}` within {ms} ms")]
    NoReply {
        /// The request's subject.
        subject: String,
        /// The timeout.
        ms: u128,
    },
    /// The in-memory broker dropped the reply subscription.
    #[error("the broker closed the reply subscription")]
    ReplyClosed,
    /// A body larger than the broker (or the host's buffer) takes.
    #[error("the message body is {bytes} bytes; at most {limit} are allowed")]
    TooLarge {
        /// Bytes the body had when it was refused (at least this many).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The broker cannot be reached (connecting failed or timed out).
    #[error("{0}")]
    Unreachable(String),
    /// The broker failed (the NATS server, the connection), with what
    /// failed in the message.
    #[error("{0}")]
    Broker(String),
}

/// Checks a subject the guest publishes to: non-empty tokens, no spaces,
/// wildcards only in subscriptions.
pub(crate) fn check_subject(subject: &str, wildcards: bool) -> Result<(), MessagingError> {
    let tokens_ok = subject.split('.').all(|t| {
        !t.is_empty()
            && !t.chars().any(char::is_whitespace)
            && (wildcards || (t != "*" && t != ">"))
    });
    if subject.is_empty() || !tokens_ok {
        return Err(MessagingError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

struct Subscriber {
    pattern: String,
    queue: Option<String>,
    sender: mpsc::Sender<Message>,
}

/// The in-process broker.
#[derive(Default)]
pub struct MemoryBroker {
    subscribers: Mutex<Vec<Subscriber>>,
    next_inbox: AtomicU64,
    round_robin: AtomicU64,
}

/// Messages a slow memory subscriber may have queued before new ones are
/// dropped (as a NATS server drops for a slow consumer).
const SUBSCRIPTION_BUFFER: usize = 1024;

impl MemoryBroker {
    fn deliver(&self, message: Message) -> usize {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| !s.sender.is_closed());
        let matching: Vec<&Subscriber> = subscribers
            .iter()
            .filter(|s| subject_matches(&s.pattern, &message.subject))
            .collect();
        let mut delivered = 0;
        let mut groups: Vec<&str> = Vec::new();
        for subscriber in &matching {
            match &subscriber.queue {
                None => delivered += subscriber.sender.try_send(message.clone()).is_ok() as usize,
                Some(queue) if !groups.contains(&queue.as_str()) => groups.push(queue),
                Some(_) => {}
            }
        }
        for group in groups {
            let members: Vec<&&Subscriber> = matching
                .iter()
                .filter(|s| s.queue.as_deref() == Some(group))
                .collect();
            let turn = self.round_robin.fetch_add(1, Ordering::Relaxed) as usize;
            let member = members[turn % members.len()];
            delivered += member.sender.try_send(message.clone()).is_ok() as usize;
        }
        delivered
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, message: Message) -> Result<(), MessagingError> {
        check_subject(&message.subject, false)?;
        self.deliver(message);
        Ok(())
    }

    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, MessagingError> {
        check_subject(&subject, false)?;
        let inbox = format!(
            "_INBOX.memory.{}",
            self.next_inbox.fetch_add(1, Ordering::Relaxed)
        );
        let mut replies = self.subscribe(inbox.clone(), None).await?;
        let delivered = self.deliver(Message {
            subject: subject.clone(),
            body,
            reply_to: Some(inbox),
        });
        if delivered == 0 {
            return Err(MessagingError::NoResponders(subject));
        }
        match tokio::time::timeout(timeout, replies.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(MessagingError::ReplyClosed),
            Err(_) => Err(MessagingError::NoReply {
                subject,
                ms: timeout.as_millis(),
            }),
        }
    }

    async fn subscribe(
        &self,
        subject: String,
        queue: Option<String>,
    ) -> Result<Subscription, MessagingError> {
        check_subject(&subject, true)?;
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Subscriber {
                pattern: subject,
                queue,
                sender,
            });
        Ok(receiver)
    }
}

/// A NATS-backed broker (core NATS, not JetStream).
#[cfg(feature = "nats")]
pub struct NatsBroker {
    pub(crate) connection: NatsConnection,
}

#[cfg(feature = "nats")]
fn nats_error(error: impl std::fmt::Display) -> MessagingError {
    MessagingError::Broker(format!("nats: {error}"))
}

/// Refuses a body over the server's `max_payload` before sending it (the
/// server would close the connection over it).
#[cfg(feature = "nats")]
fn check_payload(client: &async_nats::Client, bytes: usize) -> Result<(), MessagingError> {
    let limit = client.server_info().max_payload;
    if limit > 0 && bytes > limit {
        return Err(MessagingError::TooLarge { bytes, limit });
    }
    Ok(())
}

#[cfg(feature = "nats")]
#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, message: Message) -> Result<(), MessagingError> {
        check_subject(&message.subject, false)?;
        // Publishing only queues; the flush waits until the message is
        // written to the server's socket (core NATS sends no acknowledgement),
        // and the timeout bounds both during an outage.
        let publish = async {
            let client = self
                .connection
                .client()
                .await
                .map_err(|e| MessagingError::Unreachable(e.to_string()))?;
            check_payload(client, message.body.len())?;
            let result = match message.reply_to {
                Some(reply) => {
                    client
                        .publish_with_reply(message.subject, reply, message.body)
                        .await
                }
                None => client.publish(message.subject, message.body).await,
            };
            result.map_err(nats_error)?;
            client.flush().await.map_err(nats_error)
        };
        tokio::time::timeout(self.connection.timeout(), publish)
            .await
            .map_err(|_| {
                MessagingError::Unreachable(
                    "nats: the message could not be written to the server in time".into(),
                )
            })?
    }

    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, MessagingError> {
        check_subject(&subject, false)?;
        let client = self
            .connection
            .client()
            .await
            .map_err(|e| MessagingError::Unreachable(e.to_string()))?;
        check_payload(client, body.len())?;
        let request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(timeout));
        let reply = client
            .send_request(subject.clone(), request)
            .await
            .map_err(|error| {
                use async_nats::RequestErrorKind;
                // The same kinds the memory broker reports.
                match error.kind() {
                    RequestErrorKind::NoResponders => MessagingError::NoResponders(subject),
                    RequestErrorKind::TimedOut => MessagingError::NoReply {
                        subject,
                        ms: timeout.as_millis(),
                    },
                    _ => nats_error(error),
                }
            })?;
        Ok(Message {
            subject: reply.subject.to_string(),
            body: reply.payload,
            reply_to: reply.reply.map(|r| r.to_string()),
        })
    }

    async fn subscribe(
        &self,
        subject: String,
        queue: Option<String>,
    ) -> Result<Subscription, MessagingError> {
        check_subject(&subject, true)?;
        let client = self
            .connection
            .client()
            .await
            .map_err(|e| MessagingError::Unreachable(e.to_string()))?;
        let mut subscriber = match queue {
            Some(queue) => client.queue_subscribe(subject, queue).await,
            None => client.subscribe(subject).await,
        }
        .map_err(nats_error)?;
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let message = Message {
                    subject: message.subject.to_string(),
                    body: message.payload,
                    reply_to: message.reply.map(|r| r.to_string()),
                };
                if sender.send(message).await.is_err() {
                    break;
                }
            }
            // Dropping `subscriber` unsubscribes.
        });
        Ok(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
    }

    #[tokio::test]
    async fn queue_groups_share_and_plain_subscribers_all_receive() {
        let broker = MemoryBroker::default();
        let mut a = broker
            .subscribe("jobs".into(), Some("w".into()))
            .await
            .unwrap();
        let mut b = broker
            .subscribe("jobs".into(), Some("w".into()))
            .await
            .unwrap();
        let mut all = broker.subscribe("jobs".into(), None).await.unwrap();
        for i in 0..10u8 {
            let message = Message {
                subject: "jobs".into(),
                body: Bytes::from(vec![i]),
                reply_to: None,
            };
            broker.publish(message).await.unwrap();
        }
        let (mut got_a, mut got_b, mut got_all) = (0, 0, 0);
        while a.try_recv().is_ok() {
            got_a += 1;
        }
        while b.try_recv().is_ok() {
            got_b += 1;
        }
        while all.try_recv().is_ok() {
            got_all += 1;
        }
        assert_eq!((got_a + got_b, got_all), (10, 10));
        assert!(got_a > 0 && got_b > 0, "{got_a} / {got_b}");
    }

    #[tokio::test]
    async fn request_without_responders_fails_at_once() {
        let broker = MemoryBroker::default();
        let err = broker
            .request("nobody".into(), Bytes::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err, MessagingError::NoResponders("nobody".into()));
    }
}
