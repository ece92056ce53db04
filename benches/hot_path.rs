//! Hot path: the cost of one `incoming_event` call through the real C ABI
//! (the release `.so`, loaded with dlopen, called through its table as Janus
//! does), per call, in TSC cycles converted to ns: with the worker keeping up,
//! and with the channel full. In the same run, the baseline of what Janus's
//! sampleevh does on that thread: `json_incref` and a push onto a
//! mutex-protected GLib async queue (benches/baseline.c).
//!
//! Then the same calls counted in instructions by callgrind (deterministic,
//! unlike time on a shared virtual machine): this binary runs itself under
//! `valgrind --tool=callgrind --toggle-collect=...incoming_event` in a
//! calls-only mode (`--calls`), for lifecycleevh and for sampleevh's
//! incref-and-push.
//!
//! Last, overload: events offered at 10x the rate the worker drains them
//! (measured first), 1 in 20 a lifecycle event: what is dropped (bulk only),
//! that every lifecycle event reaches the file, and the memory high-water.
//!
//! `cargo build --release && cargo bench --bench hot_path` (or `make bench`).

#[path = "../tests/ffi/mod.rs"]
mod ffi;

use std::ffi::c_void;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ffi::{Json, Plugin};
use janus_lifecycleevh::ffi::sys::json_t;
use serde_json::json;

const CALLS: usize = 1_000_000;
const POOL: usize = 100_000;

#[cfg(target_arch = "x86_64")]
fn ticks() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: rdtsc and lfence have no preconditions on x86_64.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// TSC ticks per nanosecond.
fn calibrate() -> f64 {
    let (t0, i0) = (ticks(), Instant::now());
    std::thread::sleep(Duration::from_millis(300));
    (ticks() - t0) as f64 / i0.elapsed().as_nanos() as f64
}

/// The cost of the timing itself, in ticks (median of empty measurements).
fn overhead() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = ticks();
            ticks() - a
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

struct Stats {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

fn stats(mut samples: Vec<u64>, per_ns: f64, overhead: u64) -> Stats {
    samples.sort_unstable();
    let ns = |t: u64| t.saturating_sub(overhead) as f64 / per_ns;
    let at = |q: f64| ns(samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]);
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: ns(*samples.last().unwrap()),
        mean: samples.iter().map(|t| ns(*t)).sum::<f64>() / samples.len() as f64,
    }
}

/// A realistic event: a media stats event, as Janus builds them.
fn event_pool() -> Vec<Json> {
    (0..POOL)
        .map(|i| {
            Json::parse(
                &json!({
                    "emitter": "MyJanusInstance", "type": 32, "subtype": 3,
                    "timestamp": 1795534522675943i64 + i as i64,
                    "session_id": 1000 + (i % 500), "handle_id": 2000 + (i % 500),
                    "event": {"mid": "0", "mindex": 0, "media": "audio", "base": 48000,
                        "rtt": 20, "lost": 0, "lost-by-remote": 0, "jitter-local": 2,
                        "jitter-remote": 3, "in-link-quality": 100, "in-media-link-quality": 100,
                        "out-link-quality": 100, "out-media-link-quality": 100,
                        "packets-received": 1000 + i, "packets-sent": 990, "bytes-received": 160000,
                        "bytes-sent": 158000, "bytes-received-lastsec": 16000,
                        "bytes-sent-lastsec": 15800, "nacks-received": 0, "nacks-sent": 0}
                })
                .to_string(),
            )
        })
        .collect()
}

/// Calls `call` CALLS times; `paced`: 1000 calls, then a pause the consumer
/// uses to catch up (so the queue stays short).
fn measure(pool: &[Json], paced: bool, mut call: impl FnMut(*mut json_t)) -> Vec<u64> {
    for e in pool.iter().take(20_000) {
        call(e.0);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut samples = Vec::with_capacity(CALLS);
    for k in 0..CALLS {
        let e = pool[k % pool.len()].0;
        let t0 = ticks();
        call(e);
        samples.push(ticks() - t0);
        if paced && k % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    samples
}

fn config(dir: &Path, capacity: usize) {
    std::fs::write(
        dir.join("janus.eventhandler.lifecycleevh.jcfg"),
        format!(
            "general: {{ enabled = true, channel_capacity = {capacity} }}\nfile: {{ path = \"{}\" }}\n",
            dir.join("events.jsonl").display()
        ),
    )
    .unwrap();
}

/// Builds benches/baseline.c into a shared library and loads it.
fn baseline() -> (extern "C" fn(), extern "C" fn(*mut json_t), extern "C" fn()) {
    let out = std::env::temp_dir().join("lifecycleevh-baseline.so");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "glib-2.0", "jansson"])
        .output()
        .expect("pkg-config");
    let flags = String::from_utf8(flags.stdout).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline.c");
    let status = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags.split_whitespace())
        .status()
        .expect("cc");
    assert!(status.success(), "building the baseline");
    let path = std::ffi::CString::new(out.to_str().unwrap()).unwrap();
    // SAFETY (bench): loading our own baseline library and its three symbols.
    unsafe {
        let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!lib.is_null());
        let sym = |name: &std::ffi::CStr| -> *mut c_void {
            let p = libc::dlsym(lib, name.as_ptr());
            assert!(!p.is_null());
            p
        };
        (
            std::mem::transmute::<*mut c_void, extern "C" fn()>(sym(c"baseline_start")),
            std::mem::transmute::<*mut c_void, extern "C" fn(*mut json_t)>(sym(
                c"baseline_incoming_event",
            )),
            std::mem::transmute::<*mut c_void, extern "C" fn()>(sym(c"baseline_stop")),
        )
    }
}

fn row(name: &str, s: &Stats, note: &str) -> String {
    format!(
        "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {note} |",
        s.p50, s.p99, s.p999, s.max, s.mean
    )
}

/// One event of Janus's type `ty` as Janus builds them ("emitter", then
/// "type"); media events are the realistic stats event of [`event_pool`].
fn typed_pool(ty: u32, n: usize) -> Vec<Json> {
    if ty == 32 {
        // The stats event of event_pool, n of them (parsing 100000 under
        // valgrind would take minutes).
        return (0..n)
            .map(|i| {
                Json::parse(
                    &json!({"emitter": "MyJanusInstance", "type": 32, "subtype": 3,
                        "timestamp": 1795534522675943i64 + i as i64,
                        "session_id": 1000 + i, "handle_id": 2000 + i,
                        "event": {"mid": "0", "media": "audio", "packets-received": 1000 + i,
                            "bytes-received": 160000, "rtt": 20, "lost": 0}})
                    .to_string(),
                )
            })
            .collect();
    }
    (0..n)
        .map(|i| {
            Json::parse(
                &json!({"emitter": "MyJanusInstance", "type": ty, "timestamp": 1795534522675943i64 + i as i64,
                    "session_id": 1000 + i, "event": {"name": "created", "transport": {"transport": "janus.transport.websockets", "id": "123"}}})
                .to_string(),
            )
        })
        .collect()
}

/// `--calls WHO CAPACITY TYPE N`: N `incoming_event` calls and nothing
/// else, for callgrind. WHO: `lifecycleevh` or `sampleevh` (CAPACITY 0:
/// paced, the consumer keeping up; else a flood).
fn calls_only(args: &[String]) {
    let capacity: usize = args[1].parse().unwrap();
    let ty: u32 = args[2].parse().unwrap();
    let n: usize = args[3].parse().unwrap();
    let pool = typed_pool(ty, 1000);
    if args[0] == "sampleevh" {
        let (start, event, stop) = baseline();
        start();
        for k in 0..n {
            event(pool[k % pool.len()].0);
            if capacity == 0 && k % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        stop();
        return;
    }
    let plugin = Plugin::load();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), capacity);
    assert_eq!(plugin.init(dir.path()), 0);
    for k in 0..n {
        plugin.event_raw(pool[k % pool.len()].0);
    }
    let info = plugin.info();
    plugin.destroy();
    eprintln!("calls-only events: {}", info["events"]);
}

/// Runs `--calls ARGS` under callgrind, counting only inside the function
/// matching `toggle`; returns instructions per call and the run's counters.
fn callgrind(toggle: &str, args: [&str; 4]) -> (f64, String) {
    let exe = std::env::current_exe().unwrap();
    let out = std::env::temp_dir().join(format!("lifecycleevh-callgrind.{}", std::process::id()));
    let run = Command::new("valgrind")
        .args(["--tool=callgrind", "--collect-atstart=no"])
        .arg(format!("--toggle-collect={toggle}"))
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .arg("--calls")
        .args(args)
        .output()
        .expect("valgrind (make deps installs it)");
    let _ = std::fs::remove_file(&out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "callgrind run failed: {err}");
    let collected: f64 = err
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no callgrind total in: {err}"));
    let counters = err
        .lines()
        .find_map(|l| l.strip_prefix("calls-only events: "))
        .unwrap_or("")
        .to_string();
    (collected / args[3].parse::<f64>().unwrap(), counters)
}

fn instruction_rows() -> String {
    const N: &str = "100000";
    let mut rows = Vec::new();
    for (who, toggle, capacity, ty, name) in [
        (
            "lifecycleevh",
            "*entry::incoming_event",
            "1000000",
            "32",
            "lifecycleevh, below capacity (media events)",
        ),
        (
            "lifecycleevh",
            "*entry::incoming_event",
            "64",
            "32",
            "lifecycleevh, at capacity 64: media events, dropped",
        ),
        (
            "lifecycleevh",
            "*entry::incoming_event",
            "64",
            "1",
            "lifecycleevh, at capacity 64: session events, queued",
        ),
        (
            "sampleevh",
            "baseline_incoming_event",
            "0",
            "32",
            "sampleevh's incref-and-push, consumer keeping up",
        ),
        (
            "sampleevh",
            "baseline_incoming_event",
            "1",
            "32",
            "sampleevh's incref-and-push, flood",
        ),
    ] {
        let (per_call, counters) = callgrind(toggle, [who, capacity, ty, N]);
        let note = serde_json::from_str::<serde_json::Value>(&counters)
            .ok()
            .map(|e| format!("{} of {} dropped", e["dropped"], e["received"]))
            .unwrap_or_else(|| "never drops".into());
        rows.push(format!("| {name} | {per_call:.1} | {note} |"));
    }
    format!(
        "Instructions per `incoming_event` call (callgrind, {N} calls each, inclusive of everything the call runs)\n\n| scenario | instructions | notes |\n| --- | --- | --- |\n{}\n",
        rows.join("\n")
    )
}

/// The process's peak resident memory (VmHWM, KiB).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (ns) of this process's threads named `name`, from the kernel's
/// schedstat: what they ran, whatever else the machine ran meanwhile.
fn thread_cpu_ns(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// What [`drain`] measured.
struct Drain {
    /// Media events per second of wall time, from the first push until
    /// the worker processed the last.
    wall: f64,
    /// Media events per second of the worker thread's own CPU time (on a
    /// busy shared machine the wall rate measures the neighbours too).
    per_worker_cpu: f64,
}

/// The worker's throughput (media events/s): media events into a queue
/// that never fills, for 500 live sessions with a handle each (so that
/// every event is joined into its session's quality record, as in a real
/// call), with the file sink.
fn drain(plugin: &Plugin, media: &[Json]) -> Drain {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 1 << 20);
    assert_eq!(plugin.init(dir.path()), 0);
    for k in 0..500u64 {
        plugin.event(&Json::parse(&format!(
            r#"{{"emitter":"B","type":1,"timestamp":1,"session_id":{},"event":{{"name":"created"}}}}"#,
            1000 + k
        )));
        plugin.event(&Json::parse(&format!(
            r#"{{"emitter":"B","type":2,"timestamp":1,"session_id":{},"handle_id":{},"event":{{"name":"attached","plugin":"janus.plugin.echotest"}}}}"#,
            1000 + k,
            2000 + k
        )));
    }
    let setup = 1000u64;
    while plugin.info()["events"]["processed"].as_u64().unwrap() < setup {
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = 200_000u64;
    let cpu0 = thread_cpu_ns("lcevh worker");
    let t0 = Instant::now();
    for k in 0..n as usize {
        plugin.event_raw(media[k % media.len()].0);
    }
    while plugin.info()["events"]["processed"].as_u64().unwrap() < setup + n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = n as f64 / t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_ns("lcevh worker").saturating_sub(cpu0).max(1);
    plugin.destroy();
    Drain {
        wall,
        per_worker_cpu: n as f64 / (cpu as f64 / 1e9),
    }
}

/// Events offered at 10x the worker's throughput, 1 in 20 a lifecycle event
/// (a session `created` or `destroyed`), the rest media stats events.
fn overload(plugin: &Plugin) -> String {
    let media = event_pool();
    let measured = drain(plugin, &media);
    let drain_rate = measured.wall;
    let mut rows = Vec::new();
    for capacity in [64usize, 65_536] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        config(dir.path(), capacity);
        assert_eq!(plugin.init(dir.path()), 0);
        let lifecycle: Vec<Json> = (0..40_000u64)
            .map(|i| {
                let name = if i % 2 == 0 { "created" } else { "destroyed" };
                Json::parse(&format!(
                    r#"{{"emitter":"B","type":1,"timestamp":{i},"session_id":{},"event":{{"name":"{name}"}}}}"#,
                    7_000_000 + i / 2
                ))
            })
            .collect();
        let rate = 10.0 * drain_rate;
        let hwm0 = vm_hwm_kib();
        let t0 = Instant::now();
        let (mut offered, mut kept) = (0u64, 0usize);
        // 2 s at `rate`, in steps of 100 events.
        while kept < lifecycle.len() && t0.elapsed() < Duration::from_secs(2) {
            let due = (t0.elapsed().as_secs_f64() * rate) as u64;
            while offered < due && kept < lifecycle.len() {
                if offered % 20 == 19 {
                    plugin.event(&lifecycle[kept]);
                    kept += 1;
                } else {
                    plugin.event_raw(media[offered as usize % media.len()].0);
                }
                offered += 1;
            }
            std::hint::spin_loop();
        }
        let offered_rate = offered as f64 / t0.elapsed().as_secs_f64();
        let info = plugin.info();
        plugin.destroy();
        let hwm = vm_hwm_kib();
        let text = std::fs::read_to_string(&out).unwrap();
        // Janus's session events (a session left open at destroy gets a
        // synthetic ending too: not counted).
        let in_file = text
            .lines()
            .filter(|l| l.contains("\"type\":1,") && !l.contains("\"synthetic\":true"))
            .count();
        assert_eq!(
            in_file, kept,
            "every lifecycle event offered reached the file"
        );
        let ev = &info["events"];
        assert_eq!(ev["dropped_lifecycle"], 0);
        assert_eq!(ev["dropped_by_type"]["media"], ev["dropped"]);
        let ch = &info["channel"];
        rows.push(format!(
            "| {capacity} | {:.0} k/s ({:.1}x) | {offered} | {} ({:.0} %) | 0 of {kept} | {} | {:.0} KiB | {} KiB |",
            offered_rate / 1e3,
            offered_rate / drain_rate,
            ev["dropped"],
            100.0 * ev["dropped"].as_f64().unwrap() / offered as f64,
            ch["peak_depth"],
            ch["peak_buffer_bytes"].as_f64().unwrap() / 1024.0,
            hwm.saturating_sub(hwm0),
        ));
        drop(lifecycle);
    }
    format!(
        "Overload: events offered at 10x the worker's throughput for 2 s (worker alone: {:.0} k media events/s with the file sink, 500 live sessions; {:.0} k per second of the worker thread's CPU), 1 in 20 a session event\n\n| channel_capacity | offered at | offered | dropped (all media) | lifecycle dropped | peak depth | queue's peak buffers | process VmHWM growth |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n{}\n",
        drain_rate / 1e3,
        measured.per_worker_cpu / 1e3,
        rows.join("\n")
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("hot_path: bench");
        return;
    }
    // The FFI harness's watchdog aborts a process whose handler hangs; this
    // whole run (callgrind included) takes minutes, hanging or not.
    // SAFETY (bench): no other thread runs yet.
    unsafe { std::env::set_var("FFI_WATCHDOG_SECS", "3600") };
    if let Some(i) = args.iter().position(|a| a == "--calls") {
        return calls_only(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--drain") {
        // `--drain RUNS`: the worker's throughput alone, RUNS times.
        let plugin = Plugin::load();
        let media = event_pool();
        for _ in 0..args[i + 1].parse::<usize>().unwrap() {
            let d = drain(&plugin, &media);
            println!(
                "drain: {:.0} media events/s, {:.0} per second of worker CPU",
                d.wall, d.per_worker_cpu
            );
        }
        return;
    }
    let per_ns = calibrate();
    let overhead = overhead();
    let pool = event_pool();
    let mut rows = Vec::new();

    let plugin = Plugin::load();
    for (paced, capacity, name) in [
        (true, 65_536, "lifecycleevh, worker keeping up"),
        (false, 64, "lifecycleevh, channel full (capacity 64, flood)"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), capacity);
        assert_eq!(plugin.init(dir.path()), 0);
        let samples = measure(&pool, paced, |e| plugin.event_raw(e));
        let info = plugin.info();
        plugin.destroy();
        let received = info["events"]["received"].as_u64().unwrap();
        let dropped = info["events"]["dropped"].as_u64().unwrap();
        rows.push(row(
            name,
            &stats(samples, per_ns, overhead),
            &format!("{dropped} of {received} dropped"),
        ));
    }
    let overload_table = overload(&plugin);
    drop(plugin);

    let (start, event, stop) = baseline();
    for (paced, name) in [
        (true, "sampleevh baseline, consumer keeping up"),
        (false, "sampleevh baseline, flood (queue grows)"),
    ] {
        start();
        let samples = measure(&pool, paced, |e| event(e));
        stop();
        rows.push(row(name, &stats(samples, per_ns, overhead), "never drops"));
    }
    assert!(
        pool.iter().all(|e| e.refcount() == 1),
        "references balanced"
    );

    let table = format!(
        "Hot path: one `incoming_event` call, {CALLS} calls each, ns (TSC {per_ns:.3} ticks/ns, timing overhead {overhead} ticks subtracted)\n\n\
         | scenario | p50 | p99 | p99.9 | max | mean | notes |\n| --- | --- | --- | --- | --- | --- | --- |\n{}\n",
        rows.join("\n")
    );
    let table = format!("{table}\n{}\n{overload_table}", instruction_rows());
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-hot_path.md");
    std::fs::write(out, table).unwrap();
}
