//! Starting and stopping a real Janus.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Admin, HttpApi, WsClient, free_port, lifecycleevh_so, wait_until};

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// How to set up a Janus instance.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// Text of janus.eventhandler.lifecycleevh.jcfg; Some installs the handler.
    pub lifecycleevh_config: Option<String>,
    /// The handler to install (default: the one cargo built).
    pub plugin_so: Option<PathBuf>,
    /// Enables Janus's stock sampleevh.
    pub sampleevh: Option<SampleEvh>,
    pub session_timeout: u32,
    pub reclaim_session_timeout: u32,
    /// `events` of the WebSockets transport.
    pub ws_events: bool,
    /// `events` of the HTTP transport (every Admin request is one such event).
    pub http_events: bool,
    /// Extra lines inside `general: {}` of janus.jcfg.
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

/// Janus's sample event handler, posting to a test receiver.
#[derive(Debug, Clone)]
pub struct SampleEvh {
    pub backend: String,
    pub grouping: bool,
    pub events: String,
}

/// A running Janus. Killed on drop; on a failing test its log is printed.
pub struct Janus {
    child: Option<Child>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    http_port: u16,
    admin_port: u16,
    ws_port: u16,
    status: Option<ExitStatus>,
}

impl Janus {
    /// Starts Janus in a new temporary folder.
    pub fn start(opts: JanusOptions) -> Janus {
        let tmp = tempfile::Builder::new()
            .prefix("janus-rig")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let keep = std::env::var("RIG_KEEP").is_ok_and(|v| v == "1");
        let mut janus = Janus::start_in(&dir, opts);
        if keep {
            eprintln!("rig: keeping {}", dir.display());
            std::mem::forget(tmp);
        } else {
            janus._tmp = Some(tmp);
        }
        janus
    }

    /// Starts Janus in `dir`, (re)writing its configs; other files there stay
    /// (for restart tests).
    pub fn start_in(dir: &Path, opts: JanusOptions) -> Janus {
        let cfg = dir.join("cfg");
        for sub in ["cfg", "plugins", "transports", "events", "loggers"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for sub in ["plugins", "transports", "events"] {
            for entry in fs::read_dir(dir.join(sub)).unwrap() {
                fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
        link(
            &format!("{MODULES}/plugins/libjanus_echotest.so"),
            &dir.join("plugins"),
        );
        link(
            &format!("{MODULES}/transports/libjanus_http.so"),
            &dir.join("transports"),
        );
        link(
            &format!("{MODULES}/transports/libjanus_websockets.so"),
            &dir.join("transports"),
        );
        let (http_port, admin_port, ws_port) = (free_port(), free_port(), free_port());
        write(
            &cfg.join("janus.jcfg"),
            &format!(
                "general: {{\n  configs_folder = \"{cfg}\"\n  plugins_folder = \"{d}/plugins\"\n  transports_folder = \"{d}/transports\"\n  events_folder = \"{d}/events\"\n  loggers_folder = \"{d}/loggers\"\n  debug_level = 4\n  admin_secret = \"janusoverlord\"\n  session_timeout = {st}\n  reclaim_session_timeout = {rst}\n  server_name = \"RigJanus\"\n{extra}\n}}\nmedia: {{}}\nnat: {{ ice_ignore_list = \"vmnet\" }}\nplugins: {{}}\ntransports: {{}}\nevents: {{ broadcast = true }}\n",
                cfg = cfg.display(),
                d = dir.display(),
                st = opts.session_timeout,
                rst = opts.reclaim_session_timeout,
                extra = opts.extra_janus_general,
            ),
        );
        write(
            &cfg.join("janus.transport.http.jcfg"),
            &format!(
                "general: {{ http = true, port = {http_port}, ip = \"127.0.0.1\", base_path = \"/janus\", events = {} }}\nadmin: {{ admin_http = true, admin_port = {admin_port}, admin_ip = \"127.0.0.1\", admin_base_path = \"/admin\" }}\n",
                opts.http_events
            ),
        );
        write(
            &cfg.join("janus.transport.websockets.jcfg"),
            &format!(
                "general: {{ ws = true, ws_port = {ws_port}, ws_ip = \"127.0.0.1\", events = {} }}\nadmin: {{ admin_ws = false }}\n",
                opts.ws_events
            ),
        );
        write(&cfg.join("janus.plugin.echotest.jcfg"), "general: {}\n");
        let _ = fs::remove_file(cfg.join("janus.eventhandler.sampleevh.jcfg"));
        if let Some(s) = &opts.sampleevh {
            link(
                &format!("{MODULES}/events/libjanus_sampleevh.so"),
                &dir.join("events"),
            );
            write(
                &cfg.join("janus.eventhandler.sampleevh.jcfg"),
                &format!(
                    "general: {{ enabled = true, events = \"{}\", grouping = {}, json = \"compact\", backend = \"{}\" }}\n",
                    s.events, s.grouping, s.backend
                ),
            );
        }
        let _ = fs::remove_file(cfg.join("janus.eventhandler.lifecycleevh.jcfg"));
        if let Some(text) = &opts.lifecycleevh_config {
            let so = opts.plugin_so.clone().unwrap_or_else(lifecycleevh_so);
            fs::copy(&so, dir.join("events/libjanus_lifecycleevh.so")).unwrap();
            write(&cfg.join("janus.eventhandler.lifecycleevh.jcfg"), text);
        }
        let log = dir.join("janus.log");
        let _ = fs::remove_file(&log);
        let child = Command::new("janus")
            .arg("-F")
            .arg(&cfg)
            .arg("-C")
            .arg(cfg.join("janus.jcfg"))
            .arg("-o")
            .arg("-L")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start janus (make deps installs it)");
        let mut janus = Janus {
            child: Some(child),
            dir: dir.to_path_buf(),
            _tmp: None,
            http_port,
            admin_port,
            ws_port,
            status: None,
        };
        janus.wait_ready();
        janus
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/info", self.http_url());
        let ws = self.ws_port;
        let ready = wait_until(
            || {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!(
                        "Janus exited during startup ({status}):\n{}",
                        self.log_tail()
                    );
                }
                super::http::get(&url).is_ok_and(|(code, _)| code == 200)
                    && std::net::TcpStream::connect(("127.0.0.1", ws)).is_ok()
            },
            Duration::from_secs(30),
        );
        assert!(ready, "Janus did not start serving:\n{}", self.log_tail());
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cfg_dir(&self) -> PathBuf {
        self.dir.join("cfg")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.ws_port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/janus", self.http_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}/admin", self.admin_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(|| self.log().contains(needle), timeout)
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["janus.log", "stderr.log"] {
            let text = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(200);
            out += &format!("---- {name} (last {} lines) ----\n", lines.len() - from);
            out += &lines[from..].join("\n");
            out.push('\n');
        }
        out
    }

    /// SIGINT, then waits for Janus to exit (panics with the log after 30 s).
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let child = self.child.as_mut().expect("janus running");
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!(
                    "Janus did not exit within 30 s of SIGINT:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut()
            && self.status.is_none()
        {
            let _ = child.kill();
            self.status = child.wait().ok();
        }
    }

    pub fn ws(&self) -> WsClient {
        WsClient::connect(self.ws_port)
    }

    pub fn http(&self) -> HttpApi {
        HttpApi::new(self.http_url())
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.admin_url())
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("rig: Janus in {}\n{}", self.dir.display(), self.log_tail());
        }
    }
}

fn link(target: &str, dir: &Path) {
    let name = Path::new(target).file_name().unwrap();
    symlink(target, dir.join(name)).unwrap();
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}
