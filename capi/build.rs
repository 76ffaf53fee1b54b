//! Links libzreap.so with the soname `libzreap.so.0` and the version script
//! `zreap.map` (node ZREAP_0), and puts a `libzreap.so.0 -> libzreap.so` link
//! next to it in the profile directory and in its `deps/`, so that programs
//! linked against the build tree (`-Ltarget/release -lzreap -Wl,-rpath,...`)
//! find their soname.
//! Writes nothing into the source tree.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let map = manifest.join("zreap.map");
    println!("cargo:rerun-if-changed=zreap.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libzreap.so.0");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", map.display());
    // rustc gives the linker a version script of its own; lld (Rust's default
    // linker on x86_64 Linux) merges a second one, GNU ld refuses it.
    println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");

    // OUT_DIR is <profile>/build/<package>-<hash>/out.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Some(profile) = out.ancestors().nth(3) {
        soname_link(profile);
        soname_link(&profile.join("deps"));
    }
}

/// `<dir>/libzreap.so.0 -> libzreap.so`, unless it is already there.
fn soname_link(dir: &Path) {
    let link = dir.join("libzreap.so.0");
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new("libzreap.so")) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("libzreap.so", &link)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", link.display()));
}
