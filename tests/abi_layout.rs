//! The project's own ABI header (janus-headers/janus_eventhandler.h) must
//! describe exactly what the installed Janus (janus-dev's
//! <janus/events/eventhandler.h>) expects: same struct size, same offset and
//! size of every field, same constants. A probe is compiled against each
//! header and their outputs compared.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIELDS: [&str; 12] = [
    "init",
    "destroy",
    "get_api_compatibility",
    "get_version",
    "get_version_string",
    "get_description",
    "get_name",
    "get_author",
    "get_package",
    "incoming_event",
    "handle_request",
    "events_mask",
];

const CONSTANTS: [&str; 23] = [
    "JANUS_EVENTHANDLER_API_VERSION",
    "JANUS_EVENT_TYPE_NONE",
    "JANUS_EVENT_TYPE_SESSION",
    "JANUS_EVENT_TYPE_HANDLE",
    "JANUS_EVENT_TYPE_EXTERNAL",
    "JANUS_EVENT_TYPE_JSEP",
    "JANUS_EVENT_TYPE_WEBRTC",
    "JANUS_EVENT_TYPE_MEDIA",
    "JANUS_EVENT_TYPE_PLUGIN",
    "JANUS_EVENT_TYPE_TRANSPORT",
    "JANUS_EVENT_TYPE_CORE",
    "JANUS_EVENT_TYPE_ALL",
    "JANUS_EVENT_SUBTYPE_NONE",
    "JANUS_EVENT_SUBTYPE_CORE_STARTUP",
    "JANUS_EVENT_SUBTYPE_CORE_SHUTDOWN",
    "JANUS_EVENT_SUBTYPE_WEBRTC_ICE",
    "JANUS_EVENT_SUBTYPE_WEBRTC_LCAND",
    "JANUS_EVENT_SUBTYPE_WEBRTC_RCAND",
    "JANUS_EVENT_SUBTYPE_WEBRTC_PAIR",
    "JANUS_EVENT_SUBTYPE_WEBRTC_DTLS",
    "JANUS_EVENT_SUBTYPE_WEBRTC_STATE",
    "JANUS_EVENT_SUBTYPE_MEDIA_STATE",
    "JANUS_EVENT_SUBTYPE_MEDIA_SLOWLINK",
];

fn probe_source(include: &str) -> String {
    let mut s = format!(
        "#include {include}\n#include <stdio.h>\n#include <stddef.h>\n\
         #define FIELD(f) printf(\"field %s offset %zu size %zu\\n\", #f, \
         offsetof(janus_eventhandler, f), sizeof(((janus_eventhandler *)0)->f))\n\
         #define CONST(c) printf(\"const %s %lld\\n\", #c, (long long)(c))\n\
         int main(void) {{\n\
         printf(\"sizeof janus_eventhandler %zu align %zu\\n\", sizeof(janus_eventhandler), _Alignof(janus_eventhandler));\n\
         printf(\"sizeof create_e* %zu\\n\", sizeof(create_e *));\n"
    );
    for f in FIELDS {
        s += &format!("FIELD({f});\n");
    }
    for c in CONSTANTS {
        s += &format!("CONST({c});\n");
    }
    s += "CONST(JANUS_EVENT_SUBTYPE_MEDIA_STATS);\nreturn 0;\n}\n";
    s
}

fn pkg_config_cflags(packages: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .arg("--cflags")
        .args(packages)
        .output()
        .expect("pkg-config is installed (make deps)");
    assert!(
        out.status.success(),
        "pkg-config --cflags {packages:?} failed"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn run_probe(dir: &Path, name: &str, include: &str, cflags: &[String]) -> String {
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, probe_source(include)).unwrap();
    let out = Command::new("cc")
        .args(cflags)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("a C compiler");
    assert!(
        out.status.success(),
        "compiling the {name} probe failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn own_header_matches_installed_janus_headers() {
    let janus_header = Path::new("/usr/include/janus/events/eventhandler.h");
    assert!(
        janus_header.exists(),
        "{} missing: install janus-dev (make deps)",
        janus_header.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("janus-headers/janus_eventhandler.h");
    let mine = run_probe(dir.path(), "ours", &format!("\"{}\"", ours.display()), &[]);
    let theirs = run_probe(
        dir.path(),
        "janus",
        "<janus/events/eventhandler.h>",
        &pkg_config_cflags(&["glib-2.0", "jansson"]),
    );
    assert_eq!(mine.lines().count(), 2 + FIELDS.len() + CONSTANTS.len() + 1);
    for (a, b) in mine.lines().zip(theirs.lines()) {
        assert_eq!(a, b, "our ABI header differs from janus-dev's");
    }
    assert_eq!(mine, theirs);
}

/// The event types the pure code uses (`janus::types`, plain Rust) are the
/// numbers bindgen read from the ABI header (checked above against
/// janus-dev's).
#[test]
fn rust_event_types_match_the_abi_header() {
    use janus_lifecycleevh::ffi::sys;
    use janus_lifecycleevh::janus::{EventType, types};
    let pairs = [
        (types::SESSION, sys::JANUS_EVENT_TYPE_SESSION),
        (types::HANDLE, sys::JANUS_EVENT_TYPE_HANDLE),
        (types::EXTERNAL, sys::JANUS_EVENT_TYPE_EXTERNAL),
        (types::JSEP, sys::JANUS_EVENT_TYPE_JSEP),
        (types::WEBRTC, sys::JANUS_EVENT_TYPE_WEBRTC),
        (types::MEDIA, sys::JANUS_EVENT_TYPE_MEDIA),
        (types::PLUGIN, sys::JANUS_EVENT_TYPE_PLUGIN),
        (types::TRANSPORT, sys::JANUS_EVENT_TYPE_TRANSPORT),
        (types::CORE, sys::JANUS_EVENT_TYPE_CORE),
        (types::ALL, sys::JANUS_EVENT_TYPE_ALL),
        (
            types::SUBTYPE_CORE_STARTUP,
            sys::JANUS_EVENT_SUBTYPE_CORE_STARTUP,
        ),
        (
            types::SUBTYPE_CORE_SHUTDOWN,
            sys::JANUS_EVENT_SUBTYPE_CORE_SHUTDOWN,
        ),
    ];
    for (rust, header) in pairs {
        assert_eq!(rust, header);
    }
    assert_eq!(
        types::API_VERSION,
        sys::JANUS_EVENTHANDLER_API_VERSION as i32
    );
    let all_bits = EventType::ALL.iter().fold(0, |m, t| m | t.bit());
    assert_eq!(all_bits, 0x1ff, "nine types, one bit each");
}
