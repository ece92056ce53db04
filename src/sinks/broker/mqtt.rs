//! The MQTT sink (3.1.1 and 5, with rumqttc): what Janus's mqttevh
//! publishes, made durable.
//!
//! - Messages as mqttevh's: one event per message, with mqttevh's
//!   `eventtype` field added (`"Sessions"`, `"Handles"`, ...), on `topic`
//!   or, with `addevent`, on `<topic>/<type>` (`/janus/events/sessions`), in
//!   the `json` style.
//! - QoS 1 by default (2 if asked; 0 is refused: it has no
//!   acknowledgement); an event counts as delivered only on its message's
//!   PUBACK (QoS 2: PUBCOMP). With MQTT 5, a PUBACK whose reason code is an
//!   error counts as a refusal ("no matching subscribers" is a success).
//! - Every connection starts clean (clean session / clean start): a broker
//!   keeping an old session's QoS 2 state could otherwise take a new
//!   message for a duplicate of an old one with the same packet id. What a
//!   lost connection left unacknowledged is published again by the runner,
//!   not by the client.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Client, Failure, Format, Message};
use crate::config::{JsonStyle, MqttConfig, MqttVersion};
use crate::janus::types;
use crate::sinks::json::{format_json, parse};
use crate::sinks::tls::{TlsSetupError, client_config};

/// mqttevh's label (for the topic) and name (its `eventtype` field) of an
/// event type, as Janus's `janus_events_type_to_label` and `_to_name` give them.
fn label_and_name(ty: u64) -> Option<(&'static str, &'static str)> {
    let ty = u32::try_from(ty).ok()?;
    Some(match ty {
        types::SESSION => ("sessions", "Sessions"),
        types::HANDLE => ("handles", "Handles"),
        types::EXTERNAL => ("external", "External"),
        types::JSEP => ("jsep", "Jsep"),
        types::WEBRTC => ("webrtc", "WebRTC"),
        types::MEDIA => ("media", "Media"),
        types::PLUGIN => ("plugins", "Plugins"),
        types::TRANSPORT => ("transports", "Transports"),
        types::CORE => ("core", "Core"),
        _ => return None,
    })
}

/// mqttevh's messages: one per event, with `eventtype`, on its topic.
pub struct MqttFormat {
    pub json: JsonStyle,
    pub topic: String,
    pub addevent: bool,
}

impl Format for MqttFormat {
    fn messages(&self, batch: &[&str]) -> Result<Vec<Message>, String> {
        batch
            .iter()
            .map(|text| {
                let mut event = parse(text)?;
                let kind = event["type"].as_u64().and_then(label_and_name);
                if let (Some((_, name)), Value::Object(m)) = (kind, &mut event) {
                    m.insert("eventtype".into(), json!(name));
                }
                let topic = match (self.addevent, kind) {
                    (false, _) => self.topic.clone(),
                    (true, Some((label, _))) => format!("{}/{label}", self.topic),
                    // mqttevh formats a type it has no label for as "(null)".
                    (true, None) => format!("{}/(null)", self.topic),
                };
                Ok(Message {
                    body: format_json(&event, self.json),
                    events: 1,
                    route: Some(topic),
                    id: None,
                })
            })
            .collect()
    }
}

/// What the event loop said, the same for both protocol versions.
enum Note {
    /// A publish went out with this packet id.
    Sent(u16),
    /// The broker took the message with this packet id (PUBACK, or PUBCOMP
    /// at QoS 2).
    Done(u16),
    /// The broker refused it (an MQTT 5 reason code).
    Refused(u16, String),
    /// Anything else (CONNACK, PINGRESP, PUBREC, ...).
    Other,
}

/// One connection, 3.1.1 or 5 (boxed: an event loop is a kilobyte).
enum Session {
    V4(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

impl Session {
    async fn poll(&mut self) -> Result<Note, String> {
        match self {
            Session::V4(_, events) => {
                use rumqttc::{Event, Outgoing, Packet};
                Ok(match events.poll().await.map_err(|e| e.to_string())? {
                    Event::Outgoing(Outgoing::Publish(pkid)) => Note::Sent(pkid),
                    Event::Incoming(Packet::PubAck(a)) => Note::Done(a.pkid),
                    Event::Incoming(Packet::PubComp(c)) => Note::Done(c.pkid),
                    _ => Note::Other,
                })
            }
            Session::V5(_, events) => {
                use rumqttc::Outgoing;
                use rumqttc::v5::Event;
                use rumqttc::v5::mqttbytes::v5::{
                    Packet, PubAckReason, PubCompReason, PubRecReason,
                };
                Ok(match events.poll().await.map_err(|e| e.to_string())? {
                    Event::Outgoing(Outgoing::Publish(pkid)) => Note::Sent(pkid),
                    Event::Incoming(Packet::PubAck(a)) => match a.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                            Note::Done(a.pkid)
                        }
                        other => Note::Refused(a.pkid, format!("PUBACK {other:?}")),
                    },
                    Event::Incoming(Packet::PubRec(r)) => match r.reason {
                        PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Note::Other,
                        other => Note::Refused(r.pkid, format!("PUBREC {other:?}")),
                    },
                    Event::Incoming(Packet::PubComp(c)) => match c.reason {
                        PubCompReason::Success => Note::Done(c.pkid),
                        other => Note::Refused(c.pkid, format!("PUBCOMP {other:?}")),
                    },
                    _ => Note::Other,
                })
            }
        }
    }

    /// Hands a message to the event loop (never waits: the request channel
    /// holds a whole attempt).
    fn publish(&self, topic: &str, qos: u8, retain: bool, body: &[u8]) -> Result<(), String> {
        let payload = body.to_vec();
        match self {
            Session::V4(client, _) => {
                let qos = if qos == 2 {
                    rumqttc::QoS::ExactlyOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                };
                client.try_publish(topic, qos, retain, payload)
            }
            .map_err(|e| e.to_string()),
            Session::V5(client, _) => {
                let qos = if qos == 2 {
                    rumqttc::v5::mqttbytes::QoS::ExactlyOnce
                } else {
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce
                };
                client
                    .try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn disconnect(&mut self) {
        let _ = match self {
            Session::V4(client, _) => client.try_disconnect().map_err(|e| e.to_string()),
            Session::V5(client, _) => client.try_disconnect().map_err(|e| e.to_string()),
        };
        // The DISCONNECT goes out with the next poll (within a moment, or
        // never if the broker is gone).
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), self.poll()).await;
    }
}

/// MQTT's largest packet: a remaining length of at most 268435455 bytes.
const MQTT_MAX_PACKET: usize = 268_435_455;

pub struct Mqtt {
    config: MqttConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: Option<Session>,
}

impl Mqtt {
    /// The client (TLS files are read here: a bad one is an init error).
    pub fn new(config: MqttConfig) -> Result<Mqtt, TlsSetupError> {
        let tls = match &config.tls {
            None => None,
            Some(options) => Some(Arc::new(client_config(options)?)),
        };
        Ok(Mqtt {
            config,
            tls,
            session: None,
        })
    }

    /// Facts for `info`.
    pub fn describe(config: &MqttConfig) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("broker_url".into(), json!(config.url));
        m.insert(
            "mqtt_version".into(),
            json!(match config.version {
                MqttVersion::V311 => "3.1.1",
                MqttVersion::V5 => "5",
            }),
        );
        m.insert("client_id".into(), json!(config.client_id));
        m.insert("topic".into(), json!(config.topic));
        m.insert("addevent".into(), json!(config.addevent));
        m.insert("qos".into(), json!(config.qos));
        m
    }

    fn session(&self) -> Session {
        let c = &self.config;
        // A whole attempt fits in the request channel (never full: try_publish).
        let capacity = c.delivery.max_batch + 16;
        let inflight = u16::try_from(c.delivery.max_batch).unwrap_or(u16::MAX);
        let transport = || match &self.tls {
            None => rumqttc::Transport::tcp(),
            Some(tls) => {
                rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.clone()))
            }
        };
        match c.version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(&c.client_id, &c.host, c.port);
                // Outgoing: as large as MQTT allows (rumqttc's own default,
                // 10 KiB, is less than some of Janus's events).
                o.set_max_packet_size(64 << 10, MQTT_MAX_PACKET);
                o.set_keep_alive(c.keep_alive)
                    .set_clean_session(true)
                    .set_inflight(inflight)
                    .set_transport(transport());
                if let Some(user) = &c.username {
                    let password = c.password.as_ref().map_or("", |p| p.0.as_str());
                    o.set_credentials(user, password);
                }
                let (client, events) = rumqttc::AsyncClient::new(o, capacity);
                Session::V4(client, Box::new(events))
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(&c.client_id, &c.host, c.port);
                o.set_keep_alive(c.keep_alive)
                    .set_clean_start(true)
                    .set_outgoing_inflight_upper_limit(inflight)
                    .set_transport(transport());
                if let Some(user) = &c.username {
                    let password = c.password.as_ref().map_or("", |p| p.0.as_str());
                    o.set_credentials(user, password);
                }
                let (client, events) = rumqttc::v5::AsyncClient::new(o, capacity);
                Session::V5(client, Box::new(events))
            }
        }
    }
}

impl Client for Mqtt {
    fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    async fn connect(&mut self) -> Result<String, String> {
        self.close().await;
        let mut session = self.session();
        // The first poll connects: CONNECT, then the broker's CONNACK (a
        // refusal is an error).
        loop {
            match session.poll().await? {
                Note::Other => break,
                _ => continue,
            }
        }
        self.session = Some(session);
        let version = match self.config.version {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        };
        Ok(format!(
            "MQTT {version} broker at {}:{}",
            self.config.host, self.config.port
        ))
    }

    async fn lost(&mut self) -> String {
        let Some(session) = self.session.as_mut() else {
            return std::future::pending().await;
        };
        // Polling keeps the connection alive (PINGREQ) while idle.
        let error = loop {
            if let Err(e) = session.poll().await {
                break e;
            }
        };
        self.session = None;
        error
    }

    async fn publish(
        &mut self,
        messages: &[Message],
        until: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let Some(session) = self.session.as_mut() else {
            return Err(Failure::new(0, "not connected", true));
        };
        let c = &self.config;
        for m in messages {
            let topic = m.route.as_deref().unwrap_or(&c.topic);
            if let Err(e) = session.publish(topic, c.qos, c.retain, &m.body) {
                return Err(Failure::new(0, format!("publishing: {e}"), true));
            }
        }
        // Publishes go out in order, each taking a packet id; the broker's
        // acknowledgements name those ids.
        let mut next = 0usize;
        let mut waiting: HashMap<u16, usize> = HashMap::new();
        let mut done = vec![None::<Result<(), String>>; messages.len()];
        loop {
            let confirmed = done
                .iter()
                .take_while(|d| matches!(d, Some(Ok(()))))
                .count();
            if confirmed == messages.len() {
                return Ok(());
            }
            if let Some(Some(Err(why))) = done.get(confirmed) {
                return Err(Failure::new(confirmed, why.clone(), false));
            }
            let note = tokio::select! {
                n = session.poll() => n,
                _ = tokio::time::sleep_until(until) => {
                    return Err(Failure::new(confirmed, "no acknowledgement in time", true));
                }
            };
            match note {
                Err(e) => {
                    self.session = None;
                    return Err(Failure::new(
                        confirmed,
                        format!("connection lost: {e}"),
                        true,
                    ));
                }
                Ok(Note::Sent(pkid)) => {
                    if next < messages.len() {
                        waiting.insert(pkid, next);
                        next += 1;
                    }
                }
                Ok(Note::Done(pkid)) => {
                    if let Some(i) = waiting.remove(&pkid) {
                        done[i] = Some(Ok(()));
                    }
                }
                Ok(Note::Refused(pkid, why)) => {
                    if let Some(i) = waiting.remove(&pkid) {
                        done[i] = Some(Err(format!("the broker refused a message: {why}")));
                    }
                }
                Ok(Note::Other) => {}
            }
        }
    }

    async fn close(&mut self) {
        if let Some(mut session) = self.session.take() {
            session.disconnect().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mqttevh's body and topic: the event, `eventtype` added last.
    #[test]
    fn messages_are_mqttevhs() {
        let f = MqttFormat {
            json: JsonStyle::Compact,
            topic: "/janus/events".into(),
            addevent: true,
        };
        let m = f
            .messages(&[
                r#"{"emitter":"j","type":1,"event":{"name":"created"}}"#,
                r#"{"type":256,"event":{}}"#,
                r#"{"type":9999}"#,
            ])
            .unwrap();
        assert_eq!(
            m[0].body,
            br#"{"emitter":"j","type":1,"event":{"name":"created"},"eventtype":"Sessions"}"#
        );
        assert_eq!(m[0].route.as_deref(), Some("/janus/events/sessions"));
        assert_eq!(m[1].route.as_deref(), Some("/janus/events/core"));
        assert_eq!(m[1].body, br#"{"type":256,"event":{},"eventtype":"Core"}"#);
        assert_eq!(m[2].body, br#"{"type":9999}"#);
        assert_eq!(m[2].route.as_deref(), Some("/janus/events/(null)"));
        let f = MqttFormat {
            addevent: false,
            json: JsonStyle::Plain,
            ..f
        };
        let m = f.messages(&[r#"{"type":2}"#]).unwrap();
        assert_eq!(m[0].route.as_deref(), Some("/janus/events"));
        assert_eq!(m[0].body, br#"{"type": 2, "eventtype": "Handles"}"#);
    }
}
