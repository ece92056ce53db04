//! Real WebRTC calls: Debian's `chromium`, headless with a fake camera and
//! microphone, calling Janus's EchoTest plugin from a small page
//! (`tests/webrtc/echotest.html`), driven over the DevTools protocol.
//!
//! Janus never gathers ICE candidates on a loopback interface, so the
//! browser and Janus run in a private network namespace of their own
//! ([`in_private_network`]; with a Janus from an image, the namespace of
//! a container that Janus's container joins): there a veth pair carries
//! 127.0.0.2 on one end, Janus is told to gather on that interface only
//! (`nat.ice_enforce_list`, see [`janus_nat`]), and its RTP ports are a
//! fixed range ([`RTP_PORTS`], free in a namespace of its own) that
//! `iptables` can drop packets to ([`PrivateNet::drop_incoming_udp`]: this
//! kernel has no `netem`; a rule on INPUT drops what the browser sends to
//! Janus, one on OUTPUT would only make the sender see EPERM).
//!
//! Needs root (a network namespace, iptables) and the Debian packages
//! chromium, iproute2 and iptables (the Makefile installs them).

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use super::{JanusOptions, JanusTarget, NetnsHolder, wait_until};

/// The veth end that carries 127.0.0.2, where Janus gathers candidates.
pub const VETH: &str = "lcevh0";
/// Janus's RTP/RTCP ports (`media.rtp_port_range`).
pub const RTP_PORTS: (u16, u16) = (20000, 20099);

/// Lines for `media: {}` of janus.jcfg: the RTP port range.
pub fn janus_media() -> String {
    format!("  rtp_port_range = \"{}-{}\"", RTP_PORTS.0, RTP_PORTS.1)
}

/// Lines for `nat: {}` of janus.jcfg: gather on the veth only.
pub fn janus_nat() -> String {
    format!("  ice_enforce_list = \"{VETH}\"")
}

/// The private network a closure runs in (see [`in_private_network`]).
pub struct PrivateNet {
    /// With a Janus from an image: the container that holds the namespace.
    holder: Option<NetnsHolder>,
}

/// Runs `f` on a thread of its own in a new network namespace with its
/// loopback up and a veth pair ([`VETH`] with 127.0.0.2): every socket it
/// opens and every process it starts (Janus, the browser, `iptables`) is
/// in that namespace. Natively the thread makes the namespace
/// (unshare(2)), which goes when the thread ends; with a Janus from an
/// image (`LCEVH_JANUS=docker:<image>`) a container of that image holds it
/// ([`NetnsHolder`]), the thread joins it (setns(2)), and Janus's container
/// joins it too: pass [`PrivateNet::janus_network`] as
/// [`JanusOptions::network`]. A panic in `f` is the caller's panic. Needs
/// root, as CI has.
pub fn in_private_network<T: Send + 'static>(
    f: impl FnOnce(&PrivateNet) -> T + Send + 'static,
) -> T {
    let thread = std::thread::Builder::new()
        .name("private network".into())
        .spawn(move || {
            let net = PrivateNet::enter();
            for args in [
                "link set lo up".to_string(),
                format!("link add {VETH} type veth peer name {VETH}p"),
                format!("addr add 127.0.0.2/8 dev {VETH}"),
                format!("link set {VETH} up"),
                format!("link set {VETH}p up"),
            ] {
                run("ip", &args);
            }
            f(&net)
        })
        .expect("spawn a thread");
    match thread.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

impl PrivateNet {
    /// Moves this thread into a network namespace of its own (see
    /// [`in_private_network`]).
    fn enter() -> PrivateNet {
        let holder = match JanusTarget::current() {
            JanusTarget::Docker { image } => Some(NetnsHolder::start(image)),
            _ => None,
        };
        let rc = match &holder {
            None => {
                // SAFETY: unshare(2) changes only this thread's namespaces.
                unsafe { libc::unshare(libc::CLONE_NEWNET) }
            }
            Some(h) => {
                let path = h.netns();
                let ns = std::fs::File::open(&path)
                    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                // SAFETY: setns(2) on a descriptor we own, which stays open
                // for the call; it changes only this thread's namespace.
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }
            }
        };
        assert_eq!(
            rc,
            0,
            "{}: {} (the WebRTC tests need root)",
            if holder.is_some() {
                "setns"
            } else {
                "unshare(CLONE_NEWNET)"
            },
            std::io::Error::last_os_error()
        );
        PrivateNet { holder }
    }

    /// What [`JanusOptions::network`] must be for Janus to run in this
    /// network: None natively (Janus starts from this thread, in it).
    pub fn janus_network(&self) -> Option<String> {
        self.holder.as_ref().map(NetnsHolder::network)
    }

    /// Drops each UDP packet to Janus's [`RTP_PORTS`] with `probability`
    /// (what the browser sends to Janus: its `in` direction).
    pub fn drop_incoming_udp(&self, probability: f64) {
        run(
            "iptables",
            &format!(
                "-A INPUT -p udp --dport {}:{} -m statistic --mode random --probability {probability} -j DROP",
                RTP_PORTS.0, RTP_PORTS.1
            ),
        );
    }
}

fn run(program: &str, args: &str) {
    let out = Command::new(program)
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} (apt-get install iproute2 iptables): {e}"));
    assert!(
        out.status.success(),
        "{program} {args}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// How long the browser may take to start and open its DevTools port.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless chromium, and a DevTools connection to it. Killed (with
/// every process it started) when dropped.
pub struct Browser {
    child: Child,
    /// None until the browser answered.
    devtools: Option<WebSocket<TcpStream>>,
    next_id: u64,
    dir: PathBuf,
}

/// A page of [`Browser`], to evaluate JavaScript in.
pub struct Page<'b> {
    browser: &'b mut Browser,
    session: String,
}

impl Browser {
    /// Starts chromium with a fresh profile in `dir` (its output goes to
    /// `dir/chromium.log`).
    pub fn launch(dir: &Path) -> Browser {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(dir.join("chromium.log")).unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // Its own process group: dropping kills the renderers too.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start chromium (apt-get install chromium): {e}"));
        let active = profile.join("DevToolsActivePort");
        let mut browser_path = None;
        let found = wait_until(
            || {
                browser_path = std::fs::read_to_string(&active)
                    .ok()
                    .filter(|t| t.lines().count() >= 2);
                browser_path.is_some()
            },
            LAUNCH_TIMEOUT,
        );
        let mut browser = Browser {
            child,
            devtools: None,
            next_id: 1,
            dir: dir.to_path_buf(),
        };
        assert!(
            found,
            "chromium did not open its DevTools port within {LAUNCH_TIMEOUT:?}: {}",
            browser.log()
        );
        let text = browser_path.unwrap();
        let mut lines = text.lines();
        let port: u16 = lines.next().unwrap().trim().parse().unwrap();
        let path = lines.next().unwrap().trim().to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("DevTools handshake");
        browser.devtools = Some(ws);
        browser
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default()
    }

    /// Sends a DevTools command and waits for its answer (events that come
    /// meanwhile are skipped); panics on an error answer or after `timeout`.
    fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let devtools = self.devtools.as_mut().expect("connected at launch");
        devtools
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no answer to {method} within {timeout:?}");
            let devtools = self.devtools.as_mut().expect("connected at launch");
            devtools.get_ref().set_read_timeout(Some(left)).unwrap();
            let reply = match devtools.read() {
                Ok(Message::Text(t)) => serde_json::from_str::<Value>(&t).unwrap(),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => panic!("DevTools connection: {e}; chromium said: {}", self.log()),
            };
            if reply["id"] != json!(id) {
                continue;
            }
            if let Some(err) = reply.get("error") {
                panic!("DevTools {method}: {err}");
            }
            return reply["result"].clone();
        }
    }

    /// Opens `file` (a local HTML file) in a new page, once its scripts ran.
    pub fn open(&mut self, file: &Path) -> Page<'_> {
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        let t = Duration::from_secs(30);
        let target = self.command(None, "Target.createTarget", json!({"url": url}), t);
        let attached = self.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
            t,
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let mut page = Page {
            browser: self,
            session,
        };
        let loaded = wait_until(
            || {
                page.eval_within(
                    "document.readyState === 'complete' && typeof startCall === 'function'",
                    t,
                ) == json!(true)
            },
            t,
        );
        assert!(loaded, "{url} did not load");
        page
    }
}

impl Page<'_> {
    /// Evaluates `expression`, awaiting it if it is a promise; returns its
    /// value. Panics with the page's error if it throws or rejects.
    pub fn eval(&mut self, expression: &str, timeout: Duration) -> Value {
        let r = self.browser.command(
            Some(&self.session.clone()),
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true,
                   "timeout": timeout.as_millis() as u64}),
            timeout + Duration::from_secs(5),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!(
                "{expression}: {}",
                e["exception"]["description"]
                    .as_str()
                    .unwrap_or(&e.to_string())
            );
        }
        r["result"]["value"].clone()
    }

    fn eval_within(&mut self, expression: &str, timeout: Duration) -> Value {
        let r = self.browser.command(
            Some(&self.session.clone()),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
            timeout,
        );
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(ws) = &mut self.devtools {
            let _ = ws.close(None);
        }
        // SAFETY: kill(2) on the process group of our own child (made with
        // process_group(0): its id is the child's), not yet reaped.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- chromium.log ----\n{}", self.log());
        }
    }
}

/// The page the tests drive: `tests/webrtc/echotest.html`.
pub fn echotest_page() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webrtc/echotest.html")
}

/// `s` as a JavaScript string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
