//! The Prometheus endpoint in a real Janus (Debian's 1.1.2), release build:
//! how long a scrape takes (connect to the last byte, basic authentication,
//! the Prometheus text format) with 0, 12 and 200 idle connections held open
//! beside it by another client: the first scrape after they were opened,
//! then the spread of many; and what the endpoint costs Janus (threads, CPU
//! of its thread per scrape).
//!
//! `cargo build --release && cargo bench --bench metrics_endpoint` (or
//! `make bench`). `METRICS_SCRAPES` sets the scrapes per row (default 200);
//! `LCEVH_SO` another build of the handler to measure (e.g. an older one).
//! Results: target/bench-metrics_endpoint.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Janus, JanusOptions, free_port, wait_until};
use serde_json::json;

const HANDLER: &str = "janus.eventhandler.lifecycleevh";

fn release_so() -> std::path::PathBuf {
    if let Some(so) = std::env::var_os("LCEVH_SO") {
        return so.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libjanus_lifecycleevh.so")
}

/// CPU seconds of the process's threads whose name starts with `prefix`.
fn thread_cpu(pid: u32, prefix: &str) -> (usize, f64) {
    let mut threads = 0;
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        threads += 1;
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (threads, ns as f64 / 1e9)
}

/// One scrape on a new connection, as Prometheus makes it: the time from
/// connect to the end of the answer.
fn scrape(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(200))).unwrap();
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cHJvbTpzM2NyZXQ=\r\nAccept: text/plain\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::with_capacity(16 * 1024);
    s.read_to_end(&mut answer).unwrap();
    let took = t.elapsed();
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("metrics_endpoint: bench");
        return;
    }
    let scrapes: usize = std::env::var("METRICS_SCRAPES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\nmetrics: {{ enabled = true, listen = \"{addr}\", user = \"prom\", password = \"s3cret\" }}\n",
            dir.path().join("events.jsonl").display()
        )),
        plugin_so: Some(release_so()),
        http_events: false,
        ..JanusOptions::default()
    });
    let listening = wait_until(
        || {
            janus
                .admin()
                .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["metrics"]["listening"]
                == true
        },
        Duration::from_secs(20),
    );
    assert!(listening, "the endpoint does not listen");
    scrape(addr); // warm
    let pid = janus.pid();
    let mut table = format!(
        "Scrapes of the metrics endpoint in Janus {version} (release build), {scrapes} per row, each on a new connection\n\n\
         | idle connections held open | the first scrape after they opened (ms) | then p50 (ms) | p99 (ms) | max (ms) | endpoint thread CPU per scrape (µs) |\n\
         | --- | --- | --- | --- | --- | --- |\n",
        version = {
            let (a, b, c) = janus.janus_version();
            format!("{a}.{b}.{c}")
        }
    );
    for idle in [0usize, 12, 200] {
        let held: Vec<TcpStream> = (0..idle)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let first = scrape(addr);
        let (_, cpu0) = thread_cpu(pid, "lcevh metrics");
        let mut took: Vec<Duration> = (0..scrapes).map(|_| scrape(addr)).collect();
        let (_, cpu1) = thread_cpu(pid, "lcevh metrics");
        took.sort();
        let q = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
        let row = format!(
            "| {idle} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |\n",
            ms(first),
            ms(q(0.5)),
            ms(q(0.99)),
            ms(*took.last().unwrap()),
            (cpu1 - cpu0) * 1e6 / scrapes as f64
        );
        print!("{row}");
        table += &row;
        drop(held);
        // Let the endpoint see the idle ones go before the next row.
        std::thread::sleep(Duration::from_millis(200));
    }
    let (threads, _) = thread_cpu(pid, "lcevh metrics");
    let (runtime_threads, _) = thread_cpu(pid, "tokio");
    let info = janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["metrics"]
        .clone();
    table += &format!(
        "\nThe endpoint's threads in Janus: {threads} (runtime worker threads: {runtime_threads}). Connections: {}\n",
        info["connections"]
    );
    println!("{}", table.lines().last().unwrap());
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-metrics_endpoint.md");
    std::fs::write(out, table).unwrap();
}
