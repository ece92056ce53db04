//! Configuring, starting and stopping a real Janus, natively (Debian's, or
//! one built into a prefix) or in a container (see [`JanusTarget`]).
//!
//! An instance's folder holds:
//! - `cfg/`: janus.jcfg and one .jcfg per module, generated on each start;
//! - `plugins/`, `transports/`, `events/`, `loggers/`: the modules to load
//!   (symlinks to Janus's own, a copy of the handler under test);
//! - `janus.log`, `stdout.log`, `stderr.log`: this run's output (a restart
//!   with [`Janus::start_in`] renames the previous run's to `*.log.1`, `.2`...).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::admin::ADMIN_SECRET;
use super::http::http_request_within;
use super::{Admin, HttpApi, WsClient, free_port, lifecycleevh_so, wait_until};

/// Debian's Janus (on this machine, or in the image).
const JANUS_BIN: &str = "/usr/bin/janus";
/// Debian's Janus modules (on this machine, or in the image).
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/janus";
/// Where `make janus-upstream` installs upstream Janus `<version>`, relative
/// to the repository: `LCEVH_JANUS=upstream-<version>` runs that build.
const UPSTREAM_PREFIXES: &str = "target/janus-upstream";
/// The label on every container the rig starts (`docker ps --filter label=...`).
pub const CONTAINER_LABEL: &str = "lifecycleevh-rig";
/// How long a container may take to go once killed.
const CONTAINER_KILL_TIMEOUT: Duration = Duration::from_secs(20);

/// Which Janus the rig runs, from the environment variable `LCEVH_JANUS`:
///
/// - `native` (the default): Debian's `/usr/bin/janus` on this machine;
/// - `prefix:<dir>`: a Janus built from source and installed into `<dir>`
///   (`./configure --prefix=<dir>`), run natively: `<dir>/bin/janus` with
///   the modules in `<dir>/lib/janus/` (its stock sampleevh too);
/// - `upstream-<version>`, e.g. `upstream-0.16.1`: the same for the
///   upstream release that `make janus-upstream` built into
///   `target/janus-upstream/<version>` of this repository;
/// - `docker:<image>`, e.g. `docker:lifecycleevh:sid`: `/usr/bin/janus` and
///   the modules of that image (Debian's janus package), in a container
///   started with `docker run --network host`, as the user running the tests,
///   with the instance's folder and the temporary folder (where the tests
///   keep their output files) mounted at the same paths. Everything else is
///   the same: the generated configs, the ports on 127.0.0.1, the handler
///   under test (copied into the instance's `events/`, so the host's build is
///   what runs), the logs in the folder. SIGINT and SIGKILL go through
///   `docker kill --signal`, and [`Janus::pid`] is Janus's process id on this
///   machine. `DOCKER` names the docker client (default `docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JanusTarget {
    Native,
    Prefix { dir: PathBuf },
    Docker { image: String },
}

impl JanusTarget {
    /// The target of this test run (`LCEVH_JANUS`); panics on a bad value.
    pub fn current() -> &'static JanusTarget {
        static TARGET: OnceLock<JanusTarget> = OnceLock::new();
        TARGET.get_or_init(|| {
            let v = std::env::var("LCEVH_JANUS").unwrap_or_default();
            JanusTarget::parse(&v).unwrap_or_else(|| {
                panic!(
                    "LCEVH_JANUS={v:?}: expected `native`, `prefix:<dir>`, \
                     `upstream-<version>` or `docker:<image>`"
                )
            })
        })
    }

    fn parse(v: &str) -> Option<JanusTarget> {
        if v.is_empty() || v == "native" {
            return Some(JanusTarget::Native);
        }
        if let Some(image) = v.strip_prefix("docker:") {
            return (!image.is_empty()).then(|| JanusTarget::Docker {
                image: image.to_string(),
            });
        }
        let dir = match (v.strip_prefix("prefix:"), v.strip_prefix("upstream-")) {
            (Some(dir), _) if !dir.is_empty() => PathBuf::from(dir),
            (_, Some(version)) if !version.is_empty() && !version.contains('/') => {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(UPSTREAM_PREFIXES)
                    .join(version)
            }
            _ => return None,
        };
        Some(JanusTarget::Prefix { dir })
    }

    /// The janus binary, as the process that runs it sees it.
    fn janus_bin(&self) -> PathBuf {
        match self {
            JanusTarget::Prefix { dir } => dir.join("bin/janus"),
            JanusTarget::Native | JanusTarget::Docker { .. } => PathBuf::from(JANUS_BIN),
        }
    }

    /// The folder of Janus's modules (`plugins/`, `transports/`, `events/`).
    fn modules(&self) -> PathBuf {
        match self {
            JanusTarget::Prefix { dir } => dir.join("lib/janus"),
            JanusTarget::Native | JanusTarget::Docker { .. } => PathBuf::from(MODULES),
        }
    }

    /// How to get this target's Janus, for a message when it is missing.
    fn install_hint(&self) -> String {
        match self {
            JanusTarget::Native => "apt-get install janus".into(),
            JanusTarget::Prefix { dir } => {
                let version = dir.file_name().unwrap_or_default().to_string_lossy();
                format!("build it: make janus-upstream JANUS_UPSTREAM={version}")
            }
            JanusTarget::Docker { image } => format!("is the image {image} built? `make docker`"),
        }
    }
}

impl std::fmt::Display for JanusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JanusTarget::Native => write!(f, "native"),
            JanusTarget::Prefix { dir } => write!(f, "prefix:{}", dir.display()),
            JanusTarget::Docker { image } => write!(f, "docker:{image}"),
        }
    }
}
/// In [`JanusOptions::lifecycleevh_config`]: the port of Janus's HTTP API.
pub const JANUS_HTTP_PORT: &str = "@JANUS_HTTP_PORT@";
/// In [`JanusOptions::lifecycleevh_config`]: the port of Janus's Admin API.
pub const JANUS_ADMIN_PORT: &str = "@JANUS_ADMIN_PORT@";

/// The two behaviours of Janus's session endings, which the tests assert
/// apart. The upstream fix for issue 3533 (released on 2025-07-10 in both
/// lines, as 1.3.2 and 0.15.2) made the core end a transport-gone session
/// itself (a session `destroyed` after the transport's `disconnected`, reclaim
/// off), and end a connection's sessions as the transport closes it at
/// shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Janus 1.x < 1.3.2 (Debian bookworm's 1.1.2) and 0.x < 0.15.2 (0.11.8):
    /// a closed WebSocket's sessions end with no session event.
    Old,
    /// Janus 1.x >= 1.3.2 (1.4.1) and 0.x >= 0.15.2 (0.16.1).
    New,
}

impl Generation {
    pub fn of(version: (u32, u32, u32)) -> Generation {
        let fixed = match version.0 {
            0 => (0, 15, 2),
            _ => (1, 3, 2),
        };
        if version >= fixed {
            Generation::New
        } else {
            Generation::Old
        }
    }
}

/// How long Janus may take to serve its APIs after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Janus may take to exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries with new ports when another process took one of ours meanwhile.
const START_ATTEMPTS: usize = 3;
/// How many lines of each output a failing test shows.
const TAIL_LINES: usize = 200;

/// How to set up a Janus instance. Start from `JanusOptions::default()`.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// Full text of janus.eventhandler.lifecycleevh.jcfg; `Some` installs the
    /// handler under test (`plugin_so`) with this config. [`JANUS_HTTP_PORT`]
    /// and [`JANUS_ADMIN_PORT`] in it stand for the ports this Janus gets.
    pub lifecycleevh_config: Option<String>,
    /// The handler to install (default: [`lifecycleevh_so`]); it is copied
    /// into the instance as `events/libjanus_lifecycleevh.so`.
    pub plugin_so: Option<PathBuf>,
    /// `Some` enables Janus's stock sampleevh, posting to `backend`.
    pub sampleevh: Option<SampleEvh>,
    /// `session_timeout` in janus.jcfg, seconds (default 60; 0 = never).
    pub session_timeout: u32,
    /// `reclaim_session_timeout` in janus.jcfg, seconds (default 0).
    pub reclaim_session_timeout: u32,
    /// `events` of the WebSockets transport: whether it emits transport
    /// events (type 128, `connected`/`disconnected`) (default true).
    pub ws_events: bool,
    /// `events` of the HTTP transport (default true). Every HTTP and Admin
    /// request is then a transport event of its own.
    pub http_events: bool,
    /// Extra lines appended inside `general: {}` of janus.jcfg (default "").
    pub extra_janus_general: String,
    /// Run Janus as this (uid, gid), e.g. [`NOBODY`], to test what an
    /// unprivileged Janus cannot do (root ignores file modes). Applies when
    /// the tests run as root (natively through `setpriv`, in a container
    /// with `--user`); otherwise Janus runs as the tests' user, unprivileged
    /// already. The instance's folder is handed to that user; the folders
    /// above it and the test's own files must let it in ([`hand_over`]).
    pub run_as: Option<(u32, u32)>,
    /// Extra lines inside `media: {}`, `nat: {}` and `events: {}` of
    /// janus.jcfg (default ""), e.g. from [`super::webrtc::janus_media`].
    pub extra_janus_media: String,
    pub extra_janus_nat: String,
    pub extra_janus_events: String,
    /// In a container: its `--network` (default `host`), e.g.
    /// `container:<name>` to join the network namespace another container
    /// holds ([`NetnsHolder::network`]). A native Janus runs in the network
    /// namespace of the thread that starts it; this is not used then.
    pub network: Option<String>,
    /// Janus's own event handlers to load besides (rabbitmqevh, mqttevh...).
    pub stock_handlers: Vec<StockHandler>,
}

/// One of Janus's own event handlers, with its config.
#[derive(Debug, Clone)]
pub struct StockHandler {
    /// The module's short name: `rabbitmqevh` loads
    /// `libjanus_rabbitmqevh.so` with `janus.eventhandler.rabbitmqevh.jcfg`.
    pub name: String,
    /// The full text of its .jcfg.
    pub config: String,
}

/// The user and group `nobody` of Debian (and of the images).
pub const NOBODY: (u32, u32) = (65534, 65534);

/// Gives `path` to `user` (see [`JanusOptions::run_as`]) when the tests run
/// as root; does nothing otherwise.
pub fn hand_over(path: &Path, user: (u32, u32)) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(user.0), Some(user.1))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

impl Default for JanusOptions {
    fn default() -> Self {
        JanusOptions {
            lifecycleevh_config: None,
            plugin_so: None,
            sampleevh: None,
            session_timeout: 60,
            reclaim_session_timeout: 0,
            ws_events: true,
            http_events: true,
            extra_janus_general: String::new(),
            run_as: None,
            extra_janus_media: String::new(),
            extra_janus_nat: String::new(),
            extra_janus_events: String::new(),
            network: None,
            stock_handlers: Vec::new(),
        }
    }
}

/// Settings of Janus's sample event handler (janus.eventhandler.sampleevh).
#[derive(Debug, Clone)]
pub struct SampleEvh {
    /// Where it POSTs, e.g. [`super::Receiver::url`].
    pub backend: String,
    /// Whether it POSTs arrays of events rather than one event per request.
    pub grouping: bool,
    /// Which events: `"all"`, `"none"` or a list like `"sessions,handles"`.
    pub events: String,
}

impl SampleEvh {
    /// All events, one per request, to `backend`.
    pub fn to(backend: impl Into<String>) -> SampleEvh {
        SampleEvh {
            backend: backend.into(),
            grouping: false,
            events: "all".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    http: u16,
    admin: u16,
    ws: u16,
}

/// A running Janus.
///
/// Dropping it kills Janus (SIGKILL) if it still runs. When dropped during a
/// panic (a failing test) it prints the tails of Janus's log, stdout and
/// stderr, and keeps its folder if `RIG_KEEP=1`.
pub struct Janus {
    /// Janus itself, or (in a container) the `docker run` that waits for it.
    child: Child,
    /// The container's name, when Janus runs in one.
    container: Option<String>,
    /// Janus's process id on this machine, once it is known.
    janus_pid: Option<u32>,
    status: Option<ExitStatus>,
    dir: PathBuf,
    /// The folder, when the rig made it (deleted on drop).
    tmp: Option<tempfile::TempDir>,
    ports: Ports,
    /// What `GET /janus/info` said, once Janus answered.
    version: Option<(u32, u32, u32)>,
}

impl Janus {
    /// Starts Janus in a new temporary folder; panics (with the log) if it
    /// does not come up.
    pub fn start(opts: JanusOptions) -> Janus {
        let tmp = tempfile::Builder::new()
            .prefix("janus-rig-")
            .tempdir()
            .expect("create a temporary folder");
        let dir = tmp.path().to_path_buf();
        Janus::launch(&dir, Some(tmp), &opts)
    }

    /// Starts Janus in `dir` (created if needed, never deleted by the rig):
    /// for restart tests, start again in the `dir()` of a stopped instance.
    /// Configs and module folders are generated anew (with new ports); any
    /// other file there stays, and the previous run's logs are renamed.
    pub fn start_in(dir: &Path, opts: JanusOptions) -> Janus {
        Janus::launch(dir, None, &opts)
    }

    /// Starts Janus in `dir` like [`Janus::start_in`], but returns as soon as
    /// the process is spawned, without waiting for it to serve (to kill it at
    /// a chosen moment of its start). No retry on a port clash.
    pub fn spawn_in(dir: &Path, opts: JanusOptions) -> Janus {
        prepare_modules(dir, &opts);
        rotate_logs(dir);
        let ports = Ports {
            http: free_port(),
            admin: free_port(),
            ws: free_port(),
        };
        write_configs(dir, ports, &opts);
        let (child, container) = spawn(dir, opts.run_as, opts.network.as_deref());
        let janus_pid = container.is_none().then(|| child.id());
        Janus {
            child,
            container,
            janus_pid,
            status: None,
            dir: dir.to_path_buf(),
            tmp: None,
            ports,
            version: None,
        }
    }

    fn launch(dir: &Path, tmp: Option<tempfile::TempDir>, opts: &JanusOptions) -> Janus {
        prepare_modules(dir, opts);
        let mut tmp = tmp;
        for attempt in 1..=START_ATTEMPTS {
            rotate_logs(dir);
            let ports = Ports {
                http: free_port(),
                admin: free_port(),
                ws: free_port(),
            };
            write_configs(dir, ports, opts);
            let (child, container) = spawn(dir, opts.run_as, opts.network.as_deref());
            let janus_pid = container.is_none().then(|| child.id());
            let mut janus = Janus {
                child,
                container,
                janus_pid,
                status: None,
                dir: dir.to_path_buf(),
                tmp: tmp.take(),
                ports,
                version: None,
            };
            match janus.wait_ready() {
                Ok(()) => {
                    if let Some(name) = &janus.container {
                        janus.janus_pid = Some(container_pid(name));
                    }
                    return janus;
                }
                Err(why) if attempt < START_ATTEMPTS && janus.port_clash() => {
                    eprintln!(
                        "rig: Janus could not bind its ports ({why}); retrying with new ones"
                    );
                    janus.kill();
                    tmp = janus.tmp.take();
                }
                // Dropping `janus` while panicking shows its log.
                Err(why) => panic!("Janus did not start: {why} (its log follows)"),
            }
        }
        unreachable!()
    }

    /// Waits until the Janus API answers over HTTP and the WebSocket port
    /// accepts connections.
    fn wait_ready(&mut self) -> Result<(), String> {
        let info = format!("{}/info", self.http_url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("Janus exited ({status})"));
            }
            if self.port_clash() {
                return Err("a transport could not listen on its port".into());
            }
            // A short timeout: whoever else may hold the port need not answer.
            let version = http_request_within("GET", &info, None, Duration::from_secs(1))
                .ok()
                .filter(|r| r.status == 200)
                .and_then(|r| r.json().ok())
                .map(|info| parse_version(&info));
            if let Some(version) = version
                && std::net::TcpStream::connect(("127.0.0.1", self.ports.ws)).is_ok()
            {
                self.version = Some(version?);
                return Ok(());
            }
            if Instant::now() >= deadline {
                if self.port_clash() {
                    return Err("a transport could not listen on its port".into());
                }
                return Err(format!(
                    "no answer on {info} and ws port {} within {READY_TIMEOUT:?}",
                    self.ports.ws
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the log says a transport could not listen on its port (then
    /// Janus runs on without it, or exits if no transport is left).
    fn port_clash(&self) -> bool {
        let log = self.log();
        [
            "Couldn't start webserver on port",               // HTTP
            "Couldn't start admin/monitor webserver on port", // Admin HTTP
            "Error creating vhost",                           // WebSockets
        ]
        .iter()
        .any(|needle| log.contains(needle))
    }

    /// The instance's folder (`cfg/` and the logs are in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cfg_dir(&self) -> PathBuf {
        self.dir.join("cfg")
    }

    /// `ws://127.0.0.1:<port>/`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.ports.ws)
    }

    /// `http://127.0.0.1:<port>/janus`
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/janus", self.ports.http)
    }

    /// `http://127.0.0.1:<port>/admin`
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}/admin", self.ports.admin)
    }

    /// Janus's process id on this machine (in a container too: then it is
    /// the container's main process, as `/proc/<pid>` on this machine sees it).
    pub fn pid(&self) -> u32 {
        self.janus_pid.unwrap_or_else(|| self.child.id())
    }

    /// The version of the running Janus, from its `info` request, e.g.
    /// `(1, 1, 2)`: tests assert what differs between Janus versions with
    /// `janus.janus_version() >= (1, 3, 2)`.
    pub fn janus_version(&self) -> (u32, u32, u32) {
        self.version
            .expect("Janus answered its info request when it started")
    }

    /// Which behaviour generation this Janus belongs to (see [`Generation`]).
    pub fn generation(&self) -> Generation {
        Generation::of(self.janus_version())
    }

    /// Whether Janus itself sends a session `destroyed` when a transport
    /// goes away (WebSocket closed, reclaim off): the new [`Generation`].
    /// Before it, such sessions end silently.
    pub fn ends_sessions_on_transport_gone(&self) -> bool {
        self.generation() == Generation::New
    }

    /// Whether Janus's core reports its counts every 15 s (core `status:
    /// update`): Janus >= 1.2.0, and 0.x >= 0.14.0 (released together).
    pub fn reports_core_status(&self) -> bool {
        let v = self.janus_version();
        if v.0 == 0 {
            v >= (0, 14, 0)
        } else {
            v >= (1, 2, 0)
        }
    }

    /// Where this Janus runs (see [`JanusTarget`]).
    pub fn target(&self) -> &'static JanusTarget {
        JanusTarget::current()
    }

    /// Janus's log of this run so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("janus.log"))
    }

    /// Polls the log until it contains `needle` (true) or `timeout` passes.
    #[must_use = "a wait that timed out must fail the test: assert the result"]
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(|| self.log().contains(needle), timeout)
    }

    /// The exit status if Janus has exited (by itself or stopped), without
    /// waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .expect("wait for Janus")
                .map(|s| self.janus_status(s));
        }
        self.status
    }

    /// Janus's exit status from what the child said: `docker run` exits
    /// with the container's exit code, 128 + n when Janus died of signal n.
    fn janus_status(&self, status: ExitStatus) -> ExitStatus {
        match (&self.container, status.code()) {
            (Some(_), Some(code)) if (129..=128 + 64).contains(&code) => {
                ExitStatus::from_raw(code - 128)
            }
            _ => status,
        }
    }

    /// Sends `sig` to Janus: natively with kill(2), in a container with
    /// `docker kill --signal`.
    fn signal(&self, sig: libc::c_int) {
        match &self.container {
            None => signal(self.child.id(), sig),
            Some(name) => {
                let _ = docker()
                    .args(["kill", "--signal", &sig.to_string(), name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Freezes Janus, every thread of it (its watchdog, its events thread,
    /// the handler's worker), for `how_long`, as an overloaded machine can:
    /// SIGSTOP, then SIGCONT. The sleep is the fault itself, not a wait.
    pub fn freeze(&self, how_long: Duration) {
        self.signal(libc::SIGSTOP);
        std::thread::sleep(how_long);
        self.signal(libc::SIGCONT);
    }

    /// Stops Janus as an operator would (SIGINT) and waits for it to exit;
    /// returns its exit status. Panics if it is still running after 15 s.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        if self.version.is_some_and(has_rtcpfwd) {
            wait_for_rtcpfwd_loop(self.pid());
        }
        self.signal(libc::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() >= deadline {
                let stacks = thread_stacks(self.pid());
                self.kill();
                panic!(
                    "Janus did not exit within {STOP_TIMEOUT:?} of SIGINT (killed; its log follows). \
                     Its threads then:\n{stacks}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills Janus at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(name) = self.container.clone() {
            self.signal(libc::SIGKILL);
            if !wait_until(|| self.exited().is_some(), CONTAINER_KILL_TIMEOUT) {
                // The container never came up, or docker lost it: end the
                // client and make sure the container is gone.
                let _ = self.child.kill();
                remove_container(&name);
            }
        } else {
            let _ = self.child.kill();
        }
        if self.status.is_none() {
            let status = self.child.wait().expect("wait for Janus");
            self.status = Some(self.janus_status(status));
        }
    }

    /// A new WebSocket connection to the Janus API.
    pub fn ws(&self) -> WsClient {
        WsClient::connect(&self.ws_url())
    }

    /// The Janus API over HTTP.
    pub fn http(&self) -> HttpApi {
        HttpApi::new(self.http_url())
    }

    /// The Admin API over HTTP.
    pub fn admin(&self) -> Admin {
        Admin::new(self.admin_url())
    }

    /// What a failing test shows: exit status and the tails of the outputs.
    fn report(&self) -> String {
        let mut out = format!(
            "==== rig: Janus pid {} in {} ({}{})",
            self.pid(),
            self.dir.display(),
            JanusTarget::current(),
            self.container
                .as_ref()
                .map(|c| format!(", container {c}"))
                .unwrap_or_default()
        );
        match self.status {
            Some(status) => out += &format!(", exited: {status}\n"),
            None => out += ", was still running (now killed)\n",
        }
        let log = tail(&self.log(), TAIL_LINES);
        out += &format!("---- janus.log (last {TAIL_LINES} lines) ----\n{log}");
        let stdout = tail(&read_lossy(&self.dir.join("stdout.log")), TAIL_LINES);
        if stdout != log {
            out += &format!("---- stdout.log (last {TAIL_LINES} lines) ----\n{stdout}");
        }
        let stderr = tail(&read_lossy(&self.dir.join("stderr.log")), TAIL_LINES);
        out += &format!("---- stderr.log (last {TAIL_LINES} lines) ----\n{stderr}");
        out += "==== rig: end of Janus output\n";
        out
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let _ = self.exited(); // Record a crash before the kill hides it.
        let ran = self.status.is_none();
        self.kill();
        if ran {
            self.status = None; // The report says "was still running".
        }
        if failing {
            eprint!("{}", self.report());
        }
        let keep = match std::env::var("RIG_KEEP").as_deref() {
            Ok("all") => true,
            Ok("1") => failing,
            _ => false,
        };
        if keep {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!("rig: kept {}", kept.display());
            }
        } else if failing && self.tmp.is_some() {
            eprintln!("rig: set RIG_KEEP=1 to keep Janus's folder of a failing test");
        }
    }
}

/// Fills the module folders: EchoTest, the HTTP and WebSockets transports,
/// and the asked-for event handlers. Old entries are removed first (not
/// overwritten: a running Janus may still have them mapped).
fn prepare_modules(dir: &Path, opts: &JanusOptions) {
    for sub in ["cfg", "plugins", "transports", "events", "loggers"] {
        fs::create_dir_all(dir.join(sub))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(sub).display()));
    }
    for sub in ["plugins", "transports", "events", "loggers"] {
        for entry in fs::read_dir(dir.join(sub)).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    link_module(dir, "plugins", "libjanus_echotest.so");
    link_module(dir, "transports", "libjanus_http.so");
    link_module(dir, "transports", "libjanus_websockets.so");
    if opts.sampleevh.is_some() {
        link_module(dir, "events", "libjanus_sampleevh.so");
    }
    for h in &opts.stock_handlers {
        link_module(dir, "events", &format!("libjanus_{}.so", h.name));
    }
    if opts.lifecycleevh_config.is_some() {
        let so = opts.plugin_so.clone().unwrap_or_else(lifecycleevh_so);
        let to = dir.join("events/libjanus_lifecycleevh.so");
        fs::copy(&so, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", so.display(), to.display()));
    }
}

/// Links Janus's module `kind/name` into the instance: natively Debian's
/// file, or the prefix build's; in a container the image's (as the
/// container sees it: without janus-dev, only the versioned name
/// `name.<version>` is there).
fn link_module(dir: &Path, kind: &str, name: &str) {
    let current = JanusTarget::current();
    let target = match current {
        JanusTarget::Native | JanusTarget::Prefix { .. } => {
            let target = current.modules().join(kind).join(name);
            assert!(
                target.exists(),
                "{} is missing ({})",
                target.display(),
                current.install_hint()
            );
            target
        }
        JanusTarget::Docker { image } => {
            let dir = Path::new(MODULES).join(kind);
            let versioned = format!("{name}.");
            image_modules(image)
                .iter()
                .filter(|m| m.parent() == Some(dir.as_path()))
                .find(|m| {
                    let file = m.file_name().unwrap().to_string_lossy();
                    file == name || file.starts_with(&versioned)
                })
                .unwrap_or_else(|| panic!("image {image} has no {kind}/{name} in {MODULES}"))
                .clone()
        }
    };
    symlink(&target, dir.join(kind).join(name)).unwrap();
}

/// Janus's module files in `image` (listed once per image and process).
fn image_modules(image: &str) -> Vec<PathBuf> {
    static LISTED: Mutex<Option<HashMap<String, Vec<PathBuf>>>> = Mutex::new(None);
    let mut listed = LISTED.lock().unwrap_or_else(|e| e.into_inner());
    listed
        .get_or_insert_with(|| {
            remove_orphaned_containers();
            HashMap::new()
        })
        .entry(image.to_string())
        .or_insert_with(|| {
            let out = docker()
                .args(["run", "--rm", "--network", "none", "--log-driver", "none"])
                .args([
                    "--entrypoint",
                    "find",
                    image,
                    MODULES,
                    "-name",
                    "libjanus_*.so*",
                ])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run the docker client ({}): {e}", docker_bin()));
            assert!(
                out.status.success(),
                "listing Janus's modules in image {image} failed ({}): {} \
                 (is the image built? `make docker`)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .collect()
        })
        .clone()
}

/// Writes every config Janus reads (the handler configs only when asked).
fn write_configs(dir: &Path, ports: Ports, opts: &JanusOptions) {
    let cfg = dir.join("cfg");
    let d = dir.display();
    write(
        &cfg.join("janus.jcfg"),
        &format!(
            r#"general: {{
  configs_folder = "{d}/cfg"
  plugins_folder = "{d}/plugins"
  transports_folder = "{d}/transports"
  events_folder = "{d}/events"
  loggers_folder = "{d}/loggers"
  debug_level = 4
  debug_timestamps = true
  admin_secret = "{ADMIN_SECRET}"
  session_timeout = {session_timeout}
  reclaim_session_timeout = {reclaim}
  server_name = "RigJanus"
{extra}
}}
media: {{
{media}
}}
nat: {{
  ice_ignore_list = "vmnet"
{nat}
}}
plugins: {{}}
transports: {{}}
events: {{
  broadcast = true
{events}
}}
"#,
            session_timeout = opts.session_timeout,
            reclaim = opts.reclaim_session_timeout,
            extra = opts.extra_janus_general,
            media = opts.extra_janus_media,
            nat = opts.extra_janus_nat,
            events = opts.extra_janus_events,
        ),
    );
    write(
        &cfg.join("janus.transport.http.jcfg"),
        &format!(
            r#"general: {{ http = true, port = {http}, ip = "127.0.0.1", base_path = "/janus", events = {events} }}
admin: {{ admin_http = true, admin_port = {admin}, admin_ip = "127.0.0.1", admin_base_path = "/admin" }}
"#,
            http = ports.http,
            admin = ports.admin,
            events = opts.http_events,
        ),
    );
    write(
        &cfg.join("janus.transport.websockets.jcfg"),
        &format!(
            r#"general: {{ ws = true, ws_port = {ws}, ws_ip = "127.0.0.1", events = {events} }}
admin: {{ admin_ws = false }}
"#,
            ws = ports.ws,
            events = opts.ws_events,
        ),
    );
    write(&cfg.join("janus.plugin.echotest.jcfg"), "general: {}\n");

    let sampleevh = cfg.join("janus.eventhandler.sampleevh.jcfg");
    match &opts.sampleevh {
        Some(s) => write(
            &sampleevh,
            &format!(
                "general: {{ enabled = true, events = \"{}\", grouping = {}, json = \"compact\", backend = \"{}\" }}\n",
                s.events, s.grouping, s.backend
            ),
        ),
        None => remove_if_there(&sampleevh),
    }
    for h in &opts.stock_handlers {
        write(
            &cfg.join(format!("janus.eventhandler.{}.jcfg", h.name)),
            &h.config,
        );
    }
    let lifecycleevh = cfg.join("janus.eventhandler.lifecycleevh.jcfg");
    match &opts.lifecycleevh_config {
        Some(text) => write(
            &lifecycleevh,
            &text
                .replace(JANUS_HTTP_PORT, &ports.http.to_string())
                .replace(JANUS_ADMIN_PORT, &ports.admin.to_string()),
        ),
        None => remove_if_there(&lifecycleevh),
    }
}

/// Starts Janus on the instance's configs: natively, or in a container
/// (then also returns the container's name); as `run_as` if the tests run
/// as root.
fn spawn(dir: &Path, run_as: Option<(u32, u32)>, network: Option<&str>) -> (Child, Option<String>) {
    let run_as = run_as.filter(|_| is_root());
    if let Some(user) = run_as {
        hand_over(dir, user);
    }
    let cfg = dir.join("cfg");
    let output = |name: &str| {
        fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"))
    };
    let janus_args = |cmd: &mut Command| {
        cmd.arg("-F")
            .arg(&cfg)
            .arg("-C")
            .arg(cfg.join("janus.jcfg"))
            .arg("-o")
            .arg("-L")
            .arg(dir.join("janus.log"));
    };
    let current = JanusTarget::current();
    let (mut cmd, container) = match current {
        JanusTarget::Native | JanusTarget::Prefix { .. } => {
            let bin = current.janus_bin();
            let mut cmd = match run_as {
                None => Command::new(&bin),
                Some((uid, gid)) => {
                    let mut cmd = Command::new("setpriv");
                    cmd.arg(format!("--reuid={uid}"))
                        .arg(format!("--regid={gid}"))
                        .arg("--clear-groups")
                        .arg("--")
                        .arg(&bin);
                    cmd
                }
            };
            janus_args(&mut cmd);
            (cmd, None)
        }
        JanusTarget::Docker { image } => {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let name = format!(
                "lcevh-rig-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            // SAFETY: getuid(2) and getgid(2) cannot fail and touch no memory.
            let (uid, gid) = run_as.unwrap_or(unsafe { (libc::getuid(), libc::getgid()) });
            let mut cmd = docker();
            cmd.args(["run", "--rm", "--name", &name, "--label", CONTAINER_LABEL])
                .args(["--network", network.unwrap_or("host")])
                .args(["--log-driver", "none"])
                .args(["--user", &format!("{uid}:{gid}")])
                .args(["--entrypoint", JANUS_BIN, "--workdir"])
                .arg(dir);
            for folder in shared_folders(dir) {
                cmd.arg("--volume")
                    .arg(format!("{0}:{0}", folder.display()));
            }
            cmd.arg(image);
            janus_args(&mut cmd);
            (cmd, Some(name))
        }
    };
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output("stdout.log"))
        .stderr(output("stderr.log"))
        .spawn()
        .unwrap_or_else(|e| match &container {
            None => panic!(
                "start {} ({}): {e}",
                current.janus_bin().display(),
                current.install_hint()
            ),
            Some(_) => panic!("start the docker client ({}): {e}", docker_bin()),
        });
    (child, container)
}

/// The folders a container shares with the tests, at the same paths: the
/// temporary folder (the tests' output files, spools, certificates) and the
/// instance's folder, if it is elsewhere.
fn shared_folders(dir: &Path) -> Vec<PathBuf> {
    let tmp = std::env::temp_dir();
    let tmp = tmp.canonicalize().unwrap_or(tmp);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if dir.starts_with(&tmp) {
        vec![tmp]
    } else {
        vec![tmp, dir]
    }
}

/// A container that only holds a network namespace of its own (`docker run
/// --network none`, its image's `sleep`), for a test that builds a network
/// there and runs Janus in it from an image: the test's thread joins the
/// namespace ([`NetnsHolder::netns`], with setns(2)) and Janus's container
/// joins it with [`JanusOptions::network`]. Removed when dropped (or, if the
/// test process died, by the next rig's sweep of orphaned containers).
pub struct NetnsHolder {
    name: String,
    pid: u32,
}

impl NetnsHolder {
    pub fn start(image: &str) -> NetnsHolder {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "lcevh-rig-{}-netns-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = docker()
            .args(["run", "--detach", "--rm", "--name", &name])
            .args(["--label", CONTAINER_LABEL])
            .args(["--network", "none", "--log-driver", "none"])
            .args(["--entrypoint", "sleep", image, "infinity"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run the docker client ({}): {e}", docker_bin()));
        assert!(
            out.status.success(),
            "start a container holding a network namespace ({image}): {} {} \
             (is the image built? `make docker`)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        // Removed by its drop if its pid cannot be read.
        let mut holder = NetnsHolder { name, pid: 0 };
        holder.pid = container_pid(&holder.name);
        holder
    }

    /// Its network namespace, to setns(2) into.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// The `--network` of a container that joins it.
    pub fn network(&self) -> String {
        format!("container:{}", self.name)
    }
}

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        remove_container(&self.name);
    }
}

fn docker_bin() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "docker".into())
}

fn docker() -> Command {
    Command::new(docker_bin())
}

/// The process id, on this machine, of the running container's main process.
fn container_pid(name: &str) -> u32 {
    let out = docker()
        .args(["inspect", "--format", "{{.State.Pid}}", name])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run the docker client ({}): {e}", docker_bin()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .ok()
        .filter(|pid| *pid != 0)
        .unwrap_or_else(|| {
            panic!(
                "docker inspect {name}: no process id ({}{})",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

/// Removes the rig's containers whose test process is gone (killed hard:
/// a test run stopped with Ctrl-C stops its containers itself, through
/// `docker run`'s signal proxy).
fn remove_orphaned_containers() {
    let Ok(out) = docker()
        .args([
            "ps",
            "--all",
            "--filter",
            &format!("label={CONTAINER_LABEL}"),
        ])
        .args(["--format", "{{.Names}}"])
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        let owner = name
            .strip_prefix("lcevh-rig-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("rig: removing container {name}, left by test process {pid}");
            remove_container(name);
        }
    }
}

fn remove_container(name: &str) {
    let _ = docker()
        .args(["rm", "--force", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `(major, minor, patch)` from `GET /janus/info`'s `version_string`
/// (e.g. `"1.1.2"`), or why not.
fn parse_version(info: &serde_json::Value) -> Result<(u32, u32, u32), String> {
    let text = info["version_string"]
        .as_str()
        .ok_or_else(|| format!("no version_string in Janus's info: {info}"))?;
    let mut parts = text.split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok((a, b, c)),
        _ => Err(format!("Janus's version_string {text:?} is not x.y.z")),
    }
}

/// Renames a previous run's logs to `<name>.<n>` (Janus appends to its log).
fn rotate_logs(dir: &Path) {
    if !dir.join("janus.log").exists() {
        return;
    }
    let n = (1..)
        .find(|n| !dir.join(format!("janus.log.{n}")).exists())
        .unwrap();
    for name in ["janus.log", "stdout.log", "stderr.log"] {
        let from = dir.join(name);
        if from.exists() {
            fs::rename(&from, dir.join(format!("{name}.{n}"))).unwrap();
        }
    }
}

/// The stack of every thread of process `pid`, as gdb shows them (for a
/// process that hangs), or why not.
fn thread_stacks(pid: u32) -> String {
    let out = Command::new("timeout")
        .args(["30", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => format!(
            "(gdb: {}: {})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("(gdb: {e}; apt-get install gdb to see them)"),
    }
}

/// Whether this Janus has the core's RTP forwarders (`rtpfwd.c`: 1.x from
/// 1.2, 0.x from 0.14) and with them the thread `rtcpfwd`.
fn has_rtcpfwd((major, minor, _): (u32, u32, u32)) -> bool {
    major > 1 || (major == 1 && minor >= 2) || (major == 0 && minor >= 14)
}

/// Waits (at most 10 s) until Janus's `rtcpfwd` thread sits in its loop's
/// poll. Janus's shutdown (`janus_rtp_forwarders_deinit`, 0.16.1 and 1.4.1)
/// quits that loop only if it already runs (`g_main_loop_is_running`) and
/// then joins the thread: a SIGINT that comes before the thread first ran
/// hangs Janus's exit for ever, after "Freeing crypto resources...", before
/// any event handler is closed. An operator's Janus has run for long; the
/// rig stops Janus moments after it starts, on a loaded machine, and saw
/// that hang. glib names the thread when it first runs (until then it has
/// Janus's name), so the wait is for a thread of that name in poll(2) or
/// ppoll(2) (x86_64 syscalls 7 and 271, `/proc/<pid>/task/<tid>/syscall`).
fn wait_for_rtcpfwd_loop(pid: u32) {
    let in_loop = || {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return true; // Janus is gone: nothing to wait for
        };
        tasks.flatten().any(|task| {
            let path = task.path();
            let named = fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "rtcpfwd");
            let call = fs::read_to_string(path.join("syscall")).unwrap_or_default();
            let number = call.split_whitespace().next().unwrap_or("");
            named && (number == "7" || number == "271")
        })
    };
    if !super::wait_until(in_loop, Duration::from_secs(10)) {
        eprintln!("rig: Janus's rtcpfwd thread never showed in its loop; stopping Janus anyway");
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our child,
    // not yet reaped, so it cannot have been reused.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn remove_if_there(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", path.display()),
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`, each ending in a newline.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| format!("{l}\n")).collect()
}
