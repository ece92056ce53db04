//! Build script: the FFI layer's C parts.
//!
//! - bindgen turns `janus-headers/janus_eventhandler.h` (this project's own
//!   description of the Janus event-handler ABI) and `src/ffi/shim.h` into Rust;
//! - cc compiles `src/ffi/shim.c` (jansson's inline refcounting, Janus's logger
//!   and event bus looked up at run time);
//! - the cdylib is linked `-z nodelete`, so that a `dlclose` by the host never
//!   unmaps code a thread of ours might still be running.

use std::env;
use std::path::PathBuf;

fn main() {
    let abi_header = "janus-headers/janus_eventhandler.h";
    let shim_header = "src/ffi/shim.h";
    let shim_source = "src/ffi/shim.c";
    for path in [abi_header, shim_header, shim_source] {
        println!("cargo:rerun-if-changed={path}");
    }

    let bindings = bindgen::Builder::default()
        .header(abi_header)
        .header(shim_header)
        .allowlist_type("janus_eventhandler")
        .allowlist_type("create_e")
        .allowlist_var("JANUS_.*")
        .allowlist_var("LCEVH_.*")
        .allowlist_function("lcevh_.*")
        .allowlist_type("json_t")
        .opaque_type("json_t")
        .rust_edition(bindgen::RustEdition::Edition2024)
        .rust_target(bindgen::RustTarget::stable(85, 0).expect("known Rust target"))
        .layout_tests(true)
        .generate()
        .expect("bindgen could not process janus-headers/janus_eventhandler.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("janus_bindings.rs"))
        .expect("writing the generated bindings");

    cc::Build::new()
        .file(shim_source)
        .warnings(true)
        .extra_warnings(true)
        .compile("lifecycleevh_shim");

    println!("cargo:rustc-link-lib=dylib=jansson");
    println!("cargo:rustc-link-lib=dylib=dl");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
