//! Admin API request validation: any JSON (or none).
#![no_main]

use janus_lifecycleevh::admin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = serde_json::from_slice::<serde_json::Value>(data).ok();
    if let Err((code, message)) = admin::parse(value.as_ref()) {
        assert!((411..=414).contains(&code), "{code}");
        assert!(!message.is_empty());
    }
});
