//! Admin API request validation: any JSON (or none).
#![no_main]

use janus_lifecycleevh::admin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = serde_json::from_slice::<serde_json::Value>(data).ok();
    if let Err(e) = admin::parse(value.as_ref()) {
        assert!((411..=413).contains(&e.code()), "{e:?}");
        assert!(!e.to_string().is_empty());
        assert_eq!(e.answer()["error_code"], e.code());
    }
});
