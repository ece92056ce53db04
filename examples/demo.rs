//! `make demo`: starts a real Janus on loopback ports in a temporary folder
//! with the freshly built lifecycleevh in its events folder, runs a short
//! scripted client session, prints the event stream the handler wrote, and
//! stops Janus.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Janus, JanusOptions, expect_jsonl, read_jsonl};
use serde_json::Value;

fn main() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let out = dir.path().join("lifecycleevh.jsonl");
    let config = format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\", flush_ms = 100 }}\n",
        out.display()
    );
    println!("Starting Janus {} with lifecycleevh ...", janus_version());
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        ..JanusOptions::default()
    });
    println!(
        "  Janus API  {}\n  WebSocket  {}\n  Admin API  {}",
        janus.http_url(),
        janus.ws_url(),
        janus.admin_url()
    );

    println!("\n1. A client creates a session, attaches EchoTest and destroys the session.");
    let mut ws = janus.ws();
    let a = ws.create_session();
    ws.attach(a, "janus.plugin.echotest");
    ws.destroy(a);

    println!("2. A client creates a session, attaches EchoTest, and its WebSocket drops.");
    println!("   Janus 1.1.2 tears the session down without any session event.");
    let b = ws.create_session();
    ws.attach(b, "janus.plugin.echotest");
    ws.drop_tcp();

    println!("3. A client creates a session and is still connected when Janus stops.");
    let mut ws = janus.ws();
    let c = ws.create_session();

    expect_jsonl(
        &out,
        "the dropped connection's session ended",
        |evs| {
            evs.iter()
                .any(|e| e["session_id"] == b && e["event"]["name"] == "destroyed")
        },
        Duration::from_secs(5),
    );
    println!("4. Janus stops (SIGINT).");
    let status = janus.stop();
    drop(ws);

    println!(
        "\nEvents lifecycleevh wrote to {} (Janus's own shape, one per line):\n",
        out.display()
    );
    for e in read_jsonl(&out) {
        println!("{}", describe(&e));
    }
    println!(
        "\nEvery session ended with exactly one `destroyed`: {a} (request, Janus's own), \
         {b} (transport_gone, added), {c} (shutdown, added).\nJanus exited: {status}."
    );
}

fn janus_version() -> String {
    std::process::Command::new("janus")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.replace("Janus version: ", "")))
        .unwrap_or_default()
}

/// One line per event: a short label, then the JSON (long ones cut short).
fn describe(e: &Value) -> String {
    let mark = if e["event"]["synthetic"] == true {
        "ADDED  "
    } else if e["event"]["reason"].is_string() {
        "JANUS+ "
    } else {
        "janus  "
    };
    let text = e.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{mark}{} ...", &text[..cut]),
        None => format!("{mark}{text}"),
    }
}
