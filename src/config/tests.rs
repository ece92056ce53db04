use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        Path::new("/etc/janus/janus.eventhandler.lifecycleevh.jcfg"),
        text,
    )
}

#[test]
fn sample_config_parses_to_the_documented_defaults() {
    let text = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
    let c = parse(text).unwrap();
    assert!(c.general.enabled);
    assert_eq!(c.general.events, EventMask::ALL);
    assert_eq!(
        c.general.channel_capacity,
        General::default().channel_capacity
    );
    assert_eq!(c.general.settle, General::default().settle);
    assert_eq!(c.general.max_sessions, General::default().max_sessions);
    assert_eq!(
        c.general.shutdown_timeout,
        General::default().shutdown_timeout
    );
    assert_eq!(c.general.reclaim_session_timeout, None);
    assert_eq!(c.general.inject, General::default().inject);
    assert_eq!(c.general.state_dir, None);
    assert_eq!(c.general.state_fsync, General::default().state_fsync);
    assert_eq!(c.general.checkpoint, General::default().checkpoint);
    assert!(c.http.is_empty());
    assert!(c.file.enabled);
    assert_eq!(c.file.path, FileConfig::default().path);
    assert_eq!(c.file.flush, FileConfig::default().flush);
    assert_eq!(c.file.events, None);
    assert_eq!(c.file.queue_size, FileConfig::default().queue_size);
    assert_eq!(c.metrics, MetricsConfig::default());
}

#[test]
fn every_key_is_read() {
    let c = parse(
        r#"
general: {
    enabled = "yes"
    events = "sessions,handles"
    channel_capacity = 1024
    settle_ms = 250
    reclaim_session_timeout = 30
    max_sessions = 5000
    shutdown_timeout_ms = 2000
    inject = "none"
}
file: {
    enabled = false
    path = "/tmp/x.jsonl"
    flush_ms = 50
    events = "core"
    queue_size = 100
}
"#,
    )
    .unwrap();
    assert!(c.general.enabled);
    assert_eq!(c.general.events.to_string(), "sessions,handles");
    assert_eq!(c.general.channel_capacity, 1024);
    assert_eq!(c.general.settle, Duration::from_millis(250));
    assert_eq!(c.general.reclaim_session_timeout, Some(30));
    assert_eq!(c.general.max_sessions, 5000);
    assert_eq!(c.general.shutdown_timeout, Duration::from_millis(2000));
    assert!(c.general.inject.is_empty());
    assert!(!c.file.enabled);
    assert_eq!(c.file.path, PathBuf::from("/tmp/x.jsonl"));
    assert_eq!(c.file.flush, Duration::from_millis(50));
    assert_eq!(c.file.events.unwrap().to_string(), "core");
    assert_eq!(c.file.queue_size, 100);
}

#[test]
fn errors_name_file_key_and_problem() {
    let e = parse("general: { enabled = true, settle_ms = \"soon\" }").unwrap_err();
    assert_eq!(e.key, "general.settle_ms");
    assert!(e.problem.contains("\"soon\""), "{e}");
    assert!(
        e.to_string()
            .starts_with("/etc/janus/janus.eventhandler.lifecycleevh.jcfg: general.settle_ms: "),
        "{e}"
    );

    let e = parse("general: { enabled = maybe }").unwrap_err();
    assert_eq!(e.key, "");
    assert!(e.problem.starts_with("syntax error at line 1"), "{e}");

    let e = parse("general: { enabled = 2 }").unwrap_err();
    assert_eq!(e.key, "general.enabled");

    let e = parse("general: { events = \"sessions,handels\" }").unwrap_err();
    assert_eq!(e.key, "general.events");
    assert!(e.problem.contains("handels"));

    let e = parse("general: { setle_ms = 5 }").unwrap_err();
    assert_eq!(e.key, "general.setle_ms");
    assert!(e.problem.starts_with("unknown key"));

    let e = parse("fiel: { path = \"/x\" }").unwrap_err();
    assert_eq!(e.key, "fiel");

    let e = parse("file: { path = 5 }").unwrap_err();
    assert_eq!(e.key, "file.path");
    assert!(e.problem.contains("quoted string"));

    let e = parse("file: { path = \"\" }").unwrap_err();
    assert_eq!(e.key, "file.path");

    let e = parse("general: { channel_capacity = 3 }").unwrap_err();
    assert!(e.problem.contains("out of range"), "{e}");

    let e = parse("general: { inject = \"transport_gone,request\" }").unwrap_err();
    assert_eq!(e.key, "general.inject");

    let e = parse("general = 5").unwrap_err();
    assert_eq!(e.key, "general");

    let e = parse("general: { events = [\"a\"] }").unwrap_err();
    assert!(e.problem.contains("single value"), "{e}");
}

#[test]
fn inject_lists() {
    assert_eq!(
        parse_inject("shutdown, timeout,shutdown").unwrap(),
        vec![Reason::Shutdown, Reason::Timeout]
    );
    assert_eq!(parse_inject("NONE").unwrap(), vec![]);
    assert!(parse_inject("gateway_restart").is_err());
    assert!(parse_inject("").is_err());
}

/// Janus's own files are not read (what the handler needs of Janus comes
/// from its events): whatever libconfig accepts there, `@include` included,
/// never turns into a handler error.
#[test]
fn janus_own_files_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("janus.jcfg"),
        "@include \"elsewhere.jcfg\"\ngeneral: { session_timeout = 60L, x = 0x10 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("janus.transport.websockets.jcfg"),
        "general: { events = false",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("janus.eventhandler.lifecycleevh.jcfg"),
        "general: { enabled = true }",
    )
    .unwrap();
    let c = Config::load(dir.path()).unwrap();
    assert!(c.general.enabled);
}

#[test]
fn load_reports_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(dir.path()).unwrap_err();
    assert!(e.file.ends_with("janus.eventhandler.lifecycleevh.jcfg"));
    assert!(e.problem.starts_with("cannot read the file"));
}

#[test]
fn the_sample_http_section_parses_with_every_key() {
    let sample = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
    let start = sample.find("#http-billing: {").unwrap();
    let section: String = sample[start..]
        .lines()
        .map(|l| l.strip_prefix('#').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let c = parse(&format!("general: {{ enabled = true }}\n{section}")).unwrap();
    let h = &c.http[0];
    assert_eq!(h.name, "http-billing");
    assert_eq!(h.target.backend, "https://billing.example.com/janus-events");
    assert_eq!(h.events.unwrap().to_string(), "sessions");
    assert!(h.target.grouping);
    assert_eq!(h.max_batch, 100);
    assert_eq!(h.max_delay, Duration::ZERO);
    assert_eq!(h.target.json, JsonStyle::Compact);
    assert_eq!(h.target.user.as_deref(), Some("janus"));
    assert_eq!(h.target.password.as_deref(), Some("secret"));
    assert_eq!(h.target.compress, None);
    assert_eq!(h.retries, 5);
    assert_eq!(h.backoff, Duration::from_millis(100));
    assert_eq!(h.backoff_max, Duration::from_secs(30));
    assert_eq!(h.target.timeout, Duration::from_secs(10));
    assert_eq!(
        h.target.ca_file,
        Some(PathBuf::from("/etc/ssl/private-ca.pem"))
    );
    assert!(h.target.tls_verify);
    assert_eq!(h.queue_size, 65536);
    let spool = h.spool.as_ref().unwrap();
    assert_eq!(
        spool.dir,
        PathBuf::from("/var/spool/lifecycleevh/http-billing")
    );
    assert!(!spool.all_events);
    assert_eq!(spool.fsync, Fsync::Interval);
    assert_eq!(spool.fsync_every, Duration::from_secs(1));
    assert_eq!(spool.max_bytes, 1024 << 20);
}

#[test]
fn http_errors() {
    let e = parse("http: { events = \"all\" }").unwrap_err();
    assert_eq!(e.key, "http.backend");
    assert!(e.problem.starts_with("missing"));
    let e = parse("http-x: { backend = \"ftp://x\" }").unwrap_err();
    assert_eq!(e.key, "http-x.backend");
    let e = parse("http-x: { backend = \"http://x\", json = \"pretty\" }").unwrap_err();
    assert_eq!(e.key, "http-x.json");
    assert!(e.problem.contains("compact, plain, indented"));
    let e = parse("http-x: { backend = \"http://x\", compression = 10 }").unwrap_err();
    assert_eq!(e.key, "http-x.compression");
    let e = parse("http-x: { backend = \"http://x\", spool_fsync = \"sometimes\" }").unwrap_err();
    assert_eq!(e.key, "http-x.spool_fsync");
    let e = parse("http-x!: { backend = \"http://x\" }").unwrap_err();
    assert_eq!(e.key, "");
    let e = parse("http-: { backend = \"http://x\" }").unwrap_err();
    assert_eq!(e.key, "http-");
    let c = parse("http: { backend = \"http://a\", grouping = false, max_batch = 50, compress = true, compression_format = \"zlib\" }\nhttp-b: { backend = \"http://b\", enabled = false }").unwrap();
    assert_eq!(c.http.len(), 2);
    assert_eq!(c.http[0].max_batch, 1, "no grouping: one event per request");
    assert_eq!(c.http[0].target.compress, Some((Compression::Zlib, 6)));
    assert!(!c.http[1].enabled);
}

/// Every key of the sample config (http-* keys included), as `category.key`.
fn sample_keys() -> Vec<String> {
    let sample = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
    // Settings and categories, commented out or not; prose comments dropped.
    let is_setting = |t: &str| {
        let name: String = t
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        !name.is_empty() && t[name.len()..].trim_start().starts_with('=')
    };
    let uncommented: String = sample
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim_start())
        .filter(|t| is_setting(t) || t.ends_with(": {") || *t == "}")
        .collect::<Vec<_>>()
        .join("\n");
    let doc = jcfg::parse(&uncommented).expect("the sample parses once uncommented");
    let mut keys = Vec::new();
    for cat in &doc.settings {
        if let jcfg::Value::Group(items) = &cat.value {
            for item in items {
                let category = if cat.name.starts_with("http") {
                    "http"
                } else {
                    &cat.name
                };
                keys.push(format!("{category}.{}", item.name));
            }
        }
    }
    keys
}

/// Failure behaviour: every key, given a wrong type and a wrong value, is
/// refused with an error naming the file and that key.
#[test]
fn every_key_refuses_a_wrong_type_and_a_wrong_value() {
    // (key, a value of the wrong type, a wrong value of the right type)
    let cases: &[(&str, &str, &str)] = &[
        ("general.enabled", "[true]", "\"perhaps\""),
        ("general.events", "5", "\"sessions,everything\""),
        ("general.channel_capacity", "\"many\"", "0"),
        ("general.settle_ms", "true", "600001"),
        ("general.reclaim_session_timeout", "\"soon\"", "-1"),
        ("general.max_sessions", "1.5", "0"),
        ("general.shutdown_timeout_ms", "\"x\"", "10"),
        ("general.inject", "7", "\"request\""),
        ("general.state_dir", "5", "\"\""),
        ("general.state_fsync", "1", "\"sometimes\""),
        ("general.checkpoint_ms", "\"often\"", "5"),
        ("file.enabled", "{ }", "\"y\""),
        ("file.path", "true", "\"\""),
        ("file.flush_ms", "\"fast\"", "0"),
        ("file.events", "[1]", "\"nothing\""),
        ("file.queue_size", "\"big\"", "1"),
        ("http.enabled", "[]", "\"on\""),
        ("http.backend", "5", "\"ftp://x\""),
        ("http.events", "3", "\"al\""),
        ("http.grouping", "[1]", "\"maybe\""),
        ("http.max_batch", "\"lots\"", "0"),
        ("http.max_delay_ms", "\"later\"", "60001"),
        ("http.json", "1", "\"pretty\""),
        ("http.backend_user", "5", ""),
        ("http.backend_pwd", "5", ""),
        ("http.compress", "(1)", "\"zip\""),
        ("http.compression", "\"best\"", "10"),
        ("http.compression_format", "1", "\"brotli\""),
        ("http.max_retransmissions", "\"few\"", "-3"),
        ("http.retransmissions_backoff", "\"short\"", "0"),
        ("http.backoff_max_ms", "\"long\"", "0"),
        ("http.timeout_ms", "\"5s\"", "50"),
        ("http.ca_file", "5", "\"\""),
        ("http.tls_verify", "[]", "\"never\""),
        ("http.queue_size", "\"big\"", "2"),
        ("http.spool_dir", "5", "\"\""),
        ("http.spool", "1", "\"some\""),
        ("http.spool_fsync", "0", "\"daily\""),
        ("http.spool_fsync_ms", "\"1s\"", "1"),
        ("http.spool_max_mb", "\"1G\"", "0"),
        ("metrics.enabled", "[true]", "\"perhaps\""),
        ("metrics.listen", "7090", "\"localhost:7090\""),
        ("metrics.path", "5", "\"metrics\""),
        ("metrics.user", "5", "\"a:b\""),
        ("metrics.password", "5", "\"\""),
    ];
    let documented = sample_keys();
    for key in &documented {
        assert!(
            cases.iter().any(|(k, _, _)| k == key),
            "{key} has no failure case: add one here and to the README's table"
        );
    }
    for (key, _, _) in cases {
        assert!(
            documented.iter().any(|k| k == key),
            "{key} is not in the sample config"
        );
    }
    for (key, wrong_type, wrong_value) in cases {
        let (category, name) = key.split_once('.').unwrap();
        for bad in [wrong_type, wrong_value]
            .into_iter()
            .filter(|b| !b.is_empty())
        {
            let backend = if category == "http" && name != "backend" {
                "backend = \"http://127.0.0.1:1/\", "
            } else {
                ""
            };
            let text = format!("{category}: {{ {backend}{name} = {bad} }}");
            let e = parse(&text).expect_err(&text);
            let names_key = e.key == *key || (e.key.is_empty() && e.problem.starts_with("syntax"));
            assert!(names_key, "{text}: {e}");
            assert!(
                e.to_string()
                    .starts_with("/etc/janus/janus.eventhandler.lifecycleevh.jcfg: "),
                "{e}"
            );
        }
    }
}
