//! Real message brokers for the tests: Debian's RabbitMQ, Mosquitto and
//! NATS server, each started as a child process (no systemd) in a folder of
//! its own, on free loopback ports, and stopped by its process id.
//!
//! [`Broker::kill`] sends SIGKILL to the broker's whole process group (a
//! RabbitMQ node is a shell script, the Erlang VM and its helpers);
//! [`Broker::restart`] starts it again on the same data and ports. A
//! RabbitMQ node gets its own node name, distribution port, Erlang port
//! mapper (epmd) port and `HOME` (for its Erlang cookie), so that it clashes
//! with no other node on the machine; its epmd is stopped when the broker
//! is dropped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::free_port;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    RabbitMq,
    Mosquitto,
    Nats,
}

/// How long a broker may take to accept clients (RabbitMQ boots in 5 to 30
/// s on a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A broker process in a folder of its own.
pub struct Broker {
    kind: BrokerKind,
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    /// The client port (AMQP, MQTT, NATS).
    port: u16,
    /// RabbitMQ: the Erlang distribution port and the epmd port.
    dist_port: u16,
    epmd_port: u16,
    node: String,
    child: Option<Child>,
    /// Starts so far (log files are numbered by it).
    starts: u32,
}

impl Broker {
    /// Starts a broker of `kind` in a new temporary folder and waits until
    /// it accepts clients.
    pub fn start(kind: BrokerKind) -> Broker {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let tmp = tempfile::Builder::new()
            .prefix("lcevh-broker-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut b = Broker {
            kind,
            _tmp: Some(tmp),
            dir,
            port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            node: format!(
                "lcevh{}x{}@localhost",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            child: None,
            starts: 0,
        };
        b.write_config();
        b.launch();
        b
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL to the broker's process group, and waits until every
    /// process of it is gone (a RabbitMQ node is a shell, the Erlang VM and
    /// its helpers: a restart must not meet the old VM still exiting).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = child.id() as i32;
            // SAFETY: a plain kill(2) of the process group this rig started
            // (the child leads it: process_group(0)).
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            let gone = super::wait_until(|| !group_alive(group), Duration::from_secs(10));
            assert!(
                gone,
                "{:?}: processes of group {group} outlived SIGKILL",
                self.kind
            );
        }
    }

    /// Stops the broker (SIGSTOP to its process group) for `how_long`, then
    /// lets it go on (SIGCONT): a broker that stalls, with what clients
    /// sent meanwhile waiting in its sockets.
    pub fn freeze(&mut self, how_long: Duration) {
        self.pause();
        std::thread::sleep(how_long);
        self.resume();
    }

    /// SIGSTOP to the broker's process group: it answers nothing, and what
    /// clients send waits in its sockets.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT: a paused broker goes on.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let child = self.child.as_ref().expect("the broker is not running");
        // SAFETY: a plain kill(2) of the process group this rig started.
        unsafe { libc::kill(-(child.id() as i32), sig) };
    }

    /// Starts the broker again on the same data and ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the broker is still running");
        self.launch();
    }

    fn write_config(&self) {
        match self.kind {
            BrokerKind::RabbitMq => {
                for sub in ["mnesia", "log", "home"] {
                    fs::create_dir_all(self.dir.join(sub)).unwrap();
                }
                fs::write(
                    self.dir.join("rabbitmq.conf"),
                    format!(
                        "listeners.tcp.default = 127.0.0.1:{}\nloopback_users = none\n",
                        self.port
                    ),
                )
                .unwrap();
                fs::write(self.dir.join("enabled_plugins"), "[].\n").unwrap();
                fs::write(self.dir.join("rabbitmq-env.conf"), "").unwrap();
            }
            BrokerKind::Mosquitto => {
                fs::create_dir_all(self.dir.join("data")).unwrap();
                fs::write(
                    self.dir.join("mosquitto.conf"),
                    format!(
                        "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                         persistence_location {}/\nautosave_interval 1\nautosave_on_changes true\n\
                         max_queued_messages 0\nlog_dest stdout\nlog_type error\nlog_type warning\n{}",
                        self.port,
                        self.dir.join("data").display(),
                        // Started as root, mosquitto becomes user mosquitto,
                        // who cannot write this folder.
                        // SAFETY: geteuid(2) has no preconditions.
                        if unsafe { libc::geteuid() } == 0 {
                            "user root\n"
                        } else {
                            ""
                        }
                    ),
                )
                .unwrap();
            }
            BrokerKind::Nats => {
                fs::create_dir_all(self.dir.join("jetstream")).unwrap();
            }
        }
    }

    fn command(&self) -> Command {
        let d = &self.dir;
        match self.kind {
            BrokerKind::RabbitMq => {
                let mut c = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
                c.env("HOME", d.join("home"))
                    .env("RABBITMQ_NODENAME", &self.node)
                    .env("RABBITMQ_NODE_PORT", self.port.to_string())
                    .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
                    .env("ERL_EPMD_PORT", self.epmd_port.to_string())
                    .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", d.join("log"))
                    .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
                    .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
                    .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"));
                c
            }
            BrokerKind::Mosquitto => {
                let mut c = Command::new("/usr/sbin/mosquitto");
                c.arg("-c").arg(d.join("mosquitto.conf"));
                c
            }
            BrokerKind::Nats => {
                let mut c = Command::new("/usr/sbin/nats-server");
                c.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
                    .args(["--server_name", "lcevh-test", "-js", "-sd"])
                    .arg(d.join("jetstream"));
                c
            }
        }
    }

    fn launch(&mut self) {
        let bin = match self.kind {
            BrokerKind::RabbitMq => "/usr/lib/rabbitmq/bin/rabbitmq-server",
            BrokerKind::Mosquitto => "/usr/sbin/mosquitto",
            BrokerKind::Nats => "/usr/sbin/nats-server",
        };
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing (apt-get install rabbitmq-server mosquitto nats-server)"
        );
        self.starts += 1;
        let log = |name: &str| {
            fs::File::create(self.dir.join(format!("{name}.{}.log", self.starts))).unwrap()
        };
        let child = self
            .command()
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        self.child = Some(child);
        let t0 = Instant::now();
        let deadline = t0 + READY_TIMEOUT;
        loop {
            if self.ready() {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{:?} exited at start ({status}):\n{}",
                    self.kind,
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} did not accept clients within {READY_TIMEOUT:?}:\n{}",
                    self.kind,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "{:?} on port {} ready in {:.1} s",
            self.kind,
            self.port,
            t0.elapsed().as_secs_f64()
        );
    }

    /// Whether a client gets through: the port answers and, for RabbitMQ,
    /// an AMQP login succeeds (the listener opens before the broker is done
    /// booting).
    fn ready(&self) -> bool {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            return false;
        }
        match self.kind {
            BrokerKind::RabbitMq => amqp_login(self.port),
            _ => true,
        }
    }

    /// The tails of the broker's output, for a failing test.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        if let Ok(logs) = fs::read_dir(self.dir.join("log")) {
            files.extend(logs.flatten().map(|e| e.path()));
        }
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!(
                "--- {}\n{}\n",
                f.display(),
                lines[from..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill();
        if self.kind == BrokerKind::RabbitMq {
            stop_epmd(self.epmd_port);
        }
    }
}

/// Stops the node's own epmd (started by the node, detached from it, so
/// not in its process group). epmd refuses `-kill` while a node is
/// registered, and notices a killed node's closed connection only a moment
/// later: asked again until it says it is gone.
fn stop_epmd(port: u16) {
    let gone = super::wait_until(
        || {
            let Ok(out) = Command::new("epmd")
                .arg("-kill")
                .env("ERL_EPMD_PORT", port.to_string())
                .stdin(Stdio::null())
                .output()
            else {
                return true; // no epmd program: nothing was started
            };
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            said.contains("Killed") || said.contains("Cannot connect")
        },
        Duration::from_secs(10),
    );
    if !gone {
        eprintln!("the epmd on port {port} would not stop (ERL_EPMD_PORT={port} epmd -kill)");
    }
}

/// Whether a process of process group `group` is alive (zombies, which
/// hold nothing, do not count).
fn group_alive(group: i32) -> bool {
    let Ok(procs) = fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let Ok(stat) = fs::read_to_string(p.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
    })
}

/// Runs `f` on a small tokio runtime of its own.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Whether guest can log in to the RabbitMQ on `port`.
fn amqp_login(port: u16) -> bool {
    use amqprs::connection::{Connection, OpenConnectionArguments};
    block_on(async {
        let args = OpenConnectionArguments::new("127.0.0.1", port, "guest", "guest");
        match tokio::time::timeout(Duration::from_secs(2), Connection::open(&args)).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
                true
            }
            _ => false,
        }
    })
}

/// What a consumer got: every event of every message, in arrival order,
/// by queue (or topic), flattened (a grouped message's array is its events).
#[derive(Debug, Default, Clone)]
pub struct Got {
    pub messages: usize,
    pub events: Vec<(String, serde_json::Value)>,
}

impl Got {
    fn add(&mut self, from: &str, body: &[u8]) {
        self.messages += 1;
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Array(events)) => self
                .events
                .extend(events.into_iter().map(|e| (from.to_string(), e))),
            Ok(event) => self.events.push((from.to_string(), event)),
            Err(e) => panic!(
                "{from}: a message that is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    /// The events that came from `from`.
    pub fn from(&self, from: &str) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .filter(|(f, _)| f == from)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

/// A consumer of RabbitMQ queues on its own thread: it (re)connects as
/// long as it runs, declares each queue as the test says (durable or not,
/// the way its publisher declares it) and takes every message,
/// acknowledging it once kept (a message lost on its way comes again).
pub struct AmqpConsumer {
    got: std::sync::Arc<std::sync::Mutex<Got>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AmqpConsumer {
    /// Consumes `queues` (name, durable) of the RabbitMQ on `port`.
    pub fn start(port: u16, queues: &[(&str, bool)]) -> AmqpConsumer {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let got = Arc::new(Mutex::new(Got::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let queues: Vec<(String, bool)> = queues.iter().map(|(q, d)| (q.to_string(), *d)).collect();
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                block_on(consume(port, &queues, &g, &s));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        AmqpConsumer {
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub fn got(&self) -> Got {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for what came and returns it; fails the
    /// test, naming `what` was awaited and what came, if it does not
    /// within `timeout`.
    pub fn expect(&self, what: &str, pred: impl Fn(&Got) -> bool, timeout: Duration) -> Got {
        let mut last = Got::default();
        let came = super::wait_until(
            || {
                last = self.got();
                pred(&last)
            },
            timeout,
        );
        assert!(came, "no {what} within {timeout:?}; came: {last:?}");
        last
    }
}

impl Drop for AmqpConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection's worth of consuming; returns when it is lost or stop is set.
async fn consume(
    port: u16,
    queues: &[(String, bool)],
    got: &std::sync::Mutex<Got>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use amqprs::channel::{BasicAckArguments, BasicConsumeArguments, QueueDeclareArguments};
    use amqprs::connection::{Connection, OpenConnectionArguments};
    let args = OpenConnectionArguments::new("127.0.0.1", port, "guest", "guest");
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(2), Connection::open(&args)).await
    else {
        return;
    };
    let Ok(channel) = conn.open_channel(None).await else {
        return;
    };
    let mut receivers = Vec::new();
    for (q, durable) in queues {
        let declare = if *durable {
            QueueDeclareArguments::durable_client_named(q)
        } else {
            QueueDeclareArguments::new(q)
        };
        if channel.queue_declare(declare).await.is_err() {
            return;
        }
        let mut consume = BasicConsumeArguments::new(q, "");
        consume.manual_ack(true);
        match channel.basic_consume_rx(consume).await {
            Ok((_, rx)) => receivers.push((q.clone(), rx)),
            Err(_) => return,
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        // Each message is acknowledged once it is kept: one the broker sent
        // but the connection lost before it was kept comes again.
        let mut any = false;
        for (q, rx) in receivers.iter_mut() {
            while let Ok(m) = rx.try_recv() {
                any = true;
                let (Some(body), Some(deliver)) = (m.content, m.deliver) else {
                    continue;
                };
                got.lock().unwrap().add(q, &body);
                let ack = BasicAckArguments::new(deliver.delivery_tag(), false);
                if channel.basic_ack(ack).await.is_err() {
                    return;
                }
            }
        }
        if stop.load(Ordering::Relaxed) || !conn.is_open() {
            let _ = conn.close().await;
            return;
        }
        if !any {
            tick.tick().await;
        }
    }
}

/// A subscriber to an MQTT broker on its own thread, with a persistent
/// session (a fixed client id, clean session off, QoS 1): it reconnects as
/// long as it runs, and the broker keeps what comes meanwhile for it.
/// What it gets is kept by topic.
pub struct MqttConsumer {
    got: std::sync::Arc<std::sync::Mutex<Got>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MqttConsumer {
    /// Subscribes to `filters` (`lcevh/#`) on the broker on `port`.
    pub fn start(port: u16, filters: &[&str]) -> MqttConsumer {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let got = Arc::new(Mutex::new(Got::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (g, s) = (got.clone(), stop.clone());
        let subscribed = Arc::new(AtomicBool::new(false));
        let sub = subscribed.clone();
        let thread = std::thread::spawn(move || {
            block_on(async move {
                use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
                let mut o = MqttOptions::new(format!("test-consumer-{port}"), "127.0.0.1", port);
                o.set_clean_session(false)
                    .set_keep_alive(Duration::from_secs(5))
                    .set_max_packet_size(1 << 20, 1 << 20);
                let (client, mut events) = AsyncClient::new(o, 100);
                while !s.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(100), events.poll()).await {
                        Err(_) => {}
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            g.lock().unwrap().add(&p.topic, &p.payload)
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            sub.store(true, Ordering::Relaxed)
                        }
                        // A broker that lost the session (restarted without
                        // it) gets the subscriptions again.
                        Ok(Ok(Event::Incoming(Packet::ConnAck(c)))) if !c.session_present => {
                            for f in &filters {
                                let _ = client.try_subscribe(f, QoS::AtLeastOnce);
                            }
                        }
                        Ok(Ok(_)) => {}
                        // The broker is away: polling again reconnects.
                        Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        });
        assert!(
            super::wait_until(
                || subscribed.load(Ordering::Relaxed),
                Duration::from_secs(10)
            ),
            "the MQTT consumer did not subscribe"
        );
        MqttConsumer {
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub fn got(&self) -> Got {
        self.got.lock().unwrap().clone()
    }

    /// The events that came on topics starting with `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.got()
            .events
            .into_iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .map(|(_, e)| e)
            .collect()
    }
}

impl Drop for MqttConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every message of a JetStream stream on the NATS server on `port`, in
/// order, with its `Nats-Msg-Id` (empty when it has none); None when the
/// stream does not exist (yet).
pub fn stream_messages(port: u16, stream: &str) -> Option<Vec<(String, serde_json::Value)>> {
    block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .ok()?;
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.ok()?;
        let state = s.info().await.ok()?.state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let Ok(m) = s.get_raw_message(seq).await else {
                continue;
            };
            let id = m
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let event = serde_json::from_slice(&m.payload)
                .unwrap_or_else(|e| panic!("{stream} #{seq}: not JSON ({e})"));
            out.push((id, event));
        }
        Some(out)
    })
}
