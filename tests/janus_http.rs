//! Production forwarding against a real Janus 1.1.2 and real local HTTP(S)
//! servers: every sampleevh-compatible format, a backend outage, the durable
//! spool across a Janus restart, crash recovery after SIGKILL, and the
//! Admin API `sessions` and `tweak` requests.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn file_section(out: &Path) -> String {
    format!("file: {{ path = \"{}\", flush_ms = 50 }}\n", out.display())
}

/// Janus's events in `events` (what sampleevh would have got) as comparable JSON.
fn lifecycle(events: &[Value]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter(|e| e["type"] == 1)
        .map(|e| {
            (
                e["session_id"].as_u64().unwrap(),
                e["event"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn churn(janus: &Janus, n: usize) -> Vec<u64> {
    let mut ws = janus.ws();
    let mut sessions = Vec::new();
    for _ in 0..n {
        let s = ws.create_session();
        ws.attach(s, "janus.plugin.echotest");
        ws.destroy(s);
        sessions.push(s);
    }
    sessions
}

fn ended_all(events: &[Value], sessions: &[u64]) -> bool {
    sessions.iter().all(|s| {
        events
            .iter()
            .any(|e| e["session_id"] == *s && e["event"]["name"] == "destroyed")
    })
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: Vec<u8>,
    server_key: Vec<u8>,
}

/// A test CA and a certificate for `localhost` signed by it.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    Pki {
        _dir: dir,
        ca,
        server_cert: cert.pem().into_bytes(),
        server_key: key.serialize_pem().into_bytes(),
    }
}

#[test]
fn every_format_reaches_the_backend() {
    let pki = pki();
    let plain = Receiver::start();
    let single = Receiver::start();
    let indented = Receiver::start();
    let gzip = Receiver::start();
    let legacy = Receiver::start();
    let zlib = Receiver::start();
    let auth = Receiver::start_with(ReceiverOptions {
        auth: Some(("janus".into(), "s3cret".into())),
        ..ReceiverOptions::default()
    });
    let wrong = Receiver::start_with(ReceiverOptions {
        auth: Some(("janus".into(), "s3cret".into())),
        ..ReceiverOptions::default()
    });
    let tls = Receiver::start_with(ReceiverOptions {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..ReceiverOptions::default()
    });
    let untrusted = Receiver::start_with(ReceiverOptions {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..ReceiverOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = |name: &str, r: &Receiver, extra: &str| {
        format!(
            "http-{name}: {{ backend = \"{}\", events = \"sessions\", max_retransmissions = 1, retransmissions_backoff = 50 {extra} }}\n",
            r.url()
        )
    };
    let config = format!(
        "general: {{ enabled = true }}\n{}{}{}{}{}{}{}{}{}{}{}",
        file_section(&out),
        sink("plain", &plain, ", json = \"plain\""),
        sink("single", &single, ", grouping = false"),
        sink(
            "indented",
            &indented,
            ", json = \"indented\", max_batch = 2, max_delay_ms = 100"
        ),
        sink("gzip", &gzip, ", compress = true, compression = 9"),
        sink(
            "legacy",
            &legacy,
            ", compress = true, compression_format = \"sampleevh\""
        ),
        sink(
            "zlib",
            &zlib,
            ", compress = true, compression_format = \"zlib\""
        ),
        sink(
            "auth",
            &auth,
            ", backend_user = \"janus\", backend_pwd = \"s3cret\""
        ),
        sink(
            "wrong",
            &wrong,
            ", backend_user = \"janus\", backend_pwd = \"guess\""
        ),
        sink(
            "tls",
            &tls,
            &format!(", ca_file = \"{}\"", pki.ca.display())
        ),
        // Certificate verification is on by default: a private CA is not trusted.
        sink("untrusted", &untrusted, ""),
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        ..JanusOptions::default()
    });
    let sessions = churn(&janus, 3);
    let file = expect_jsonl(
        &out,
        "every ending",
        |e| ended_all(e, &sessions),
        Duration::from_secs(10),
    );
    let want = lifecycle(&file);
    assert_eq!(want.len(), 6);
    for (name, r) in [
        ("plain", &plain),
        ("single", &single),
        ("indented", &indented),
        ("gzip", &gzip),
        ("legacy", &legacy),
        ("zlib", &zlib),
        ("auth", &auth),
        ("tls", &tls),
    ] {
        assert!(
            r.wait_until(|e| ended_all(e, &sessions), Duration::from_secs(10)),
            "{name}: events missing"
        );
        assert_eq!(lifecycle(&r.events()), want, "{name}");
        let reqs = r.requests();
        assert!(
            reqs.iter()
                .all(|q| q.header("Content-Type") == Some("application/json"))
        );
        let first = &reqs[0];
        match name {
            "plain" => assert!(first.text().starts_with("[{\"emitter\": \"RigJanus\", ")),
            "single" => {
                assert!(first.text().starts_with('{'), "one object per request");
                assert_eq!(reqs.len(), 6);
            }
            "indented" => {
                assert!(first.text().starts_with("[\n   {\n      \"emitter\": "));
                assert!(reqs.iter().all(|q| {
                    serde_json::from_str::<Value>(&q.text())
                        .unwrap()
                        .as_array()
                        .unwrap()
                        .len()
                        <= 2
                }));
            }
            "gzip" => assert_eq!(first.header("Content-Encoding"), Some("gzip")),
            "legacy" => {
                assert_eq!(first.header("Content-Encoding"), None);
                assert!(first.body.starts_with(&[0x1f, 0x8b]));
            }
            "zlib" => assert_eq!(first.header("Content-Encoding"), Some("deflate")),
            _ => {}
        }
    }
    // A wrong password fails visibly: 401s, nothing accepted, the error in
    // info. The sinks count a batch after its last answer: wait for the
    // counts themselves (the untrusted backend's first attempt may still be
    // under way, and http-tls counts its 6 events after the backend has
    // them).
    let info = expect_info(
        &janus,
        "the wrong password's failure, the untrusted backend's error, http-tls's 6 sent",
        |i| {
            let s = &i["sinks"];
            s["http-wrong"]["failed"].as_u64().unwrap() > 0
                && s["http-untrusted"]["last_error"].is_string()
                && s["http-tls"]["sent"] == 6
        },
        Duration::from_secs(10),
    );
    assert!(wrong.requests().len() >= 2, "a try and a retry");
    assert!(wrong.events().is_empty());
    assert!(wrong.requests().iter().all(|q| q.status == 401));
    let w = &info["sinks"]["http-wrong"];
    assert!(
        w["last_error"].as_str().unwrap().contains("HTTP 401"),
        "{w}"
    );
    let u = &info["sinks"]["http-untrusted"];
    assert!(
        untrusted.requests().is_empty(),
        "no request over an unverified connection"
    );
    assert!(
        u["last_error"].as_str().unwrap().contains("certificate"),
        "{u}"
    );
    assert_eq!(info["sinks"]["http-tls"]["backend"], tls.url());
    assert!(janus.stop().success());
}

#[test]
fn a_backend_outage_loses_no_lifecycle_event() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true }}\n{}http: {{ backend = \"http://127.0.0.1:{port}/events\", \
         retransmissions_backoff = 100, backoff_max_ms = 1000, queue_size = 64, \
         spool_dir = \"{}\" }}\n",
        file_section(&out),
        dir.path().join("spool").display()
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        ..JanusOptions::default()
    });
    // The backend is down for over 20 s while sessions come and go, and while
    // enough other events flow to overflow the 64-event memory queue.
    let start = std::time::Instant::now();
    let mut sessions = Vec::new();
    let admin = janus.admin();
    while start.elapsed() < Duration::from_secs(21) {
        sessions.extend(churn(&janus, 5));
        for n in 0..40 {
            admin.custom_event("noise", json!({"n": n}));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every session event spooled (the last churn's, too), the memory queue
    // overflowed, the sink retrying.
    let info = expect_info(
        &janus,
        "every session event spooled, drops, retries",
        |i| {
            let h = &i["sinks"]["http"];
            h["spool"]["pending"].as_u64().unwrap() >= 2 * sessions.len() as u64
                && h["dropped"].as_u64().unwrap() > 0
                && h["retrying"].as_u64().unwrap() > 0
        },
        Duration::from_secs(10),
    );
    let info = &info["sinks"]["http"];
    assert_eq!(info["dropped_lifecycle"], 0, "{info}");
    // The backend comes back.
    let receiver = Receiver::start_with(ReceiverOptions {
        port: Some(port),
        ..ReceiverOptions::default()
    });
    assert!(receiver.wait_until(|e| ended_all(e, &sessions), Duration::from_secs(15)));
    let got = lifecycle(&receiver.events());
    for s in &sessions {
        // At least once; here, as no answer was lost, exactly once.
        assert_eq!(
            got.iter()
                .filter(|(id, n)| id == s && n == "created")
                .count(),
            1
        );
        assert_eq!(
            got.iter()
                .filter(|(id, n)| id == s && n == "destroyed")
                .count(),
            1
        );
    }
    // In order: each session's created before its destroyed.
    for s in &sessions {
        let c = got
            .iter()
            .position(|(id, n)| id == s && n == "created")
            .unwrap();
        let d = got
            .iter()
            .position(|(id, n)| id == s && n == "destroyed")
            .unwrap();
        assert!(c < d);
    }
    assert!(janus.stop().success());
}

/// A handler with a file sink and an HTTP sink spooling in `dir` to a
/// backend on `port`, and a Janus folder that survives restarts.
struct Spooled {
    out: std::path::PathBuf,
    janus_dir: std::path::PathBuf,
    opts: JanusOptions,
}

fn spooled(dir: &std::path::Path, port: u16) -> Spooled {
    let out = dir.join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true, shutdown_timeout_ms = 1000 }}\n{}http: {{ backend = \"http://127.0.0.1:{port}/events\", \
         spool_dir = \"{}\", backoff_max_ms = 500 }}\n",
        file_section(&out),
        dir.join("spool").display()
    );
    let janus_dir = dir.join("janus");
    std::fs::create_dir_all(&janus_dir).unwrap();
    Spooled {
        out,
        janus_dir,
        opts: JanusOptions {
            lifecycleevh_config: Some(config),
            ..JanusOptions::default()
        },
    }
}

#[test]
fn spooled_events_survive_a_janus_restart() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let Spooled {
        out,
        janus_dir,
        opts,
    } = spooled(dir.path(), port);
    let opts = || opts.clone();
    let mut janus = Janus::start_in(&janus_dir, opts());
    let sessions = churn(&janus, 4);
    let mut ws = janus.ws();
    let live = ws.create_session();
    expect_jsonl(
        &out,
        "every ending",
        |e| ended_all(e, &sessions),
        Duration::from_secs(10),
    );
    assert!(janus.stop().success());
    drop(ws);
    // Janus is down, the backend comes up, Janus starts again: the spool goes first.
    let receiver = Receiver::start_with(ReceiverOptions {
        port: Some(port),
        ..ReceiverOptions::default()
    });
    let mut janus = Janus::start_in(&janus_dir, opts());
    let mut all = sessions.clone();
    all.push(live);
    assert!(receiver.wait_until(|e| ended_all(e, &all), Duration::from_secs(15)));
    let got = lifecycle(&receiver.events());
    for s in &sessions {
        assert_eq!(
            got.iter().filter(|(id, _)| id == s).count(),
            2,
            "created and destroyed of {s}"
        );
    }
    let shutdown = receiver
        .events()
        .into_iter()
        .find(|e| e["session_id"] == live && e["event"]["name"] == "destroyed")
        .unwrap();
    assert_eq!(shutdown["event"]["reason"], "shutdown");
    // The backlog came before anything of the new run.
    let first_new = receiver
        .events()
        .iter()
        .position(|e| e["type"] == 256 && e["subtype"] == 1);
    let last_old = receiver
        .events()
        .iter()
        .rposition(|e| e["session_id"] == live && e["event"]["name"] == "destroyed");
    if let (Some(new), Some(old)) = (first_new, last_old) {
        assert!(old < new, "spooled events first");
    }
    assert!(janus.stop().success());
}

/// The spool's records on disk: (segment, byte offset, JSON), in order.
fn spool_records(dir: &Path) -> Vec<(PathBuf, u64, String)> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for segment in segments {
        let text = std::fs::read_to_string(&segment).unwrap();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let json = line.trim_end().split_once('\t').unwrap().1;
            out.push((segment.clone(), offset, json.to_string()));
            offset += line.len() as u64;
        }
    }
    out
}

/// One bad record in the middle of an HTTP spool used to make the spool
/// fail to open at the next start, reported as a `spool_dir` config error,
/// and the whole handler was switched off. Now it costs that record only.
#[test]
fn a_corrupt_spool_record_costs_only_that_record() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let Spooled {
        out,
        janus_dir,
        opts,
    } = spooled(dir.path(), port);
    let opts = || opts.clone();
    // The backend is down: every lifecycle event stays in the spool.
    let mut janus = Janus::start_in(&janus_dir, opts());
    let sessions = churn(&janus, 6);
    expect_jsonl(
        &out,
        "every ending",
        |e| ended_all(e, &sessions),
        Duration::from_secs(10),
    );
    let admin = janus.admin();
    let spooled = |admin: &Admin| {
        admin.query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["sinks"]["http"]
            ["spool"]["pending"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(wait_until(
        || spooled(&admin) >= 12,
        Duration::from_secs(10)
    ));
    assert!(janus.stop().success());
    // A byte in the middle of a segment: the first digit of the middle
    // record's sequence number.
    let spool = dir.path().join("spool").join("http");
    let records = spool_records(&spool);
    assert!(records.len() >= 12, "{records:?}");
    let (segment, offset, bad) = records[records.len() / 2].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    assert!(bytes[offset as usize].is_ascii_digit());
    bytes[offset as usize] = b'x';
    std::fs::write(&segment, bytes).unwrap();
    let expected: Vec<Value> = records
        .iter()
        .filter(|r| r.2 != bad)
        .map(|r| serde_json::from_str(&r.2).unwrap())
        .collect();
    // Janus again, the backend up.
    let receiver = Receiver::start_with(ReceiverOptions {
        port: Some(port),
        ..ReceiverOptions::default()
    });
    let mut janus = Janus::start_in(&janus_dir, opts());
    // The handler runs: tracking and the file sink work ...
    let info = janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}));
    assert!(info["response"]["sinks"]["http"].is_object(), "{info}");
    let mut ws = janus.ws();
    let fresh = ws.create_session();
    ws.destroy(fresh);
    expect_jsonl(
        &out,
        "the fresh session's ending",
        |e| ended_all(e, &[fresh]),
        Duration::from_secs(10),
    );
    // ... and the backend gets every other spooled event, in order, first.
    assert!(receiver.wait_until(|e| ended_all(e, &[fresh]), Duration::from_secs(15)));
    let got = receiver.events();
    assert_eq!(got[..expected.len()], expected[..]);
    assert!(
        got[expected.len()..].iter().all(|e| !expected.contains(e)),
        "sent once"
    );
    let bad: Value = serde_json::from_str(&bad).unwrap();
    assert!(!got.contains(&bad), "the corrupt record is not sent");
    // Admin info counts it; Janus's log says where it was.
    let info = &janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["sinks"]["http"];
    assert_eq!(info["spool"]["corrupt_records"], 1, "{info}");
    assert!(wait_until(
        || spooled(&janus.admin()) == 0,
        Duration::from_secs(10)
    ));
    let needle = format!("{} at byte {offset}", segment.display());
    assert!(
        janus.wait_log(&needle, Duration::from_secs(5)),
        "{needle} not in the log"
    );
    assert!(janus.stop().success());
}

/// A `metrics` section serving `/metrics` on a free loopback port.
fn metrics_section() -> (String, u16) {
    let port = free_port();
    (
        format!("metrics: {{ enabled = true, listen = \"127.0.0.1:{port}\" }}\n"),
        port,
    )
}

/// The value of one series (name and labels, as exposed) on the handler's
/// `/metrics`, once the endpoint listens (after Janus's `started`).
fn series(janus: &Janus, port: u16, series: &str) -> u64 {
    assert!(wait_until(
        || janus
            .admin()
            .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["metrics"]["listening"]
            == true,
        Duration::from_secs(10)
    ));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let reply = http_request("GET", &url, None).unwrap();
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .parse()
        .unwrap()
}

/// Issue 16, finding 5: damage is counted as what it costs. 4 KiB zeroed in
/// the middle of a segment (a bad block) and the segment cut short (a file
/// system that lost its end) were counted as one corrupt record each, while
/// ten and a few hundred events were lost. Now `info` counts the records
/// by their headers, the bytes in which records cannot be told apart, and
/// the segments cut short; the log says where, and about how many records.
#[test]
fn spool_damage_is_counted_as_what_it_costs() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let Spooled {
        out,
        janus_dir,
        mut opts,
    } = spooled(dir.path(), port);
    // Every event spooled, segments of 256 KiB (a quarter of 1 MiB).
    let (metrics, metrics_port) = metrics_section();
    let config = opts.lifecycleevh_config.take().unwrap().replace(
        "spool_dir =",
        "spool = \"all\", spool_max_mb = 1, spool_dir =",
    ) + &metrics;
    opts.lifecycleevh_config = Some(config);
    let opts = || opts.clone();
    // The backend is down: the events stay in the spool, two segments' worth.
    let mut janus = Janus::start_in(&janus_dir, opts());
    let spool = dir.path().join("spool").join("http");
    let segments = || {
        let mut s: Vec<PathBuf> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        s.sort();
        s
    };
    let mut sessions = Vec::new();
    while segments().len() < 2 {
        sessions.extend(churn(&janus, 20));
        assert!(sessions.len() < 2000, "no second segment");
    }
    expect_jsonl(
        &out,
        "every session's ending",
        |e| ended_all(e, &sessions),
        Duration::from_secs(20),
    );
    assert!(janus.stop().success());
    let records = spool_records(&spool);
    let first = segments()[0].clone();
    let original = std::fs::read(&first).unwrap();
    // Where each record of the first segment starts and ends (after its
    // newline).
    let mut lines: Vec<(u64, u64)> = records
        .iter()
        .filter(|r| r.0 == first)
        .map(|r| (r.1, 0))
        .collect();
    for i in 0..lines.len() {
        lines[i].1 = lines.get(i + 1).map_or(original.len() as u64, |l| l.0);
    }
    let end_of = |offset: u64| lines.iter().find(|l| l.0 == offset).unwrap().1;
    // 4 KiB zeroed from the middle of the 10th record; the segment cut in
    // the middle of the record at two thirds.
    let zero_from = (lines[9].0 + lines[9].1) / 2;
    let zeroed = zero_from..zero_from + 4096;
    let cut_in = lines[lines.len() * 2 / 3];
    let cut = (cut_in.0 + cut_in.1) / 2;
    let mut bytes = original.clone();
    bytes[zeroed.start as usize..zeroed.end as usize].fill(0);
    bytes.truncate(cut as usize);
    std::fs::write(&first, &bytes).unwrap();
    // What survives: a record of the first segment whose bytes, and the
    // newline before it, are untouched and before the cut; all of the
    // second.
    let survives = |r: &(PathBuf, u64, String)| {
        r.0 != first || (end_of(r.1) <= cut && (end_of(r.1) <= zeroed.start || r.1 > zeroed.end))
    };
    let expected: Vec<Value> = records
        .iter()
        .filter(|r| survives(r))
        .map(|r| serde_json::from_str(&r.2).unwrap())
        .collect();
    let lost = records.len() - expected.len();
    assert!(lost > 20, "{lost}");
    // Janus again, the backend up: everything else arrives, in order.
    let receiver = Receiver::start_with(ReceiverOptions {
        port: Some(port),
        ..ReceiverOptions::default()
    });
    let mut janus = Janus::start_in(&janus_dir, opts());
    assert!(receiver.wait_until(|e| e.len() >= expected.len(), Duration::from_secs(30)));
    assert_eq!(receiver.events()[..expected.len()], expected[..]);
    let info = &janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]["sinks"]["http"]["spool"];
    let corrupt_bytes = info["corrupt_bytes"].as_u64().unwrap();
    let (corrupt_records, cut_segments) = (
        info["corrupt_records"].as_u64().unwrap(),
        info["cut_segments"].as_u64().unwrap(),
    );
    assert!(corrupt_bytes >= 4096, "{info}");
    assert!(corrupt_records >= 2, "a header in each: {info}");
    assert_eq!(cut_segments, 1, "{info}");
    // Every event is spooled: the sequence numbers tell how many the cut
    // took (the one cut in two is counted by its header).
    let lost_with_the_end = records
        .iter()
        .filter(|r| r.0 == first && end_of(r.1) > cut)
        .count() as u64;
    assert_eq!(info["cut_records_at_most"], lost_with_the_end - 1, "{info}");
    // The same counts on /metrics.
    let sink = "{sink=\"http\"}";
    assert_eq!(
        series(
            &janus,
            metrics_port,
            &format!("lifecycleevh_sink_spool_corrupt_bytes_total{sink}")
        ),
        corrupt_bytes
    );
    assert_eq!(
        series(
            &janus,
            metrics_port,
            &format!("lifecycleevh_sink_spool_corrupt_records_total{sink}")
        ),
        corrupt_records
    );
    // The log: the segment, where, and about how many records.
    let zeroed_line = records
        .iter()
        .filter(|r| r.0 == first && r.1 <= zeroed.start)
        .map(|r| r.1)
        .max()
        .unwrap();
    for needle in [
        format!("{} at byte {zeroed_line}", first.display()),
        format!("{} at byte {cut}", first.display()),
        "segment(s) cut short".to_string(),
        "records cannot be told apart (about".to_string(),
    ] {
        assert!(
            janus.wait_log(&needle, Duration::from_secs(5)),
            "{needle} not in the log"
        );
    }
    assert!(janus.stop().success());
}

/// Issue 16, finding 4: an unprivileged Janus whose spool folder became
/// read-only (mode 0555) cannot write the spool's `ack` file. When the
/// backend came back, the batch it delivered was sent again in a tight
/// loop (1,200+ POSTs a second); now the sink backs off, sends nothing new
/// while it cannot acknowledge, says why in `info.warnings`, counts it, and
/// resumes once the folder is writable again, sending nothing twice.
#[test]
fn a_read_only_spool_folder_backs_off_and_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let receiver = Receiver::start();
    receiver.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    hand_over(dir.path(), NOBODY);
    let out = dir.path().join("events.jsonl");
    let spool = dir.path().join("spool");
    let (metrics, metrics_port) = metrics_section();
    let config = format!(
        "general: {{ enabled = true }}\n{}http: {{ backend = \"{}\", spool_dir = \"{}\", max_delay_ms = 20, retransmissions_backoff = 100, backoff_max_ms = 800 }}\n{metrics}",
        file_section(&out),
        receiver.url(),
        spool.display()
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        run_as: Some(NOBODY),
        ..JanusOptions::default()
    });
    let admin = janus.admin();
    let info = || admin.query_eventhandler(HANDLER, json!({"request": "info"}))["response"].clone();
    // The backend is down: the endings wait in the spool.
    let sessions = churn(&janus, 3);
    assert!(wait_until(
        || info()["sinks"]["http"]["spool"]["pending"].as_u64() >= Some(6),
        Duration::from_secs(15)
    ));
    // The spool's folder becomes read-only (Janus runs unprivileged), then
    // the backend comes back: the spool's records are delivered, but the
    // `ack` file cannot be replaced.
    let folder = spool.join("http");
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    receiver.set_status(200);
    let warned = |i: &Value| {
        i["warnings"].as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w.as_str().unwrap_or("").contains("cannot acknowledge"))
        })
    };
    assert!(
        wait_until(|| warned(&info()), Duration::from_secs(15)),
        "no warning: {}",
        info()
    );
    // The batch was delivered once; then the sink waits. Over the next
    // failed acknowledgements (with backoff: up to 100 ms, then doubling),
    // the backend hears nothing more.
    let since = receiver.requests().len();
    let start = std::time::Instant::now();
    let errors = |i: &Value| {
        i["sinks"]["http"]["spool"]["ack_errors"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = errors(&info());
    assert!(
        wait_until(|| errors(&info()) >= before + 4, Duration::from_secs(20)),
        "{}",
        info()
    );
    let sent = receiver.requests().len() - since;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        sent <= 1 && (sent as f64) / elapsed < 3.0,
        "{sent} requests in {elapsed:.1} s while the spool cannot acknowledge"
    );
    let i = info();
    let http = &i["sinks"]["http"];
    assert!(http["retrying"].as_u64().unwrap() >= 1, "{i}");
    let folder_name = folder.display().to_string();
    assert!(
        http["last_error"].as_str().unwrap().contains(&folder_name),
        "{i}"
    );
    assert!(janus.log().contains("cannot acknowledge"));
    let counted = series(
        &janus,
        metrics_port,
        "lifecycleevh_sink_spool_ack_errors_total{sink=\"http\"}",
    );
    assert!(counted >= before + 4, "{counted}");
    // Writable again: the acknowledgement is written, nothing is sent twice.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert!(wait_until(
        || {
            let i = info();
            !warned(&i) && i["sinks"]["http"]["spool"]["pending"] == 0
        },
        Duration::from_secs(15)
    ));
    let got = lifecycle(&receiver.events());
    for s in &sessions {
        for name in ["created", "destroyed"] {
            let n = got.iter().filter(|(id, n)| id == s && n == name).count();
            assert_eq!(n, 1, "{name} of {s}: {got:?}");
        }
    }
    assert!(janus.stop().success());
}

#[test]
fn sigkill_then_restart_ends_open_sessions_with_gateway_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true, state_dir = \"{}\", checkpoint_ms = 200 }}\n{}",
        dir.path().join("state").display(),
        file_section(&out)
    );
    let opts = || JanusOptions {
        lifecycleevh_config: Some(config.clone()),
        ..JanusOptions::default()
    };
    let janus_dir = dir.path().join("janus");
    std::fs::create_dir_all(&janus_dir).unwrap();
    let mut janus = Janus::start_in(&janus_dir, opts());
    let mut ws = janus.ws();
    let open: Vec<u64> = (0..3).map(|_| ws.create_session()).collect();
    let ended = ws.create_session();
    ws.destroy(ended);
    let handle = ws.attach(open[0], "janus.plugin.echotest");
    let attached_at = expect_jsonl(
        &out,
        "the attach",
        |e| e.iter().any(|e| e["handle_id"] == handle),
        Duration::from_secs(10),
    )
    .iter()
    .find(|e| e["handle_id"] == handle)
    .unwrap()["timestamp"]
        .as_i64()
        .unwrap();
    // A checkpoint after the attach was handled (it is in the file) records
    // when open[0] was last seen: wait for one (it was taken less long ago
    // than the file has had the attach).
    let handled = std::time::Instant::now();
    let mut age = Value::Null;
    let checkpointed = wait_until(
        || {
            // Measured before the question: a lower bound of the time
            // since `handled` when the handler answers.
            let since = handled.elapsed().as_secs_f64();
            age = info(&janus)["recovery"]["checkpoint_age_s"].clone();
            age.as_f64().is_some_and(|age| age < since)
        },
        Duration::from_secs(10),
    );
    assert!(
        checkpointed,
        "no checkpoint after the attach: the last is {age} s old"
    );
    janus.kill();
    drop(ws);
    let before = read_jsonl(&out).len();
    let mut janus = Janus::start_in(&janus_dir, opts());
    let events = expect_jsonl(
        &out,
        "3 gateway_restart endings",
        |e| {
            e[before..]
                .iter()
                .filter(|e| e["event"]["reason"] == "gateway_restart")
                .count()
                >= 3
        },
        Duration::from_secs(10),
    );
    let restarted: Vec<&Value> = events[before..]
        .iter()
        .filter(|e| e["event"]["reason"] == "gateway_restart")
        .collect();
    let mut ids: Vec<u64> = restarted
        .iter()
        .map(|e| e["session_id"].as_u64().unwrap())
        .collect();
    ids.sort();
    let mut want = open.clone();
    want.sort();
    assert_eq!(ids, want, "exactly the open sessions, once each");
    for e in &restarted {
        assert_eq!(e["emitter"], "RigJanus");
        assert_eq!(e["event"]["synthetic"], true);
        assert_eq!(e["type"], 1);
    }
    let first = restarted
        .iter()
        .find(|e| e["session_id"] == open[0])
        .unwrap();
    assert_eq!(first["timestamp"], attached_at, "the last time it was seen");
    assert_eq!(info(&janus)["recovery"]["recovered_sessions"], 3);
    // A clean stop leaves nothing to recover.
    assert!(janus.stop().success());
    let mut janus = Janus::start_in(&janus_dir, opts());
    assert_eq!(info(&janus)["recovery"]["recovered_sessions"], 0);
    assert!(janus.stop().success());
    let reasons: usize = read_jsonl(&out)
        .iter()
        .filter(|e| e["event"]["reason"] == "gateway_restart")
        .count();
    assert_eq!(reasons, 3);
}

#[test]
fn admin_sessions_and_tweak() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true }}\n{}http-mon: {{ backend = \"{}\" }}\n",
        file_section(&out),
        receiver.url()
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        // The Admin requests are then no events: nothing happens between
        // the marker below and the tweaks but what the test does.
        http_events: false,
        ..JanusOptions::default()
    });
    let admin = janus.admin();
    let q = |request: Value| admin.query_eventhandler(HANDLER, request)["response"].clone();
    let mut ws = janus.ws();
    let a = ws.create_session();
    let h = ws.attach(a, "janus.plugin.echotest");
    let b = ws.create_session();
    let c = janus.http().create_session();
    assert!(wait_until(
        || q(json!({"request": "info"}))["tracker"]["live_sessions"] == 3,
        Duration::from_secs(5)
    ));

    let all = q(json!({"request": "sessions"}));
    assert_eq!(all["result"], 200);
    assert_eq!(all["total"], 3);
    let list = all["sessions"].as_array().unwrap();
    let ids: Vec<u64> = list
        .iter()
        .map(|s| s["session_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![a, b, c], "in creation order");
    assert_eq!(
        list[0]["transport"]["transport"],
        "janus.transport.websockets"
    );
    assert_eq!(
        list[0]["handles"],
        json!([{"handle_id": h, "plugin": "janus.plugin.echotest"}])
    );
    assert_eq!(list[0]["state"], "live");
    assert_eq!(list[2]["transport"]["transport"], "janus.transport.http");
    let page = q(json!({"request": "sessions", "offset": 1, "limit": 1}));
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(page["sessions"][0]["session_id"], b);

    // Bad requests, answered in Janus's style.
    assert_eq!(
        q(json!({"request": "sessions", "limit": 0}))["error_code"],
        413
    );
    assert_eq!(
        q(json!({"request": "sessions", "limit": "all"}))["error_code"],
        413
    );
    assert_eq!(q(json!({"request": "tweak"}))["error_code"], 412);
    assert_eq!(
        q(json!({"request": "tweak", "events": "sesions"}))["error_code"],
        413
    );
    assert_eq!(
        q(json!({"request": "tweak", "sink": "nope", "enabled": false}))["error_code"],
        413
    );
    assert_eq!(
        q(json!({"request": "tweak", "enabled": false}))["error_code"],
        412
    );
    assert_eq!(
        q(json!({"request": "tweak", "settle_ms": -5}))["error_code"],
        413
    );
    assert_eq!(
        q(json!({"request": "tweak", "bogus": 1}))["error_code"],
        413
    );

    // Everything so far is in the file and at the backend once the marker is.
    let marker = send_marker(&janus);
    receiver.expect(
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );
    expect_jsonl(
        &out,
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );

    // Tweaks: a mask for one sink, a disabled sink, the settle window.
    assert_eq!(
        q(json!({"request": "tweak", "sink": "http-mon", "events": "core"}))["result"],
        200
    );
    assert_eq!(
        q(json!({"request": "tweak", "sink": "file", "enabled": false}))["result"],
        200
    );
    assert_eq!(
        q(json!({"request": "tweak", "settle_ms": 3000}))["result"],
        200
    );
    let info = q(json!({"request": "info"}));
    assert_eq!(info["sinks"]["http-mon"]["events"], "core");
    assert_eq!(info["sinks"]["file"]["enabled"], false);
    assert_eq!(info["tracker"]["settle_ms"], 3000);
    // A disabled sink takes nothing from the moment it is disabled: what it
    // took by now is all it ever takes.
    let file_took = info["sinks"]["file"]["accepted"].clone();
    ws.destroy(a);
    admin.custom_event("after.tweak", json!({}));
    // The new settle window applies: b, whose connection drops, is still
    // waiting for Janus's own ending more than a second after the
    // disconnect (the default window is 0.5 s), and has ended once the 3 s
    // are over. (Janus >= 1.3.2 sends its own ending right after the
    // disconnect: b is gone at once, ended by Janus.)
    ws.drop_tcp();
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let mut waited_ms = Vec::new();
    let gone = wait_until(
        || {
            // Asked after this moment: b, if listed, was there then.
            let asked = now_us();
            let now = q(json!({"request": "sessions"}));
            let b_now = now["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["session_id"] == b)
                .cloned();
            match b_now {
                None => true,
                Some(b_now) => {
                    // `last_event` of a disconnected session: its disconnect.
                    if b_now["state"] == "disconnected" {
                        waited_ms.push((asked - b_now["last_event"].as_i64().unwrap()) / 1000);
                    }
                    false
                }
            }
        },
        Duration::from_secs(15),
    );
    assert!(gone, "b never ended");
    let info = expect_info(
        &janus,
        "b's ending counted",
        |i| i["tracker"]["endings"]["transport_gone"] == 1,
        Duration::from_secs(10),
    );
    let t = &info["tracker"];
    assert_eq!(t["endings"]["transport_gone"], 1, "{t}");
    if janus.ends_sessions_on_transport_gone() {
        assert_eq!(
            t["synthetic_endings"]["transport_gone"], 0,
            "Janus ended b itself: {t}"
        );
    } else {
        assert_eq!(t["synthetic_endings"]["transport_gone"], 1, "{t}");
        assert!(
            waited_ms.iter().any(|ms| *ms >= 1000),
            "b was never seen waiting a second after its disconnect: {waited_ms:?} ms"
        );
    }
    assert_eq!(
        info["sinks"]["file"]["accepted"], file_took,
        "the file took nothing"
    );
    assert!(janus.stop().success());
    // What happened after the tweaks: in the file, nothing; at the backend,
    // core events only (Janus's shutdown among them).
    let after_tweaks = |e: &Value| {
        ((e["session_id"] == a || e["session_id"] == b) && e["event"]["name"] == "destroyed")
            || e["event"]["schema"] == "after.tweak"
            || (e["type"] == 256 && e["subtype"] == 2)
    };
    let lines = read_jsonl(&out);
    assert!(!lines.iter().any(after_tweaks), "{lines:?}");
    let posted = receiver.events();
    let from = posted
        .iter()
        .position(|e| has_marker(std::slice::from_ref(e), &marker))
        .unwrap()
        + 1;
    assert!(
        posted[from..].iter().all(|e| e["type"] == 256),
        "{:?}",
        &posted[from..]
    );
    assert!(
        posted[from..]
            .iter()
            .any(|e| e["type"] == 256 && e["subtype"] == 2),
        "the backend got Janus's shutdown"
    );
}
