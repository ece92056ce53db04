//! The screenshot in docs/metrics.md (run by `contrib/screenshot/make-screenshot.sh`):
//! a real Janus with lifecycleevh's metrics on, a real Prometheus scraping
//! it, four minutes of sessions that end by request, timeout and dropped
//! WebSockets, then headless Chromium captures Prometheus's graph page.
//!
//! `cargo run --example metrics_screenshot -- <out.png>` (needs Debian's
//! `prometheus` and `chromium`; `cargo build` first, for the handler).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Janus, JanusOptions, Prometheus, ScrapeJob, free_port};
use serde_json::json;

const RUN: Duration = Duration::from_secs(240);

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "prometheus-graph.png".into());
    let dir = tempfile::tempdir().expect("temporary folder");
    let port = free_port();
    let config = format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\nmetrics: {{ enabled = true, listen = \"127.0.0.1:{port}\" }}\n",
        dir.path().join("events.jsonl").display()
    );
    let prom = Prometheus::start(&[ScrapeJob {
        job: "janus".into(),
        target: format!("127.0.0.1:{port}"),
        path: "/metrics".into(),
        ..ScrapeJob::default()
    }]);
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        http_events: false,
        ..JanusOptions::default()
    });
    println!(
        "Janus and Prometheus ({}) run; {RUN:?} of sessions ...",
        prom.url()
    );

    // Waves of sessions, of varied size and fate (a fixed pseudo-random
    // sequence): destroyed, timed out, or their WebSocket dropped, some
    // after a while.
    let start = Instant::now();
    let mut keep: Vec<common::WsClient> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    while start.elapsed() < RUN {
        let mut ws = janus.ws();
        let ids: Vec<u64> = (0..1 + next(4))
            .map(|_| {
                let s = ws.create_session();
                ws.attach(s, "janus.plugin.echotest");
                s
            })
            .collect();
        match next(5) {
            0 => {
                for s in &ids {
                    ws.destroy(*s);
                }
            }
            1 => ws.drop_tcp(),
            2 => {
                for s in &ids {
                    janus
                        .admin()
                        .session_request(*s, json!({"janus": "set_session_timeout", "timeout": 1}));
                }
                keep.push(ws);
            }
            // These stay open until a later wave drops their connection.
            _ => keep.push(ws),
        }
        if keep.len() > 3 + next(4) as usize {
            let i = next(keep.len() as u64) as usize;
            keep.remove(i).drop_tcp();
        }
        std::thread::sleep(Duration::from_secs(2 + next(5)));
    }
    // Let the last endings be scraped.
    std::thread::sleep(Duration::from_secs(5));

    let exprs = [
        "janus_sessions_open",
        "sum by (reason) (janus_sessions_ended_total)",
    ];
    let mut url = format!("{}/graph?", prom.url());
    for (i, e) in exprs.iter().enumerate() {
        url += &format!(
            "g{i}.expr={}&g{i}.tab=0&g{i}.stacked=0&g{i}.show_exemplars=0&g{i}.range_input=5m&",
            encode(e)
        );
    }
    let profile = tempfile::tempdir().expect("temporary folder");
    let status = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1600",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={out}"))
        .arg(&url)
        .status()
        .expect("run chromium (apt-get install chromium)");
    assert!(status.success(), "chromium failed: {status}");
    assert!(janus.stop().success());
    println!("wrote {out}");
}

/// Percent-encodes a query parameter value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
