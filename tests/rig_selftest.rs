//! Checks of the real-Janus test rig itself (tests/common), against Janus's
//! stock sample event handler posting to a [`Receiver`]: if these fail, the
//! rig or the installed Janus is broken, not the handler under test.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ECHOTEST: &str = "janus.plugin.echotest";

/// Janus with sampleevh posting every event, one per request, to `receiver`.
fn janus_for(receiver: &Receiver, opts: JanusOptions) -> Janus {
    Janus::start(JanusOptions {
        sampleevh: Some(SampleEvh::to(receiver.url())),
        ..opts
    })
}

/// Index of the first session-level (type 1) event `name` of `session`.
fn session_event(events: &[Value], session: u64, name: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e["type"] == 1 && e["session_id"] == session && e["event"]["name"] == name)
}

/// Index of the first handle-level (type 2) event `name` of `session`.
fn handle_event(events: &[Value], session: u64, name: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e["type"] == 2 && e["session_id"] == session && e["event"]["name"] == name)
}

fn dump(events: &[Value]) -> String {
    events.iter().map(|e| format!("  {e}\n")).collect()
}

#[test]
fn ws_session_lifecycle_and_clean_shutdown() {
    let receiver = Receiver::start();
    let mut janus = janus_for(&receiver, JanusOptions::default());
    let mut ws = janus.ws();
    let s = ws.create_session();
    let h = ws.attach(s, ECHOTEST);
    ws.destroy(s);
    let events = receiver.expect(
        &format!("a destroyed for {s}"),
        |ev| session_event(ev, s, "destroyed").is_some(),
        Duration::from_secs(5),
    );
    let created = session_event(&events, s, "created").expect("created");
    let attached = handle_event(&events, s, "attached").expect("attached");
    let destroyed = session_event(&events, s, "destroyed").expect("destroyed");
    assert!(
        created < attached && attached < destroyed,
        "order:\n{}",
        dump(&events)
    );
    assert_eq!(
        events[created]["event"]["transport"]["transport"],
        "janus.transport.websockets"
    );
    assert_eq!(events[attached]["handle_id"], h);
    assert_eq!(events[attached]["event"]["plugin"], ECHOTEST);
    let connection = events[created]["event"]["transport"]["id"].clone();
    ws.close();
    // sampleevh posted all there was and waits for more: it then posts the
    // shutdown event (Janus stops it at its next turn after that, without
    // posting what is still queued).
    receiver.expect(
        "the connection's disconnect",
        |ev| {
            ev.iter().any(|e| {
                e["type"] == 128
                    && e["event"]["data"]["event"] == "disconnected"
                    && e["event"]["id"] == connection
            })
        },
        Duration::from_secs(10),
    );

    let status = janus.stop();
    assert!(status.success(), "Janus exited with {status}");
    receiver.expect(
        "a shutdown event",
        |ev| ev.iter().any(|e| e["type"] == 256 && e["subtype"] == 2),
        Duration::from_secs(2),
    );
    // The instance's files are where the rig says.
    assert!(janus.cfg_dir().join("janus.jcfg").is_file());
    assert!(
        janus.log().contains("Bye!"),
        "Janus's log ends with its goodbye"
    );
}

#[test]
fn ws_drop_ends_the_session_silently_before_1_3_2() {
    let receiver = Receiver::start();
    let janus = janus_for(&receiver, JanusOptions::default());
    let mut ws = janus.ws();
    let s = ws.create_session();
    ws.attach(s, ECHOTEST);
    ws.drop_tcp();

    let connection = |ev: &[Value]| {
        let created = &ev[session_event(ev, s, "created")?];
        Some(created["event"]["transport"]["id"].clone())
    };
    let disconnected = |ev: &[Value]| {
        let id = connection(ev);
        ev.iter().any(|e| {
            e["type"] == 128
                && e["event"]["data"]["event"] == "disconnected"
                && Some(&e["event"]["id"]) == id.as_ref()
        })
    };
    receiver.expect(
        &format!("disconnected + detached for {s}"),
        |ev| disconnected(ev) && handle_event(ev, s, "detached").is_some(),
        Duration::from_secs(5),
    );
    // Janus 1.1.2 destroys the session silently: no session event follows.
    // Janus >= 1.3.2 (the fix for issue 3533) sends one `destroyed`, after
    // the `disconnected`. Janus is done with the session once it is gone
    // from its list; what it sent about it came before the marker.
    let admin = janus.admin();
    assert!(
        common::wait_until(
            || !admin.list_sessions().contains(&s),
            Duration::from_secs(10)
        ),
        "Janus still lists {s}"
    );
    let marker = send_marker(&janus);
    let events = receiver.expect(
        "the marker",
        |ev| has_marker(ev, &marker),
        Duration::from_secs(10),
    );
    let after: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == 1 && e["session_id"] == s && e["event"]["name"] != "created")
        .collect();
    if janus.ends_sessions_on_transport_gone() {
        assert_eq!(after.len(), 1, "after the drop:\n{}", dump(&events));
        assert_eq!(after[0]["event"], json!({"name": "destroyed"}));
        let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
        assert!(
            at(&|e| e["event"]["data"]["event"] == "disconnected")
                < at(&|e| std::ptr::eq(e, after[0])),
            "destroyed after disconnected:\n{}",
            dump(&events)
        );
    } else {
        assert!(
            after.is_empty(),
            "a session event after the drop:\n{}",
            dump(&events)
        );
    }
    assert!(!janus.admin().list_sessions().contains(&s));
}

#[test]
fn idle_session_times_out() {
    let receiver = Receiver::start();
    let janus = janus_for(
        &receiver,
        JanusOptions {
            session_timeout: 3,
            ..JanusOptions::default()
        },
    );
    let mut ws = janus.ws();
    let s = ws.create_session();
    // Janus 1.1.2 fires between timeout + 2 s and timeout + 4 s (its
    // watchdog runs every 2 s and only acts on its second look).
    let pushed = ws.wait_for(|m| m["janus"] == "timeout", Duration::from_secs(10));
    assert_eq!(
        pushed.expect("no timeout pushed on the WebSocket")["session_id"],
        s
    );
    receiver.expect(
        "a timeout event",
        |ev| session_event(ev, s, "timeout").is_some(),
        Duration::from_secs(2),
    );
}

#[test]
fn admin_api() {
    let receiver = Receiver::start();
    let janus = janus_for(&receiver, JanusOptions::default());
    let admin = janus.admin();
    let mut ws = janus.ws();
    let s = ws.create_session();
    ws.attach(s, ECHOTEST);
    assert!(admin.list_sessions().contains(&s));

    let reply = admin.destroy_session(s);
    assert_eq!(reply["session_id"], s, "{reply}");
    assert!(!admin.list_sessions().contains(&s));
    receiver.expect(
        &format!("a destroyed for {s}"),
        |ev| session_event(ev, s, "destroyed").is_some(),
        Duration::from_secs(5),
    );
    // Once gone, it is an error.
    let again = admin.session_request(s, json!({"janus": "destroy_session"}));
    assert_eq!(again["error"]["code"], 458, "{again}");

    admin.custom_event("rig", json!({"hello": "world"}));
    receiver.expect(
        "the custom event",
        |ev| {
            ev.iter().any(|e| {
                e["type"] == 4
                    && e["event"]["schema"] == "rig"
                    && e["event"]["data"]["hello"] == "world"
            })
        },
        Duration::from_secs(5),
    );

    // Wrong secret, unknown handler: Janus's errors come back as values.
    let denied = admin.request(json!({"janus": "list_sessions", "admin_secret": "nope"}));
    assert_eq!(denied["error"]["code"], 403, "{denied}");
    let unknown = admin.query_eventhandler("janus.eventhandler.nosuch", json!({}));
    assert_eq!(unknown["error"]["code"], 460, "{unknown}");
    let sample = admin.query_eventhandler("janus.eventhandler.sampleevh", json!({"request": "x"}));
    assert_eq!(sample["janus"], "success", "{sample}");
    assert!(sample["response"].is_object(), "{sample}");
}

#[test]
fn two_instances_in_parallel() {
    let (a, b) = std::thread::scope(|scope| {
        let start = || {
            scope.spawn(|| {
                let receiver = Receiver::start();
                let janus = janus_for(&receiver, JanusOptions::default());
                (receiver, janus)
            })
        };
        let (a, b) = (start(), start());
        (a.join().unwrap(), b.join().unwrap())
    });
    let ((rx_a, janus_a), (rx_b, janus_b)) = (a, b);
    assert_ne!(janus_a.pid(), janus_b.pid());
    assert_ne!(janus_a.ws_url(), janus_b.ws_url());
    assert_ne!(janus_a.http_url(), janus_b.http_url());
    assert_ne!(janus_a.dir(), janus_b.dir());

    let mut ws_a = janus_a.ws(); // A WebSocket session lives as long as its connection.
    let sa = ws_a.create_session();
    let sb = janus_b.http().create_session();
    for (rx, mine, theirs, transport) in [
        (&rx_a, sa, sb, "janus.transport.websockets"),
        (&rx_b, sb, sa, "janus.transport.http"),
    ] {
        let events = rx.expect(
            &format!("a created for {mine}"),
            |ev| session_event(ev, mine, "created").is_some(),
            Duration::from_secs(5),
        );
        let created = &events[session_event(&events, mine, "created").unwrap()];
        assert_eq!(created["event"]["transport"]["transport"], transport);
        assert!(session_event(&events, theirs, "created").is_none());
    }
    assert_eq!(janus_a.admin().list_sessions(), vec![sa]);
    assert_eq!(janus_b.admin().list_sessions(), vec![sb]);
}

#[test]
fn http_api_grouping_and_restart_in_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let grouped = |on: bool| JanusOptions {
        sampleevh: Some(SampleEvh {
            backend: receiver.url(),
            grouping: on,
            events: "sessions,handles".into(),
        }),
        ..JanusOptions::default()
    };

    let mut janus = Janus::start_in(dir.path(), grouped(false));
    let http = janus.http();
    let s = http.create_session();
    let h = http.attach(s, ECHOTEST);
    http.keepalive(s);
    http.detach(s, h);
    http.destroy(s);
    // The handle's `detached` may come after the session's `destroyed`.
    let events = receiver.expect(
        &format!("a destroyed and a detached for {s}"),
        |ev| {
            session_event(ev, s, "destroyed").is_some() && handle_event(ev, s, "detached").is_some()
        },
        Duration::from_secs(5),
    );
    assert!(
        events.iter().all(|e| e["type"] == 1 || e["type"] == 2),
        "{}",
        dump(&events)
    );
    assert_eq!(
        events[session_event(&events, s, "created").unwrap()]["event"]["transport"]["transport"],
        "janus.transport.http"
    );
    assert!(janus.stop().success());
    let first_pid = janus.pid();
    drop(janus);

    // Again in the same folder, grouping on: arrays, flattened by the receiver.
    receiver.clear();
    let janus = Janus::start_in(dir.path(), grouped(true));
    assert_ne!(janus.pid(), first_pid);
    assert!(
        dir.path().join("janus.log.1").is_file(),
        "the first run's log is kept"
    );
    assert!(
        !janus.log().contains(&s.to_string()),
        "the log is this run's only"
    );
    let mut ws = janus.ws();
    let s2 = ws.create_session();
    ws.attach(s2, ECHOTEST);
    ws.destroy(s2);
    receiver.expect(
        &format!("a destroyed for {s2}"),
        |ev| session_event(ev, s2, "destroyed").is_some(),
        Duration::from_secs(5),
    );
    let requests = receiver.requests();
    assert!(requests.iter().all(|r| r.path == "/events"));
    assert!(
        requests.iter().all(|r| r.body.first() == Some(&b'[')),
        "grouping posts arrays"
    );
    assert!(janus.wait_log("Creating new session", Duration::from_secs(10)));
}

#[test]
fn receiver_failure_status() {
    let receiver = Receiver::start();
    let janus = janus_for(&receiver, JanusOptions::default());
    // After the startup event, so that sampleevh's retries of it (5, over
    // about 3 s) do not hold the queue.
    assert!(receiver.wait_until(
        |ev| ev.iter().any(|e| e["type"] == 256),
        Duration::from_secs(5)
    ));
    receiver.set_status(503);
    let s = janus.ws().create_session();
    let posted = |s: u64| {
        move |r: &ReceivedRequest| {
            serde_json::from_slice::<Value>(&r.body).is_ok_and(|e| e["session_id"] == s)
        }
    };
    assert!(
        common::wait_until(
            || receiver.requests().iter().any(posted(s)),
            Duration::from_secs(5)
        ),
        "sampleevh did not post {s}"
    );
    // Requests answered with an error are not delivered events.
    assert!(session_event(&receiver.events(), s, "created").is_none());
    receiver.set_status(200);
    let s2 = janus.ws().create_session();
    receiver.expect(
        &format!("a created for {s2}"),
        |ev| session_event(ev, s2, "created").is_some(),
        Duration::from_secs(10),
    );
    let request = receiver.requests().into_iter().find(posted(s2)).unwrap();
    assert_eq!(request.header("content-type"), Some("application/json"));
}

#[test]
fn jsonl_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    assert!(read_jsonl(&path).is_empty(), "a missing file is empty");
    std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\n{\"a\":").unwrap();
    assert_eq!(read_jsonl(&path), vec![json!({"a": 1}), json!({"a": 2})]);
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
        })
    };
    let events = expect_jsonl(&path, "3 lines", |ev| ev.len() == 3, Duration::from_secs(5));
    writer.join().unwrap();
    assert_eq!(events.len(), 3);
    // A wait that times out fails the test, naming what it waited for.
    let failed = std::panic::catch_unwind(|| {
        expect_jsonl(
            &path,
            "a 4th line",
            |ev| ev.len() == 4,
            Duration::from_millis(100),
        )
    });
    let why = failed.expect_err("no 4th line came");
    let why = why.downcast_ref::<String>().expect("a message");
    assert!(
        why.contains("a 4th line") && why.contains("{\"a\":3}"),
        "{why}"
    );
}

/// POSTs `body` to the receiver with extra header lines; returns the status.
fn raw_post(receiver: &Receiver, extra_headers: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", receiver.port())).unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn receiver_decodes_and_authenticates() {
    use std::io::Write;
    let receiver = Receiver::start_with(ReceiverOptions {
        auth: Some(("janus".into(), "s3cret:x".into())),
        ..ReceiverOptions::default()
    });
    // "janus:s3cret:x" in base64.
    let auth = "Authorization: Basic amFudXM6czNjcmV0Ong=\r\n";
    assert_eq!(raw_post(&receiver, "", b"{\"n\":0}"), 401);
    assert_eq!(
        raw_post(&receiver, "Authorization: Basic eDp5\r\n", b"{\"n\":0}"),
        401
    );
    assert_eq!(raw_post(&receiver, auth, b"{\"n\":1}"), 200);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(b"[{\"n\":2},{\"n\":3}]").unwrap();
    assert_eq!(raw_post(&receiver, auth, &gzip.finish().unwrap()), 200);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(b"{\"n\":4}").unwrap();
    let deflate = format!("{auth}Content-Encoding: deflate\r\n");
    assert_eq!(raw_post(&receiver, &deflate, &zlib.finish().unwrap()), 200);
    assert_eq!(
        receiver.events(),
        vec![
            json!({"n": 1}),
            json!({"n": 2}),
            json!({"n": 3}),
            json!({"n": 4})
        ]
    );
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 200, 200, 200]);
    assert_eq!(receiver.requests()[3].text(), "[{\"n\":2},{\"n\":3}]");
}

#[test]
fn installs_the_handler_under_test() {
    let out = tempfile::tempdir().unwrap();
    let janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n",
            out.path().join("events.jsonl").display()
        )),
        ..JanusOptions::default()
    });
    let installed = janus.dir().join("events/libjanus_lifecycleevh.so");
    assert!(
        installed.is_file() && !installed.is_symlink(),
        "a copy, not a link"
    );
    assert!(
        janus
            .cfg_dir()
            .join("janus.eventhandler.lifecycleevh.jcfg")
            .is_file()
    );
    let info = janus.http().get("/info");
    assert!(
        info["events"]["janus.eventhandler.lifecycleevh"].is_object(),
        "Janus did not load the handler: {}",
        info["events"]
    );
}

#[test]
fn pid_version_and_exit_status_are_janus_own() {
    use std::os::unix::process::ExitStatusExt;
    let receiver = Receiver::start();
    let mut janus = janus_for(&receiver, JanusOptions::default());
    // Janus's own process on this machine, in a container too.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", janus.pid())).unwrap();
    assert_eq!(
        comm.trim(),
        "janus",
        "pid {} ({})",
        janus.pid(),
        janus.target()
    );
    // The target's own binary: Debian's, or the prefix build's.
    if let JanusTarget::Prefix { dir } = janus.target() {
        let exe = std::fs::read_link(format!("/proc/{}/exe", janus.pid())).unwrap();
        assert_eq!(exe, dir.join("bin/janus").canonicalize().unwrap());
    }
    // The version Janus logs when it starts.
    let (major, minor, patch) = janus.janus_version();
    let banner = format!("Starting Meetecho Janus (WebRTC Server) v{major}.{minor}.{patch}\n");
    assert!(
        janus.log().contains(&banner),
        "{:?} is not in the log",
        janus.janus_version()
    );
    // SIGKILL reaches Janus itself: it dies of it (not a client of it).
    janus.kill();
    let status = janus.exited().expect("exited");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}
