//! The NATS JetStream sink (async-nats, the official client): every event
//! a message on `subject`, stored exactly once in the stream that takes it.
//!
//! - One event per message (no grouping: deduplication is per message, and
//!   a batch retried after a restart need not be the batch first sent), in
//!   the `json` style, with a `Nats-Msg-Id` header.
//! - An event counts as delivered only when the stream acknowledged its
//!   message (the JetStream publish ack: stored, or known as a duplicate).
//! - The message id is a hash of the event's JSON text: the same for every
//!   retry and after a Janus restart (the spool keeps the text), different
//!   for any two events (Janus's events differ at least in their
//!   microsecond `timestamp` and their ids). The stream drops a message
//!   whose id it has stored within its `duplicate_window`, so a retry of a
//!   message whose ack was lost is stored once. Why not the spool's
//!   sequence number: events that are not spooled (memory only) reuse
//!   sequence numbers after a restart, and a reused id within the window
//!   would make the stream drop a new event as a duplicate.
//! - With `create_stream`, a missing `stream` is created (file storage,
//!   `subject`, `duplicate_window_ms`); an existing one is used as it is, and
//!   its window is shown in `info` (`broker`), and logged when it is shorter
//!   than a retry's horizon without an outage.

use std::time::Duration;

use async_nats::jetstream;
use serde_json::{Map, Value, json};

use super::{Client, Failure, Format, Message};
use crate::config::{JsonStyle, NatsConfig};
use crate::sinks::json::body;
use crate::sinks::tls::{TlsSetupError, client_config};

/// The message id of an event: `lcevh-` and the first 128 bits of the
/// SHA-256 of its JSON text, in hex.
pub fn message_id(event: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, event.as_bytes());
    let mut id = String::with_capacity(38);
    id.push_str("lcevh-");
    for b in &digest.as_ref()[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// One message per event, each with its id.
pub struct NatsFormat {
    pub json: JsonStyle,
}

impl Format for NatsFormat {
    fn messages(&self, batch: &[&str]) -> Result<Vec<Message>, String> {
        batch
            .iter()
            .map(|e| {
                Ok(Message {
                    body: body(&[e], false, self.json)?,
                    events: 1,
                    route: None,
                    id: Some(message_id(e)),
                })
            })
            .collect()
    }
}

/// What the connection's event callback reports.
type Events = tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>;

pub struct Nats {
    config: NatsConfig,
    tls: Option<rustls::ClientConfig>,
    open: Option<(async_nats::Client, jetstream::Context, Events)>,
    /// The stream's duplicate window, as the server last said.
    window: std::sync::Arc<std::sync::Mutex<Option<Duration>>>,
    /// How long after its first attempt an event may still be retried
    /// without an outage (warned about when the window is shorter).
    horizon: Duration,
}

impl Nats {
    /// The client (TLS files are read here: a bad one is an init error).
    pub fn new(config: NatsConfig) -> Result<Nats, TlsSetupError> {
        let tls = match &config.tls {
            None => None,
            Some(options) => Some(client_config(options)?),
        };
        let horizon = config.delivery.backoff_max + config.delivery.timeout;
        Ok(Nats {
            config,
            tls,
            open: None,
            window: Default::default(),
            horizon,
        })
    }

    /// Facts for `info`.
    pub fn describe(config: &NatsConfig) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("broker_url".into(), json!(config.url));
        m.insert("subject".into(), json!(config.subject));
        m.insert("stream".into(), json!(config.stream));
        m
    }

    /// Connects, and finds (or creates) the stream.
    async fn open(&self) -> Result<(async_nats::Client, jetstream::Context, Events), String> {
        let c = &self.config;
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("lifecycleevh {}", c.delivery.name))
            .connection_timeout(c.delivery.timeout)
            // Reconnecting is the driver's (with its backoff, and its
            // `connected`): a lost connection is reported, not retried.
            .max_reconnects(Some(1))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            });
        if let Some((user, password)) = c.username.as_ref().map(|u| {
            let p = c.password.as_ref().map_or(String::new(), |p| p.0.clone());
            (u.clone(), p)
        }) {
            options = options.user_and_password(user, password);
        }
        if let Some(token) = &c.token {
            options = options.token(token.0.clone());
        }
        if let Some(tls) = &self.tls {
            options = options.require_tls(true).tls_client_config(tls.clone());
        }
        let address = format!("nats://{}:{}", bracket(&c.host), c.port);
        let client = options.connect(address).await.map_err(|e| e.to_string())?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(c.delivery.timeout);
        if let Some(name) = &c.stream {
            let stream = match js.get_stream(name).await {
                Ok(s) => s,
                Err(e) if c.create_stream => {
                    let created = js
                        .create_stream(jetstream::stream::Config {
                            name: name.clone(),
                            subjects: vec![c.subject.clone()],
                            storage: jetstream::stream::StorageType::File,
                            duplicate_window: c.duplicate_window,
                            ..Default::default()
                        })
                        .await;
                    created.map_err(|c| {
                        format!("the stream {name:?} is missing ({e}) and creating it failed: {c}")
                    })?
                }
                Err(e) => return Err(format!("the stream {name:?}: {e}")),
            };
            let window = stream.cached_info().config.duplicate_window;
            let was = self
                .window
                .lock()
                .map(|mut w| w.replace(window))
                .ok()
                .flatten();
            if window < self.horizon && was != Some(window) {
                crate::jlog!(
                    Warn,
                    "{}: the stream {name:?} remembers message ids for {} ms, less than backoff_max_ms + timeout_ms ({} ms): a late retry can be stored twice",
                    c.delivery.name,
                    window.as_millis(),
                    self.horizon.as_millis()
                );
            }
        }
        Ok((client, js, events))
    }

    /// The stream's duplicate window, as the server last said.
    fn window(&self) -> Option<Duration> {
        self.window.lock().ok().and_then(|w| *w)
    }

    /// The server's name and version.
    fn server(client: &async_nats::Client) -> String {
        let info = client.server_info();
        format!("NATS {} ({})", info.version, info.server_name)
    }
}

/// An IPv6 address in brackets, for a URL.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl Client for Nats {
    fn is_connected(&self) -> bool {
        self.open.as_ref().is_some_and(|(client, _, _)| {
            client.connection_state() == async_nats::connection::State::Connected
        })
    }

    async fn connect(&mut self) -> Result<String, String> {
        self.close().await;
        let open = self.open().await?;
        let mut server = Nats::server(&open.0);
        if let (Some(stream), Some(window)) = (&self.config.stream, self.window()) {
            server.push_str(&format!(
                ", stream {stream} (duplicate window {} s)",
                window.as_secs()
            ));
        }
        self.open = Some(open);
        Ok(server)
    }

    async fn lost(&mut self) -> String {
        let Some((_, _, events)) = self.open.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match events.recv().await {
                Some(async_nats::Event::Disconnected) => return "disconnected".into(),
                Some(async_nats::Event::Closed) | None => return "the connection closed".into(),
                Some(async_nats::Event::LameDuckMode) => {
                    return "the server is shutting down (lame duck mode)".into();
                }
                Some(_) => {}
            }
        }
    }

    async fn publish(
        &mut self,
        messages: &[Message],
        until: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let Some((_, js, _)) = self.open.as_ref() else {
            return Err(Failure::new(0, "not connected", true));
        };
        let subject = self.config.subject.clone();
        let max_payload = self.open.as_ref().map_or(usize::MAX, |(client, _, _)| {
            client.server_info().max_payload
        });
        // All published at once, then the acks awaited in order.
        let mut acks = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            // The server would close the connection on it, again and again:
            // an event it can never take is said and skipped, not retried
            // forever ahead of everything after it.
            if m.body.len() > max_payload {
                crate::jlog!(
                    Err,
                    "{}: an event of {} bytes is larger than the server's max_payload ({max_payload} bytes): not sent",
                    self.config.delivery.name,
                    m.body.len()
                );
                acks.push(None);
                continue;
            }
            let mut headers = async_nats::HeaderMap::new();
            if let Some(id) = &m.id {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            }
            let sent = tokio::time::timeout_at(
                until,
                js.publish_with_headers(subject.clone(), headers, m.body.clone().into()),
            )
            .await;
            match sent {
                Ok(Ok(ack)) => acks.push(Some(ack)),
                Ok(Err(e)) => {
                    return self
                        .settle(acks, i, format!("publishing: {e}"), until)
                        .await;
                }
                Err(_) => {
                    return self
                        .settle(acks, i, "publishing timed out".into(), until)
                        .await;
                }
            }
        }
        self.settle(acks, messages.len(), String::new(), until)
            .await
    }

    async fn close(&mut self) {
        if let Some((client, _, _)) = self.open.take() {
            let _ = tokio::time::timeout(Duration::from_millis(200), client.drain()).await;
        }
    }
}

impl Nats {
    /// Awaits the acks of the messages published (in order; None: skipped);
    /// `sent` of them were, and `why` stopped the rest (empty: nothing did).
    async fn settle(
        &self,
        acks: Vec<Option<jetstream::context::PublishAckFuture>>,
        sent: usize,
        why: String,
        until: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let mut confirmed = 0;
        for ack in acks {
            // Skipped (too large): done with.
            let Some(ack) = ack else {
                confirmed += 1;
                continue;
            };
            match tokio::time::timeout_at(until, ack).await {
                Ok(Ok(_)) => confirmed += 1,
                Ok(Err(e)) => {
                    return Err(Failure::new(confirmed, format!("no ack: {e}"), false));
                }
                Err(_) => return Err(Failure::new(confirmed, "no ack in time", true)),
            }
        }
        if why.is_empty() && confirmed == sent {
            Ok(())
        } else {
            Err(Failure::new(confirmed, why, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = r#"{"type":1,"timestamp":1,"session_id":7}"#;
        let b = r#"{"type":1,"timestamp":2,"session_id":7}"#;
        assert_eq!(message_id(a), message_id(a));
        assert_ne!(message_id(a), message_id(b));
        assert_eq!(message_id(a).len(), 38);
        assert!(message_id(a).starts_with("lcevh-"));
        let m = NatsFormat {
            json: JsonStyle::Indented,
        }
        .messages(&[a, b])
        .unwrap();
        // The id is the event's, whatever the body's style.
        assert_eq!(m[0].id.as_deref(), Some(message_id(a).as_str()));
        assert!(String::from_utf8_lossy(&m[1].body).contains("\n   \"timestamp\": 2"));
    }
}
