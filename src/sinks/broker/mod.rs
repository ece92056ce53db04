//! Sinks into message brokers: RabbitMQ ([`rabbitmq`]), MQTT ([`mqtt`]),
//! NATS JetStream ([`nats`]). Each is a [`Sink`] like the others (the
//! runner batches, retries, spools and stops it), with one difference: the
//! broker's client is asynchronous and keeps a connection open, so it runs
//! on a thread of its own, on a small tokio runtime (current-thread: no
//! worker pool).
//!
//! ```text
//! sink's thread ("lcevh <name>")         I/O thread ("lcevh io <name>")
//! deliver(batch):                        driver: connect, keep the connection
//!   messages = format(batch)     --->      (heartbeats, reconnect with backoff),
//!   wait for the answer          <---      publish a job's messages, wait for
//!   (until the attempt's end)              the broker's confirmations
//! ```
//!
//! An attempt succeeds only when the broker has confirmed every message
//! (RabbitMQ: publisher confirms; MQTT: PUBACK; JetStream: the stream's
//! ack); on failure it says how many messages at the start were confirmed,
//! so that exactly those events leave the spool. A message that may have
//! reached the broker without its confirmation reaching us is sent again:
//! delivery is at least once (exactly once into a JetStream stream, whose
//! server drops a message id it has seen).
//!
//! Why a thread per broker sink, not the runner's own: a connection must be
//! served while no event flows (heartbeats, keep-alives, noticing that the
//! broker went away), so that `connected` is true to the moment and a
//! broker back from an outage is reconnected before the next event needs it.

pub mod mqtt;
pub mod nats;
pub mod rabbitmq;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::runner::{full_jitter, retry_rng};
use super::{Sink, SinkError};
use crate::sync::{Spawned, lock};

/// One message to publish: its body, and how many of the batch's events it
/// carries (one, or all of them with grouping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: Vec<u8>,
    pub events: usize,
    /// Where it goes when that depends on the event (an MQTT topic).
    pub route: Option<String>,
    /// A stable id for the broker's deduplication (JetStream's `Nats-Msg-Id`).
    pub id: Option<String>,
}

/// Why an attempt did not get every message confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Messages at the start that were confirmed all the same.
    pub confirmed: usize,
    pub message: String,
    /// The connection is not to be trusted any more (a confirmation may be
    /// late or lost): drop it and connect again before the next attempt.
    pub reconnect: bool,
}

impl Failure {
    pub fn new(confirmed: usize, message: impl Into<String>, reconnect: bool) -> Failure {
        Failure {
            confirmed,
            message: message.into(),
            reconnect,
        }
    }
}

/// A broker's client, run by the driver on the sink's I/O thread.
pub trait Client: Send + 'static {
    /// Whether a connection is open (as far as the client knows).
    fn is_connected(&self) -> bool;

    /// Opens a connection and declares what must exist (exchange, queue,
    /// stream). Returns how the broker names itself (product and version).
    fn connect(&mut self) -> impl Future<Output = Result<String, String>>;

    /// Resolves when the open connection is lost, with why. Only polled
    /// while connected.
    fn lost(&mut self) -> impl Future<Output = String>;

    /// Publishes `messages` in order and waits for the broker to confirm
    /// each of them, until `until` at the latest.
    fn publish(
        &mut self,
        messages: &[Message],
        until: tokio::time::Instant,
    ) -> impl Future<Output = Result<(), Failure>>;

    /// Closes the connection (politely, if the broker is still there).
    fn close(&mut self) -> impl Future<Output = ()>;
}

/// The connection's state, shared with the Admin API and the metrics.
#[derive(Debug, Default)]
pub struct ConnectionState {
    connected: AtomicBool,
    /// Connections opened (the first one, then every reconnection).
    connections: AtomicU64,
    /// How the broker last named itself (`RabbitMQ 3.10.8`).
    broker: Mutex<Option<String>>,
    /// The last connection error (lost, or a failed reconnection).
    last_error: Mutex<Option<String>>,
}

impl ConnectionState {
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    pub fn broker(&self) -> Option<String> {
        lock(&self.broker).clone()
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(crate) fn up(&self, name: &str, broker: String) {
        if !self.connected.swap(true, Relaxed) {
            crate::jlog!(Info, "{name}: connected to {broker}");
        }
        self.connections.fetch_add(1, Relaxed);
        *lock(&self.broker) = Some(broker);
    }

    /// Records a connection error; logs it when it differs from the last one.
    pub(crate) fn down(&self, name: &str, error: String) {
        let was = self.connected.swap(false, Relaxed);
        let mut last = lock(&self.last_error);
        if was || last.as_deref() != Some(error.as_str()) {
            crate::jlog!(Warn, "{name}: {error}");
        }
        *last = Some(error);
    }

    /// The Admin API's view: `connected`, `connections`, `broker` and
    /// `connection_error` (the last connection error, if any).
    pub fn info(&self, m: &mut Map<String, Value>) {
        m.insert("connected".into(), json!(self.connected()));
        m.insert("connections".into(), json!(self.connections()));
        m.insert("broker".into(), json!(self.broker()));
        m.insert("connection_error".into(), json!(self.last_error()));
    }
}

/// A batch's messages, on their way to the I/O thread.
struct Job {
    messages: Vec<Message>,
    until: tokio::time::Instant,
    reply: std::sync::mpsc::SyncSender<Result<(), Failure>>,
    /// Set when `deliver` stopped waiting: the job is not to be started.
    abandoned: Arc<AtomicBool>,
}

/// How a broker sink turns a batch into messages (on the sink's thread).
pub trait Format: Send + 'static {
    fn messages(&self, batch: &[&str]) -> Result<Vec<Message>, String>;
}

/// A broker sink: the [`Sink`] the runner drives, and its I/O thread.
pub struct BrokerSink<F: Format> {
    name: String,
    format: F,
    timeout: Duration,
    jobs: Option<mpsc::UnboundedSender<Job>>,
    /// Dropped to stop the I/O thread.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    io: Option<Spawned>,
    state: Arc<ConnectionState>,
    describe: Map<String, Value>,
    /// When the handler must be stopped, once the runner has said so.
    deadline: Option<Instant>,
}

/// How long `deliver` waits past an attempt's end for the I/O thread's
/// answer (the driver stops publishing at the attempt's end by itself).
const ANSWER_GRACE: Duration = Duration::from_millis(200);
/// How long closing the connection may take when the sink stops.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);
/// Waits between reconnections while no event needs the connection: from
/// up to 1 s, doubling, to up to 30 s (full jitter, as the runner's retries).
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);

impl<F: Format> BrokerSink<F> {
    /// Starts the I/O thread with `client`, which connects at once (in the
    /// background: a broker that is down is not an init error).
    pub fn start<C: Client>(
        name: &str,
        format: F,
        client: C,
        timeout: Duration,
        describe: Map<String, Value>,
    ) -> std::io::Result<BrokerSink<F>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            // Host name lookups only (tokio resolves on a blocking thread).
            .max_blocking_threads(1)
            .thread_keep_alive(Duration::from_secs(1))
            .build()?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::new(ConnectionState::default());
        let driver = Driver {
            name: name.to_string(),
            state: state.clone(),
            timeout,
        };
        // "lcevh io <name>": Linux keeps 15 bytes of a thread's name, so the
        // part that tells it from the runner ("lcevh <name>") comes first.
        let io = Spawned::spawn(format!("lcevh io {name}"), move || {
            runtime.block_on(async move {
                let mut client = client;
                // The sink dropped: whatever the driver waits for (a
                // connection, a confirmation) is given up at once.
                tokio::select! {
                    _ = driver.run(&mut client, rx) => {}
                    _ = stopped => {}
                }
                if client.is_connected() {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await;
                }
                // Dropped here, inside the runtime (amqprs closes on drop
                // with a task of its own).
                drop(client);
            });
            runtime.shutdown_background();
        })?;
        Ok(BrokerSink {
            name: name.to_string(),
            format,
            timeout,
            jobs: Some(jobs),
            stop: Some(stop),
            io: Some(io),
            state,
            describe,
            deadline: None,
        })
    }
}

impl<F: Format> Sink for BrokerSink<F> {
    fn deliver(&mut self, batch: &[&str], deadline: Option<Instant>) -> Result<(), SinkError> {
        let fail = |delivered: usize, message: String| SinkError {
            delivered,
            message: format!("{}: {message}", self.name),
        };
        let messages = self.format.messages(batch).map_err(|e| fail(0, e))?;
        let now = Instant::now();
        let mut until = now + self.timeout;
        if let Some(d) = deadline {
            self.deadline = Some(d);
            until = until.min(d);
            if until <= now {
                return Err(fail(0, "no time left before shutdown".into()));
            }
        }
        // The events in each message, to count what a partial success delivered.
        let sizes: Vec<usize> = messages.iter().map(|m| m.events).collect();
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let job = Job {
            messages,
            until: tokio::time::Instant::from_std(until),
            reply,
            abandoned: abandoned.clone(),
        };
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent {
            return Err(fail(0, "internal error: the I/O thread is gone".into()));
        }
        let wait = until.saturating_duration_since(Instant::now()) + ANSWER_GRACE;
        match answer.recv_timeout(wait) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => {
                let delivered = sizes.iter().take(f.confirmed).sum();
                Err(fail(delivered, f.message))
            }
            Err(_) => {
                abandoned.store(true, Relaxed);
                Err(fail(0, "no answer from the broker in time".into()))
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> Map<String, Value> {
        self.describe.clone()
    }

    fn connection(&self) -> Option<Arc<ConnectionState>> {
        Some(self.state.clone())
    }
}

impl<F: Format> Drop for BrokerSink<F> {
    /// Stops the I/O thread (closing the connection) and waits for it until
    /// the handler's deadline (or a second), then leaves it behind.
    fn drop(&mut self) {
        self.jobs = None;
        self.stop = None;
        if let Some(mut io) = self.io.take() {
            let limit = self.deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if !io.join_within(limit.max(CLOSE_TIMEOUT)) {
                crate::jlog!(
                    Warn,
                    "{}: the connection's thread did not stop in time; left behind",
                    self.name
                );
            }
        }
    }
}

/// The I/O thread's loop.
struct Driver {
    name: String,
    state: Arc<ConnectionState>,
    timeout: Duration,
}

impl Driver {
    async fn run<C: Client>(&self, client: &mut C, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut rng = retry_rng();
        let mut failures = 0u32;
        let mut reconnect_at = tokio::time::Instant::now();
        loop {
            let connected = client.is_connected();
            tokio::select! {
                // Jobs first: an event waiting matters more than a reconnection.
                biased;
                job = jobs.recv() => {
                    let Some(job) = job else { break };
                    if job.abandoned.load(Relaxed) {
                        continue;
                    }
                    let result = self.attempt(client, &job).await;
                    if let Err(f) = &result {
                        if f.reconnect && client.is_connected() {
                            client.close().await;
                            self.state.down(&self.name, format!("reconnecting after: {}", f.message));
                        }
                        failures += 1;
                        reconnect_at = tokio::time::Instant::now()
                            + full_jitter(&mut rng, RECONNECT_BACKOFF, RECONNECT_BACKOFF_MAX, failures);
                    } else {
                        failures = 0;
                    }
                    let _ = job.reply.send(result);
                }
                why = client.lost(), if connected => {
                    self.state.down(&self.name, format!("connection lost: {why}"));
                    client.close().await;
                    // The broker may be restarting: try again soon.
                    failures = 1;
                    reconnect_at = tokio::time::Instant::now()
                        + full_jitter(&mut rng, RECONNECT_BACKOFF, RECONNECT_BACKOFF_MAX, failures);
                }
                _ = tokio::time::sleep_until(reconnect_at), if !connected => {
                    if self.connect(client, None).await.is_ok() {
                        failures = 0;
                    } else {
                        failures += 1;
                        reconnect_at = tokio::time::Instant::now()
                            + full_jitter(&mut rng, RECONNECT_BACKOFF, RECONNECT_BACKOFF_MAX, failures);
                    }
                }
            }
        }
    }

    /// Connects, within the sink's timeout (and `until`, if sooner).
    async fn connect<C: Client>(
        &self,
        client: &mut C,
        until: Option<tokio::time::Instant>,
    ) -> Result<(), String> {
        let mut limit = tokio::time::Instant::now() + self.timeout;
        if let Some(u) = until {
            limit = limit.min(u);
        }
        let result = match tokio::time::timeout_at(limit, client.connect()).await {
            Ok(r) => r,
            Err(_) => Err("connecting timed out".to_string()),
        };
        match result {
            Ok(broker) => {
                self.state.up(&self.name, broker);
                Ok(())
            }
            Err(e) => {
                client.close().await;
                self.state.down(&self.name, format!("cannot connect: {e}"));
                Err(e)
            }
        }
    }

    /// One job: connect if need be, publish, wait for the confirmations.
    async fn attempt<C: Client>(&self, client: &mut C, job: &Job) -> Result<(), Failure> {
        if !client.is_connected() {
            self.connect(client, Some(job.until))
                .await
                .map_err(|e| Failure::new(0, format!("cannot connect: {e}"), false))?;
        }
        // The client stops waiting at the attempt's end itself (and says
        // what was confirmed by then); this is only a safety net.
        let limit = job.until + ANSWER_GRACE / 2;
        match tokio::time::timeout_at(limit, client.publish(&job.messages, job.until)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(0, "no confirmation in time", true)),
        }
    }
}
