//! Configuring, starting and stopping a real Janus.
//!
//! An instance's folder holds:
//! - `cfg/`: janus.jcfg and one .jcfg per module, generated on each start;
//! - `plugins/`, `transports/`, `events/`, `loggers/`: the modules to load
//!   (symlinks to Debian's, a copy of the handler under test);
//! - `janus.log`, `stdout.log`, `stderr.log`: this run's output (a restart
//!   with [`Janus::start_in`] renames the previous run's to `*.log.1`, `.2`...).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::admin::ADMIN_SECRET;
use super::http::http_request_within;
use super::{Admin, HttpApi, WsClient, free_port, lifecycleevh_so, wait_until};

/// Debian's Janus.
const JANUS_BIN: &str = "/usr/bin/janus";
/// Debian's Janus modules.
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/janus";
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
    /// handler under test (`plugin_so`) with this config.
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
    child: Child,
    status: Option<ExitStatus>,
    dir: PathBuf,
    /// The folder, when the rig made it (deleted on drop).
    tmp: Option<tempfile::TempDir>,
    ports: Ports,
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
        Janus {
            child: spawn(dir),
            status: None,
            dir: dir.to_path_buf(),
            tmp: None,
            ports,
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
            let child = spawn(dir);
            let mut janus = Janus {
                child,
                status: None,
                dir: dir.to_path_buf(),
                tmp: tmp.take(),
                ports,
            };
            match janus.wait_ready() {
                Ok(()) => return janus,
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
            let http_up = http_request_within("GET", &info, None, Duration::from_secs(1))
                .is_ok_and(|r| r.status == 200);
            if http_up && std::net::TcpStream::connect(("127.0.0.1", self.ports.ws)).is_ok() {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Janus's log of this run so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("janus.log"))
    }

    /// Polls the log until it contains `needle` (true) or `timeout` passes.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(|| self.log().contains(needle), timeout)
    }

    /// The exit status if Janus has exited (by itself or stopped), without
    /// waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait for Janus");
        }
        self.status
    }

    /// Stops Janus as an operator would (SIGINT) and waits for it to exit;
    /// returns its exit status. Panics if it is still running after 15 s.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        signal(self.pid(), libc::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "Janus did not exit within {STOP_TIMEOUT:?} of SIGINT (killed; its log follows)"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills Janus at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait for Janus"));
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
            "==== rig: Janus pid {} in {}",
            self.pid(),
            self.dir.display()
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
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
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
    if opts.lifecycleevh_config.is_some() {
        let so = opts.plugin_so.clone().unwrap_or_else(lifecycleevh_so);
        let to = dir.join("events/libjanus_lifecycleevh.so");
        fs::copy(&so, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", so.display(), to.display()));
    }
}

fn link_module(dir: &Path, kind: &str, name: &str) {
    let target = Path::new(MODULES).join(kind).join(name);
    assert!(
        target.exists(),
        "{} is missing (apt-get install janus)",
        target.display()
    );
    symlink(&target, dir.join(kind).join(name)).unwrap();
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
media: {{}}
nat: {{ ice_ignore_list = "vmnet" }}
plugins: {{}}
transports: {{}}
events: {{ broadcast = true }}
"#,
            session_timeout = opts.session_timeout,
            reclaim = opts.reclaim_session_timeout,
            extra = opts.extra_janus_general,
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
    let lifecycleevh = cfg.join("janus.eventhandler.lifecycleevh.jcfg");
    match &opts.lifecycleevh_config {
        Some(text) => write(&lifecycleevh, text),
        None => remove_if_there(&lifecycleevh),
    }
}

fn spawn(dir: &Path) -> Child {
    let cfg = dir.join("cfg");
    let output = |name: &str| {
        fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"))
    };
    Command::new(JANUS_BIN)
        .arg("-F")
        .arg(&cfg)
        .arg("-C")
        .arg(cfg.join("janus.jcfg"))
        .arg("-o")
        .arg("-L")
        .arg(dir.join("janus.log"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output("stdout.log"))
        .stderr(output("stderr.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {JANUS_BIN} (apt-get install janus): {e}"))
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
