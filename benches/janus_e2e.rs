//! End to end in a real Janus (Debian's 1.1.2):
//!
//! 1. A flood of external events through the Admin API (`custom_event` over
//!    keep-alive connections) with (a) no handler, (b) Janus's sampleevh to a
//!    local receiver, (c) lifecycleevh's HTTP sink to the same receiver,
//!    (d) lifecycleevh's file sink: Janus's CPU time per event (from /proc),
//!    events delivered per second, peak RSS; ratios against (b).
//! 2. Session churn: 100, 1,000 and 5,000 concurrent WebSocket sessions
//!    dropped at once; the time until Janus reported every close, and until
//!    every `destroyed` is in the file.
//!
//! `cargo build --release && cargo bench --bench janus_e2e` (or `make bench`).
//! `E2E_EVENTS` sets the flood size (default 100000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::{Janus, JanusOptions, Receiver, SampleEvh, WsClient, read_jsonl};

/// Janus's CPU time in seconds, summed over its threads with the
/// scheduler's nanosecond accounting (`/proc/<pid>/task/*/schedstat`), and
/// its peak RSS in KiB. `only`: just the threads whose name starts so.
fn cpu_seconds(pid: u32, only: Option<&str>) -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Some(prefix) = only {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e9
}

fn usage(pid: u32) -> (f64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu_seconds(pid, None), hwm)
}

/// CPU time (s) of this handler's own threads (named `lcevh ...`) in Janus.
fn lcevh_threads_cpu(pid: u32) -> f64 {
    cpu_seconds(pid, Some("lcevh"))
}

/// POSTs `count` custom_event requests on one keep-alive connection.
fn flood(admin_port: u16, count: u64, first: u64) {
    let mut stream = TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    for n in first..first + count {
        let body = format!(
            r#"{{"janus":"custom_event","transaction":"t{n}","admin_secret":"janusoverlord","schema":"bench","data":{{"n":{n}}}}}"#
        );
        let req = format!(
            "POST /admin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        read_response(&mut reader, &mut line);
    }
}

/// Reads one HTTP/1.1 response (Janus answers with chunked encoding).
fn read_response(reader: &mut BufReader<TcpStream>, line: &mut String) {
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        chunked |= l == "transfer-encoding: chunked";
    }
    if !chunked {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        return;
    }
    loop {
        line.clear();
        reader.read_line(line).unwrap();
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
        let mut chunk = vec![0u8; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return;
        }
    }
}

/// External events (type 4) in a JSON Lines file.
fn count_in_file(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":4,"))
        .count() as u64
}

struct Run {
    name: &'static str,
    cpu_per_event_us: f64,
    delivered_per_s: f64,
    /// Admin requests Janus answered per second during the flood.
    flood_per_s: f64,
    peak_rss_mb: f64,
    /// Janus API `GET /janus/info` latency during the flood: p50, p99 (ms).
    api_ms: (f64, f64),
    /// CPU of lifecycleevh's own threads per event (µs).
    lcevh_us: f64,
}

/// Probes the Janus API every 10 ms until `stop`, returning latencies (ms).
fn probe_api(http_port: u16, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let mut out = Vec::new();
    while !stop.load(Relaxed) {
        let t = Instant::now();
        stream
            .write_all(
                b"GET /janus/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
            )
            .unwrap();
        read_response(&mut reader, &mut line);
        out.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(10));
    }
    out
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// A backend that accepts connections and never answers.
fn hanging_backend() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    port
}

fn run(name: &'static str, setup: &str, events: u64) -> Run {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut opts = JanusOptions {
        http_events: false,
        ..JanusOptions::default()
    };
    match setup {
        "none" => {}
        "null" => {
            opts.lifecycleevh_config = Some(String::new());
            opts.plugin_so = Some(null_handler());
        }
        "sampleevh" => {
            opts.sampleevh = Some(SampleEvh {
                backend: receiver.url(),
                grouping: true,
                events: "all".into(),
            })
        }
        "http" => {
            opts.lifecycleevh_config = Some(format!(
                "general: {{ enabled = true }}\nfile: {{ enabled = false }}\nhttp: {{ backend = \"{}\" }}\n",
                receiver.url()
            ))
        }
        "file" => {
            opts.lifecycleevh_config = Some(format!(
                "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n",
                out.display()
            ))
        }
        "hang" => {
            opts.lifecycleevh_config = Some(format!(
                "general: {{ enabled = true, shutdown_timeout_ms = 1000 }}\nfile: {{ enabled = false }}\n\
                 http: {{ backend = \"http://127.0.0.1:{}/\", timeout_ms = 2000, queue_size = 10000 }}\n",
                hanging_backend()
            ))
        }
        _ => unreachable!(),
    }
    opts.plugin_so.get_or_insert_with(release_so);
    let mut janus = Janus::start(opts);
    let admin_port: u16 = janus
        .admin_url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/admin")
        .parse()
        .unwrap();
    let pid = janus.pid();
    std::thread::sleep(Duration::from_millis(500));
    let http_port: u16 = janus
        .http_url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/janus")
        .parse()
        .unwrap();
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = {
        let stop = stop_probe.clone();
        std::thread::spawn(move || probe_api(http_port, stop))
    };
    let (cpu0, _) = usage(pid);
    let own0 = lcevh_threads_cpu(pid);
    let start = Instant::now();
    let threads: Vec<_> = (0..4u64)
        .map(|k| {
            let per = events / 4;
            std::thread::spawn(move || flood(admin_port, per, k * per))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let flood_time = start.elapsed();
    stop_probe.store(true, Relaxed);
    let mut api = probe.join().unwrap();
    eprintln!("{name}: flood of {events} sent in {flood_time:?}");
    // Poll gently: the counting must not compete with Janus for the CPU.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut delivered = 0;
    let mut last_report = Instant::now();
    while delivered < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{name}: {delivered} of {events} delivered after {:?}",
                start.elapsed()
            );
            last_report = Instant::now();
        }
        delivered = match setup {
            "none" | "null" | "hang" => events,
            "file" => count_in_file(&out),
            _ => receiver.count(|e| e["type"] == 4) as u64,
        };
    }
    let elapsed = start.elapsed();
    assert!(
        delivered >= events,
        "{name}: only {delivered} of {events} delivered"
    );
    let (cpu1, hwm) = usage(pid);
    let own1 = lcevh_threads_cpu(pid);
    assert!(janus.stop().success());
    Run {
        name,
        cpu_per_event_us: (cpu1 - cpu0) / events as f64 * 1e6,
        delivered_per_s: events as f64 / elapsed.as_secs_f64(),
        flood_per_s: events as f64 / flood_time.as_secs_f64(),
        peak_rss_mb: hwm as f64 / 1024.0,
        api_ms: (percentile(&mut api, 0.5), percentile(&mut api, 0.99)),
        lcevh_us: (own1 - own0) / events as f64 * 1e6,
    }
}

/// Builds benches/null_handler.c (against our ABI header) into a handler.
fn null_handler() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join("lifecycleevh-null-handler.so");
    let status = std::process::Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-I"])
        .arg(root.join("janus-headers"))
        .arg("-o")
        .arg(&out)
        .arg(root.join("benches/null_handler.c"))
        .status()
        .expect("cc");
    assert!(status.success(), "building the null handler");
    out
}

fn release_so() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libjanus_lifecycleevh.so")
}

/// `n` sessions on `n` WebSocket connections, all dropped at once: the time
/// from the first drop until every `destroyed` is in the file.
/// What [`churn`] measured, from the moment the client dropped the first
/// connection.
struct Churn {
    /// Until Janus had reported every connection's `disconnected` (what the
    /// handler waits for; Janus's own work, and the client's).
    closed: Duration,
    /// Until every session's `destroyed` was in the file.
    ended: Duration,
}

fn churn(n: usize) -> Churn {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\", flush_ms = 20 }}\n",
            out.display()
        )),
        plugin_so: Some(release_so()),
        ..JanusOptions::default()
    });
    let mut clients: Vec<(WsClient, u64)> = (0..n)
        .map(|_| {
            let mut ws = janus.ws();
            let s = ws.create_session();
            (ws, s)
        })
        .collect();
    clients.shrink_to_fit();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    for (ws, _) in clients {
        ws.drop_tcp();
    }
    let mut closed = None;
    let ok = common::wait_until(
        || {
            let events = read_jsonl(&out);
            let count = |pred: &dyn Fn(&serde_json::Value) -> bool| {
                events.iter().filter(|e| pred(e)).count()
            };
            if closed.is_none()
                && count(&|e| e["type"] == 128 && e["event"]["data"]["event"] == "disconnected")
                    >= n
            {
                closed = Some(start.elapsed());
            }
            count(&|e| e["event"]["name"] == "destroyed") >= n
        },
        Duration::from_secs(60),
    );
    let ended = start.elapsed();
    assert!(ok, "not every session of {n} ended");
    assert!(janus.stop().success());
    Churn {
        closed: closed.unwrap_or(ended),
        ended,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("janus_e2e: bench");
        return;
    }
    // Thousands of connections: raise the descriptor limit (Janus inherits it).
    let lim = libc::rlimit {
        rlim_cur: 65_536,
        rlim_max: 65_536,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let events: u64 = std::env::var("E2E_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: Vec<Run> = [
        ("(a) no handler", "none"),
        ("(e) null handler (takes every event, does nothing)", "null"),
        ("(b) stock sampleevh -> receiver", "sampleevh"),
        ("(c) lifecycleevh HTTP sink -> receiver", "http"),
        ("(d) lifecycleevh file sink", "file"),
        (
            "(f) lifecycleevh HTTP sink -> a backend that never answers",
            "hang",
        ),
    ]
    .into_iter()
    .map(|(name, setup)| {
        // Three runs each; the one with the median CPU per event is kept
        // (a two-core machine is noisy).
        let mut three: Vec<Run> = (0..3).map(|_| run(name, setup, events)).collect();
        three.sort_by(|a, b| a.cpu_per_event_us.total_cmp(&b.cpu_per_event_us));
        three.swap_remove(1)
    })
    .collect();
    // Janus's own cost of delivering events to a handler, measured with a
    // handler that does nothing: a handler's own cost is what it adds to that.
    let null = runs[1].cpu_per_event_us;
    let b = &runs[2];
    let b_own = b.cpu_per_event_us - null;
    let mut table = format!(
        "End to end in Janus 1.1.2: {events} `custom_event` Admin requests over 4 keep-alive connections\n\n\
         (median of 3 runs each)\n\n\
         | run | Janus CPU per event (µs) | the handler's own (µs, minus (e)) | ratio to (b) | lcevh threads (µs) | delivered/s | ratio to (b) | peak RSS (MB) | ratio to (b) | Admin requests/s | Janus API p50 / p99 (ms) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in &runs {
        let own = r.cpu_per_event_us - null;
        let handler = !r.name.starts_with("(a)") && !r.name.starts_with("(e)");
        table += &format!(
            "| {} | {:.2} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {:.0} | {:.2} / {:.2} |\n",
            r.name,
            r.cpu_per_event_us,
            if handler {
                format!("{own:.2}")
            } else {
                "-".to_string()
            },
            if handler {
                format!("{:.2}", own / b_own)
            } else {
                "-".to_string()
            },
            if r.lcevh_us > 0.0 {
                format!("{:.2}", r.lcevh_us)
            } else {
                "-".to_string()
            },
            if r.name.starts_with("(f)") {
                "-".to_string()
            } else {
                format!("{:.0}", r.delivered_per_s)
            },
            if r.name.starts_with("(f)") {
                "-".to_string()
            } else {
                format!("{:.2}", r.delivered_per_s / b.delivered_per_s)
            },
            r.peak_rss_mb,
            r.peak_rss_mb / b.peak_rss_mb,
            r.flood_per_s,
            r.api_ms.0,
            r.api_ms.1
        );
    }
    table += "\nSession churn: concurrent WebSocket sessions dropped at once (settle_ms 500), from the first drop\n\n| sessions | until Janus reported every close | until every destroyed is in the file | the handler's part (the difference) |\n| --- | --- | --- | --- |\n";
    for n in [100, 1_000, 5_000] {
        let c = churn(n);
        table += &format!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s |\n",
            c.closed.as_secs_f64(),
            c.ended.as_secs_f64(),
            (c.ended - c.closed).as_secs_f64()
        );
    }
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-janus_e2e.md");
    std::fs::write(out, table).unwrap();
}
