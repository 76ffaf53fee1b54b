//! Generates the C header `include/zreap.h` from `src/ffi.rs` with cbindgen.
//!
//! The header is checked in. With `CI` set in the environment, build.rs does
//! not touch the checked-in copy; it writes the fresh one to
//! `$OUT_DIR/zreap.h` only, and the `header_is_current` test fails when the
//! two differ.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("zreap.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");

    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings =
        cbindgen::Builder::new().with_crate(&root).with_config(config).generate().expect("generate include/zreap.h");
    bindings.write_to_file(&out);
    println!("cargo:rustc-env=ZREAP_GENERATED_HEADER={}", out.display());
    if std::env::var_os("CI").is_none() {
        bindings.write_to_file(root.join("include/zreap.h"));
    }
}
