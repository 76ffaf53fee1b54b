//! Builds the stub, `libzreap_preload.so` (preload/stub/, C): the object
//! LD_PRELOAD loads into every process, which loads this crate's cdylib, the
//! core, only when a program needs it (see zreap_preload.c). Rust's runtime
//! costs a process 25 k instructions to load, the stub almost nothing.
//!
//! Link settings for the core, which a process loads when it needs the shim
//! (its first SIGCHLD handler, `popen` or `system`; its first child with
//! ZREAP_REAP=all): what the loader does for it is most of what loading costs.
//!
//! The unwinder (libgcc_eh) is linked into the core instead of loading
//! libgcc_s.so: one library fewer to map and relocate, and no libgcc_s
//! constructor (it runs CPUID, which traps to the hypervisor in a VM).
//! Listed as the crate's own native library, it comes ahead of std's
//! `-lgcc_s` on the link line, so the linker takes the unwinder from it and
//! `--as-needed` drops libgcc_s.
//!
//! The core's imports are bound when it loads (rustc's `-z now`, full
//! RELRO): the reaper's bare thread (zreap's src/sys/bare.rs) and the SIGCHLD handler
//! must never enter the dynamic linker's lazy resolver.

use std::path::Path;

/// Compiles the stub into OUT_DIR and puts it in the profile directory
/// (`target/<profile>/`, OUT_DIR's third parent) and its `deps/`, next to
/// each copy of the core (tests look in `deps/`): cargo has no way to name a
/// build script's output as an artifact of its own.
fn build_stub(out: &Path) {
    // cc's compiler lookup prints rerun-if-env-changed lines, after which cargo
    // reruns this script only for what is named.
    println!("cargo:rerun-if-changed=stub");
    println!("cargo:rerun-if-changed=build.rs");
    let stub = out.join("libzreap_preload.so");
    let mut cmd = cc::Build::new().get_compiler().to_command();
    cmd.args(["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden"])
        .args(["-Wl,-soname,libzreap_preload.so", "-Wl,-z,lazy", "-Wl,--as-needed", "-o"])
        .arg(&stub)
        .arg("stub/zreap_preload.c");
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run the C compiler ({cmd:?}): {e}"));
    assert!(status.success(), "building the stub failed: {cmd:?}");
    let profile_dir = out.ancestors().nth(3).expect("OUT_DIR is target/<profile>/build/<pkg>/out");
    for dir in [profile_dir.to_path_buf(), profile_dir.join("deps")] {
        std::fs::create_dir_all(&dir).expect("create the profile directory");
        // A new file renamed into place: a running process may have the old
        // one mapped, and a hard link (cargo's) may share its inode.
        let partial = dir.join(".libzreap_preload.so.partial");
        std::fs::copy(&stub, &partial).expect("copy the stub next to the core");
        std::fs::rename(&partial, dir.join("libzreap_preload.so")).expect("put the stub next to the core");
    }
}

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    if target.contains("linux") {
        build_stub(Path::new(&out));
    }
    if target.contains("linux-gnu") {
        // No libgcc_s.so (above): 17 k instructions per load.
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
