//! Drives the built `libjanus_lifecycleevh.so` over the C ABI without Janus:
//! `dlopen`, the `janus_eventhandler` table, and real jansson values whose
//! reference counts can be read. Shared by tests/ffi_harness.rs and the
//! hot-path benchmark.
#![allow(dead_code)]

use std::ffi::{CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use janus_lifecycleevh::ffi::sys::{janus_eventhandler, json_t};
use serde_json::{Value, json};

#[link(name = "jansson")]
unsafe extern "C" {
    fn json_loads(input: *const c_char, flags: usize, error: *mut c_void) -> *mut json_t;
    fn json_dumps(json: *const json_t, flags: usize) -> *mut c_char;
    fn json_delete(json: *mut json_t);
}

/// The library is loaded once per process and holds one handler: tests take
/// turns.
static TURN: Mutex<()> = Mutex::new(());

pub fn so_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let so = dir.join("libjanus_lifecycleevh.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

/// Aborts the whole test binary if a test hangs: a blocking incoming_event
/// would otherwise hang CI instead of failing.
fn watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::spawn(|| {
            // Longer under valgrind (make valgrind sets it).
            let secs = std::env::var("FFI_WATCHDOG_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(240);
            std::thread::sleep(Duration::from_secs(secs));
            eprintln!("ffi_harness: a test hung for {secs} s (blocked in the handler?)");
            std::process::abort();
        });
    });
}

pub struct Plugin {
    table: &'static janus_eventhandler,
    _turn: MutexGuard<'static, ()>,
}

impl Plugin {
    pub fn load() -> Plugin {
        watchdog();
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let path = CString::new(so_path().to_str().unwrap()).unwrap();
        // SAFETY (test): plain dlopen/dlsym of our own library; `create` has the
        // create_e signature.
        let table = unsafe {
            let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!lib.is_null(), "dlopen failed");
            let create = libc::dlsym(lib, c"create".as_ptr());
            assert!(!create.is_null(), "no create symbol");
            let create: extern "C" fn() -> *mut janus_eventhandler = std::mem::transmute(create);
            &*create()
        };
        Plugin { table, _turn: turn }
    }

    pub fn init(&self, dir: &Path) -> i32 {
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        unsafe { (self.table.init.unwrap())(path.as_ptr()) }
    }

    pub fn events_mask(&self) -> u64 {
        let field = &self.table.events_mask as *const _ as *mut u64;
        unsafe { std::sync::atomic::AtomicU64::from_ptr(field) }.load(Ordering::SeqCst)
    }

    pub fn event(&self, json: &Json) {
        self.event_raw(json.0)
    }

    /// incoming_event with a pointer the caller keeps alive.
    pub fn event_raw(&self, json: *mut json_t) {
        unsafe { (self.table.incoming_event.unwrap())(json) }
    }

    pub fn request(&self, request: &Value) -> Value {
        let req = Json::parse(&request.to_string());
        let answer = unsafe { (self.table.handle_request.unwrap())(req.0) };
        assert!(!answer.is_null(), "handle_request returned NULL");
        // The answer is ours to release, as Janus does.
        let answer = Json(answer);
        assert_eq!(answer.refcount(), 1);
        serde_json::from_str(&answer.dump()).unwrap()
    }

    pub fn request_null(&self) -> Value {
        let answer = Json(unsafe { (self.table.handle_request.unwrap())(std::ptr::null_mut()) });
        serde_json::from_str(&answer.dump()).unwrap()
    }

    pub fn info(&self) -> Value {
        self.request(&json!({"request": "info"}))
    }

    pub fn destroy(&self) {
        unsafe { (self.table.destroy.unwrap())() }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Leave the library idle for the next test, whatever happened.
        self.request(&json!({"request": "fault", "in": "release"}));
        self.destroy();
    }
}

/// A jansson value we hold one reference to.
pub struct Json(pub *mut json_t);

impl Json {
    pub fn parse(text: &str) -> Json {
        let c = CString::new(text).unwrap();
        let mut error = [0u8; 512];
        // JSON_DECODE_ANY: scalars too, to feed the handler odd events.
        let ptr = unsafe { json_loads(c.as_ptr(), 0x4, error.as_mut_ptr().cast()) };
        assert!(!ptr.is_null(), "jansson could not parse {text}");
        Json(ptr)
    }

    pub fn refcount_cell(&self) -> &AtomicUsize {
        // jansson: struct json_t { json_type type; volatile size_t refcount; }
        unsafe { AtomicUsize::from_ptr((self.0 as *mut u8).add(8).cast()) }
    }

    pub fn refcount(&self) -> usize {
        self.refcount_cell().load(Ordering::SeqCst)
    }

    pub fn dump(&self) -> String {
        unsafe {
            let p = json_dumps(self.0, 0);
            let s = std::ffi::CStr::from_ptr(p).to_str().unwrap().to_string();
            libc::free(p.cast());
            s
        }
    }
}

impl Drop for Json {
    fn drop(&mut self) {
        if self.refcount_cell().fetch_sub(1, Ordering::SeqCst) == 1 {
            unsafe { json_delete(self.0) }
        }
    }
}
