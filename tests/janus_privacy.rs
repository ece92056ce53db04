//! Who may read what the handler keeps, and what it shows, with a real
//! Janus 1.1.2: the JSON Lines file and its folder are created owner and
//! group only; backend passwords (in a backend URL, and `backend_pwd`) and
//! the Admin secret never reach Janus's log nor the Admin API `info`, not
//! even when the backends fail and their errors are logged.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;

/// The secrets of the test: none of them may show anywhere.
const URL_SECRET_REFUSED: &str = "UrlSecretRefused7";
const URL_SECRET_500: &str = "UrlSecretFailing8";
const PWD_SECRET: &str = "BackendPwdSecret9";

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Everything Janus printed in this instance's folder (its log file, its
/// stdout and stderr).
fn all_output(dir: &Path) -> String {
    let mut text = String::new();
    for name in ["janus.log", "stdout.log", "stderr.log"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn passwords_never_reach_the_log_or_info_and_files_are_owner_and_group_only() {
    let failing = Receiver::start();
    failing.set_status(500);
    // A port nobody listens on: connections are refused (ureq's error text
    // for this starts with the whole URL).
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("new-folder/events.jsonl");
    let failing_url = failing
        .url()
        .replace("http://", &format!("http://lcevh:{URL_SECRET_500}@"));
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\n\
             file: {{ path = \"{}\" }}\n\
             http-refused: {{ backend = \"http://lcevh:{URL_SECRET_REFUSED}@127.0.0.1:{closed}/events\", \
             max_retransmissions = 0, retransmissions_backoff = 20, backoff_max_ms = 50 }}\n\
             http-failing: {{ backend = \"{failing_url}\", backend_user = \"janus\", \
             backend_pwd = \"{PWD_SECRET}\", max_retransmissions = 1, \
             retransmissions_backoff = 20, backoff_max_ms = 50 }}\n",
            file.display()
        )),
        ..JanusOptions::default()
    });
    let mut ws = janus.ws();
    for _ in 0..3 {
        let s = ws.create_session();
        ws.destroy(s);
    }
    // Both backends fail, their errors are logged and kept in last_error.
    assert!(wait_until(
        || {
            let i = info(&janus);
            ["http-refused", "http-failing"]
                .iter()
                .all(|s| i["sinks"][s]["failed"].as_u64().unwrap_or(0) > 0)
        },
        Duration::from_secs(15)
    ));
    // The Admin API's tweak is logged too.
    let tweaked = janus.admin().query_eventhandler(
        HANDLER,
        json!({"request": "tweak", "sink": "http-failing", "events": "sessions"}),
    );
    assert_eq!(tweaked["response"]["result"], 200, "{tweaked}");
    let i = info(&janus);
    let refused = &i["sinks"]["http-refused"];
    let failing_sink = &i["sinks"]["http-failing"];
    assert_eq!(
        refused["backend"],
        format!("http://lcevh:***@127.0.0.1:{closed}/events")
    );
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "http://lcevh:***@127.0.0.1:{closed}/events: Connection Failed"
            )),
        "{refused}"
    );
    assert!(
        failing_sink["last_error"]
            .as_str()
            .unwrap()
            .ends_with("HTTP 500 Internal Server Error"),
        "{failing_sink}"
    );
    // backend_user/backend_pwd reached the backend (as basic auth).
    assert!(
        failing.requests().iter().any(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))),
        "no authorization header reached the backend"
    );
    let info_text = i.to_string();
    assert!(janus.stop().success());

    let output = all_output(janus.dir());
    assert!(
        output.contains("Connection Failed") && output.contains("HTTP 500"),
        "the backends' errors were logged"
    );
    assert!(output.contains("tweaked through the Admin API"));
    for secret in [URL_SECRET_REFUSED, URL_SECRET_500, PWD_SECRET] {
        assert!(!output.contains(secret), "{secret} is in Janus's log");
        assert!(
            !info_text.contains(secret),
            "{secret} is in info: {info_text}"
        );
    }
    // Janus may print its own Admin secret; the handler never does.
    for line in output.lines().filter(|l| l.contains("lifecycleevh")) {
        assert!(!line.contains(ADMIN_SECRET), "{line}");
    }
    assert!(!info_text.contains(ADMIN_SECRET));

    // Events carry client IP addresses: owner and group only (the test's
    // umask, which Janus inherits, is the usual 022).
    assert!(!read_jsonl(&file).is_empty());
    assert_eq!(mode_of(&file), 0o640);
    assert_eq!(mode_of(file.parent().unwrap()), 0o750);
}

/// A bad backend URL is reported naming the key, without its password.
#[test]
fn a_bad_backend_url_is_reported_without_its_password() {
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ enabled = false }}\n\
             http: {{ backend = \"http://lcevh:{URL_SECRET_REFUSED}@[::1/events\" }}\n"
        )),
        ..JanusOptions::default()
    });
    let answer = janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}));
    let error = answer["response"]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        error.contains("http.backend: \"http://lcevh:***@[::1/events\" is not a valid URL"),
        "{answer}"
    );
    assert!(janus.stop().success());
    let output = all_output(janus.dir());
    assert!(output.contains("http.backend"), "the error was logged");
    assert!(!output.contains(URL_SECRET_REFUSED));
    assert!(!error.contains(URL_SECRET_REFUSED));
}
