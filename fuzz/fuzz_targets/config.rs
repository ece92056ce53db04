//! The config parser (jcfg syntax and every key's validation): any text.
#![no_main]

use std::path::Path;

use janus_lifecycleevh::config::{Config, jcfg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = jcfg::parse(&text);
    if let Err(e) = Config::parse(Path::new("fuzz.jcfg"), &text) {
        // Every error names the file.
        assert!(e.to_string().starts_with("fuzz.jcfg"));
    }
});
