//! Hot path: the cost of one `incoming_event` call through the real C ABI
//! (the release `.so`, loaded with dlopen, called through its table as Janus
//! does), per call, in TSC cycles converted to ns: with the worker keeping up,
//! and with the channel full. In the same run, the baseline of what Janus's
//! sampleevh does on that thread: `json_incref` and a push onto a
//! mutex-protected GLib async queue (benches/baseline.c).
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("hot_path: bench");
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
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-hot_path.md");
    std::fs::write(out, table).unwrap();
}
