//! The RabbitMQ sink (AMQP 0-9-1, with amqprs): what Janus's rabbitmqevh
//! publishes, made durable.
//!
//! - Bodies as rabbitmqevh's: with `grouping` a JSON array of the batch's
//!   events (rabbitmqevh groups up to 100), otherwise one event per
//!   message; `content_type` `application/json`; to `exchange` (none: the
//!   default exchange) with `route_key`.
//! - Unlike rabbitmqevh: messages are persistent (`delivery_mode` 2), the
//!   channel is in confirm mode, and an event counts as delivered only when
//!   the broker has confirmed its message (`basic.ack`): RabbitMQ confirms
//!   a persistent message routed to a durable queue once it is written to
//!   disk. Messages are published `mandatory`, so that one no queue takes
//!   is returned (`basic.return`) and counts as a failure, kept and retried,
//!   instead of being confirmed and dropped.
//! - The exchange is declared durable, of `exchange_type`; with
//!   `queue_name`, a durable queue of that name is declared and bound to
//!   the exchange with `route_key`. rabbitmqevh declares both non-durable:
//!   an existing non-durable exchange or queue of the same name makes the
//!   declaration fail (`PRECONDITION_FAILED`), which the error says.
//! - Each message carries its delivery tag as `message_id`, to match a
//!   returned message with its confirmation.

use std::sync::Arc;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicPublishArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::tls::TlsAdaptor;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{Client, Failure, Format, Message};
use crate::config::{JsonStyle, RabbitMqConfig};
use crate::sinks::json::body;
use crate::sinks::tls::{TlsSetupError, client_config};

/// How long a failed declaration waits for the broker's reason.
const CLOSE_REASON_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// rabbitmqevh's bodies: one event, or the batch as an array.
pub struct RabbitMqFormat {
    pub grouping: bool,
    pub json: JsonStyle,
}

impl Format for RabbitMqFormat {
    fn messages(&self, batch: &[&str]) -> Result<Vec<Message>, String> {
        let one = |events: &[&str], many: bool| -> Result<Message, String> {
            Ok(Message {
                body: body(events, many, self.json)?,
                events: events.len(),
                route: None,
                id: None,
            })
        };
        if self.grouping {
            Ok(vec![one(batch, true)?])
        } else {
            batch.iter().map(|e| one(&[e], false)).collect()
        }
    }
}

/// What the broker tells the client, from amqprs's callbacks.
#[derive(Debug)]
enum Event {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
    },
    /// A message no queue took (its `message_id`: the delivery tag).
    Returned {
        tag: Option<u64>,
        why: String,
    },
    /// The connection or the channel is gone, and why.
    Closed(String),
}

pub struct RabbitMq {
    config: RabbitMqConfig,
    tls: Option<TlsAdaptor>,
    open: Option<Open>,
}

/// An open connection: its one channel (in confirm mode), the callbacks'
/// events, and the delivery tag of the next message.
struct Open {
    connection: Connection,
    channel: Channel,
    events: mpsc::UnboundedReceiver<Event>,
    next_tag: u64,
}

impl RabbitMq {
    /// The client (TLS files are read here: a bad one is an init error).
    pub fn new(config: RabbitMqConfig) -> Result<RabbitMq, TlsSetupError> {
        let tls = match &config.tls {
            None => None,
            Some(options) => {
                let tls = client_config(options)?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
                Some(TlsAdaptor::new(connector, config.host.clone()))
            }
        };
        Ok(RabbitMq {
            config,
            tls,
            open: None,
        })
    }

    /// `amqp://user@host:port/vhost` (no password), for `info` and errors.
    pub fn shown(config: &RabbitMqConfig) -> String {
        let scheme = if config.tls.is_some() {
            "amqps"
        } else {
            "amqp"
        };
        let vhost: String = url::form_urlencoded::byte_serialize(config.vhost.as_bytes()).collect();
        format!(
            "{scheme}://{}@{}:{}/{vhost}",
            config.username, config.host, config.port
        )
    }

    /// Facts for `info`.
    pub fn describe(config: &RabbitMqConfig) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("broker_url".into(), json!(RabbitMq::shown(config)));
        m.insert("exchange".into(), json!(config.exchange));
        m.insert("exchange_type".into(), json!(config.exchange_type));
        m.insert("route_key".into(), json!(config.route_key));
        m.insert("queue_name".into(), json!(config.queue_name));
        m.insert("grouping".into(), json!(config.grouping));
        m
    }

    async fn open(&self) -> Result<Open, String> {
        let c = &self.config;
        let mut args = OpenConnectionArguments::new(&c.host, c.port, &c.username, &c.password.0);
        args.virtual_host(&c.vhost)
            .heartbeat(c.heartbeat)
            .connection_name(&format!("lifecycleevh {}", c.delivery.name));
        if let Some(tls) = &self.tls {
            args.tls_adaptor(tls.clone());
        }
        let connection = Connection::open(&args).await.map_err(|e| e.to_string())?;
        let (tx, events) = mpsc::unbounded_channel();
        let closed = |e: amqprs::error::Error| e.to_string();
        connection
            .register_callback(Callbacks(tx.clone()))
            .await
            .map_err(closed)?;
        // The network failing (the broker killed, a cable cut) has no
        // callback of its own: a task waits for it.
        let watched = connection.clone();
        let watcher = tx.clone();
        tokio::spawn(async move {
            let failed = watched.listen_network_io_failure().await;
            let why = if failed {
                "the network connection failed"
            } else {
                "the connection was closed"
            };
            let _ = watcher.send(Event::Closed(why.into()));
        });
        let channel = connection.open_channel(None).await.map_err(closed)?;
        channel
            .register_callback(Callbacks(tx.clone()))
            .await
            .map_err(closed)?;
        let mut open = Open {
            connection,
            channel,
            events,
            next_tag: 1,
        };
        if let Err(e) = self.declare(&open.channel).await {
            // The broker closes the channel with the reason (a mismatch
            // with an existing exchange or queue): say that, not just
            // "closed". The close comes through the callbacks' channel,
            // which may lag the declaration's own error a moment.
            let reason = tokio::time::timeout(CLOSE_REASON_WAIT, open.closed_reason())
                .await
                .ok()
                .flatten()
                .unwrap_or(e);
            open.shut().await;
            return Err(reason);
        }
        Ok(open)
    }

    /// The exchange and queue, then confirm mode.
    async fn declare(&self, channel: &Channel) -> Result<(), String> {
        let c = &self.config;
        if let Some(exchange) = &c.exchange {
            let mut args = ExchangeDeclareArguments::new(exchange, &c.exchange_type);
            args.durable(true);
            channel
                .exchange_declare(args)
                .await
                .map_err(|e| format!("declaring the exchange {exchange:?}: {e}"))?;
        }
        if let Some(queue) = &c.queue_name {
            channel
                .queue_declare(QueueDeclareArguments::durable_client_named(queue))
                .await
                .map_err(|e| format!("declaring the queue {queue:?}: {e}"))?;
            if let Some(exchange) = &c.exchange {
                channel
                    .queue_bind(QueueBindArguments::new(queue, exchange, &c.route_key))
                    .await
                    .map_err(|e| format!("binding the queue {queue:?} to {exchange:?}: {e}"))?;
            }
        }
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .map_err(|e| format!("turning publisher confirms on: {e}"))
    }
}

impl Open {
    /// Why the broker closed the channel or connection, once it says so.
    async fn closed_reason(&mut self) -> Option<String> {
        while let Some(e) = self.events.recv().await {
            if let Event::Closed(why) = e {
                return Some(why);
            }
        }
        None
    }

    async fn shut(self) {
        if self.channel.is_open() {
            let _ = self.channel.close().await;
        }
        if self.connection.is_open() {
            let _ = self.connection.close().await;
        }
    }
}

/// Where each message of an attempt stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Confirm {
    Waiting,
    Acked,
    Refused(String),
}

impl Client for RabbitMq {
    fn is_connected(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.connection.is_open() && o.channel.is_open())
    }

    async fn connect(&mut self) -> Result<String, String> {
        if let Some(old) = self.open.take() {
            old.shut().await;
        }
        let open = self.open().await?;
        let server = open.connection.server_properties();
        let broker = format!("{} {}", server.product(), server.version());
        self.open = Some(open);
        Ok(broker)
    }

    async fn lost(&mut self) -> String {
        let Some(open) = self.open.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match open.events.recv().await {
                Some(Event::Closed(why)) => return why,
                None => return "the connection's callbacks are gone".into(),
                // Confirmations of an attempt given up on: nobody waits for them.
                Some(_) => {}
            }
        }
    }

    async fn publish(
        &mut self,
        messages: &[Message],
        until: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let Some(open) = self.open.as_mut() else {
            return Err(Failure::new(0, "not connected", true));
        };
        let c = &self.config;
        let exchange = c.exchange.as_deref().unwrap_or("");
        let mut args = BasicPublishArguments::new(exchange, &c.route_key);
        args.mandatory(true);
        let first = open.next_tag;
        let mut state = vec![Confirm::Waiting; messages.len()];
        for m in messages {
            let tag = open.next_tag;
            open.next_tag += 1;
            let mut props = BasicProperties::default();
            props
                .with_content_type("application/json")
                .with_persistence(true)
                .with_message_id(&tag.to_string());
            if let Err(e) = open
                .channel
                .basic_publish(props, m.body.clone(), args.clone())
                .await
            {
                return Err(Failure::new(
                    confirmed(&state),
                    format!("publishing: {e}"),
                    true,
                ));
            }
        }
        let index = |tag: u64| {
            tag.checked_sub(first)
                .map(|i| i as usize)
                .filter(|i| *i < messages.len())
        };
        loop {
            // Done when every message is settled, or the first unconfirmed
            // one was refused (what follows it is retried with it).
            match state.iter().find(|s| **s != Confirm::Acked) {
                None => return Ok(()),
                Some(Confirm::Refused(why)) => {
                    return Err(Failure::new(confirmed(&state), why.clone(), false));
                }
                Some(_) => {}
            }
            let event = tokio::select! {
                e = open.events.recv() => e,
                _ = tokio::time::sleep_until(until) => {
                    return Err(Failure::new(confirmed(&state), "no confirmation in time", true));
                }
            };
            match event {
                None => {
                    return Err(Failure::new(
                        confirmed(&state),
                        "the connection's callbacks are gone",
                        true,
                    ));
                }
                Some(Event::Closed(why)) => {
                    return Err(Failure::new(confirmed(&state), why, true));
                }
                Some(Event::Ack { tag, multiple }) => {
                    settle(&mut state, first, tag, multiple, |s| {
                        // A returned message is acked too, after its return.
                        if *s == Confirm::Waiting {
                            *s = Confirm::Acked;
                        }
                    })
                }
                Some(Event::Nack { tag, multiple }) => {
                    settle(&mut state, first, tag, multiple, |s| {
                        *s = Confirm::Refused("the broker refused a message (basic.nack)".into())
                    })
                }
                Some(Event::Returned { tag, why }) => {
                    if let Some(i) = tag.and_then(index) {
                        state[i] = Confirm::Refused(why);
                    }
                }
            }
        }
    }

    async fn close(&mut self) {
        if let Some(open) = self.open.take() {
            open.shut().await;
        }
    }
}

/// Messages at the start of the attempt that the broker confirmed.
fn confirmed(state: &[Confirm]) -> usize {
    state.iter().take_while(|s| **s == Confirm::Acked).count()
}

/// Applies a confirmation of `tag` (and, with `multiple`, of every tag
/// before it) to the attempt whose first message had tag `first`.
fn settle(state: &mut [Confirm], first: u64, tag: u64, multiple: bool, f: impl Fn(&mut Confirm)) {
    let Some(last) = tag.checked_sub(first) else {
        return; // an earlier attempt's
    };
    let last = last as usize;
    let from = if multiple { 0 } else { last };
    for s in state.iter_mut().take(last + 1).skip(from) {
        f(s);
    }
}

/// amqprs's callbacks, forwarded to the client as [`Event`]s.
struct Callbacks(mpsc::UnboundedSender<Event>);

#[async_trait::async_trait]
impl ConnectionCallback for Callbacks {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Event::Closed(format!(
            "the broker closed the connection: {close}"
        )));
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, _reason: String) {}
    async fn unblocked(&mut self, _: &Connection) {}
    async fn secret_updated(&mut self, _: &Connection) {}
}

#[async_trait::async_trait]
impl ChannelCallback for Callbacks {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Event::Closed(format!(
            "the broker closed the channel: {close}"
        )));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Event::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }
    async fn publish_return(
        &mut self,
        _: &Channel,
        ret: Return,
        props: BasicProperties,
        _content: Vec<u8>,
    ) {
        let _ = self.0.send(Event::Returned {
            tag: props.message_id().and_then(|id| id.parse().ok()),
            why: format!(
                "no queue took the message ({} {}): bind a queue to the exchange with the route_key, or set queue_name",
                ret.reply_code(),
                ret.reply_text()
            ),
        });
    }
}
