//! Builds the stub, `libzreap_preload.so` (preload/stub/, C): the object
//! LD_PRELOAD loads into every process, which loads this crate's cdylib, the
//! core, only when a program needs it (see zreap_preload.c). Rust's runtime
//! costs a process 25 k instructions to load, the stub almost nothing.
//!
//! Link settings for the core, which a process loads when it needs the shim
//! (its first SIGCHLD handler, `popen` or `system`; its first child with
//! ZREAP_REAP=all): what the loader does for it is most of what loading costs.
//!
//! 1. The unwinder (libgcc_eh) is linked into the shim instead of loading
//!    libgcc_s.so: one library fewer to map and relocate, and no libgcc_s
//!    constructor (it runs CPUID, which traps to the hypervisor in a VM) per
//!    exec. Listed as the crate's own native library, it comes ahead of std's
//!    `-lgcc_s` on the link line, so the linker takes the unwinder from it
//!    and `--as-needed` drops libgcc_s.
//! 2. Lazy binding of the libc functions the shim and std import. Rust
//!    links with `-z now` and calls imported functions through the GOT, so
//!    ld.so looked up all ~70 of them at every exec (each a hash walk through
//!    the program, the shim and libc, ~900 instructions): most of the shim's
//!    cost per process start. `--wrap=NAME` sends each call to NAME to a
//!    two-instruction trampoline `__wrap_NAME: jmp NAME@PLT` (lib.rs,
//!    generated here), and `-z lazy` leaves PLT slots unbound until their
//!    first call: a process resolves only the functions it runs.

use std::fmt::Write as _;
use std::path::Path;

/// The libc functions called through a lazily bound PLT slot: every
/// function the cdylib imports (`readelf --dyn-syms`) but those already
/// called through the PLT. A function not listed is still bound, at load.
/// Four are weak imports whose address std or the unwinder test for NULL
/// (a trampoline never is): glibc has them all since 2.34, and the cdylib
/// needs 2.35 (`readelf -V`).
const LAZY: &[&str] = &[
    "__cxa_thread_atexit_impl",
    "__errno_location",
    "__libc_current_sigrtmax",
    "__libc_current_sigrtmin",
    "__pthread_key_create",
    "__xpg_strerror_r",
    "abort",
    "access",
    "bcmp",
    "calloc",
    "close",
    "dl_iterate_phdr",
    "dlsym",
    "fclose",
    "fcntl",
    "fdopen",
    "free",
    "fstat64",
    "getcwd",
    "getenv",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "gettid",
    "kill",
    "lseek64",
    "malloc",
    "memcpy",
    "memmove",
    "memset",
    "mmap64",
    "munmap",
    "open",
    "open64",
    "pipe2",
    "posix_memalign",
    "posix_spawn_file_actions_addclose",
    "posix_spawn_file_actions_adddup2",
    "posix_spawn_file_actions_destroy",
    "posix_spawn_file_actions_init",
    "posix_spawnattr_destroy",
    "posix_spawnattr_init",
    "posix_spawnattr_setflags",
    "posix_spawnattr_setsigdefault",
    "posix_spawnattr_setsigmask",
    "prctl",
    "pthread_attr_destroy",
    "pthread_attr_init",
    "pthread_attr_setdetachstate",
    "pthread_attr_setstacksize",
    "pthread_create",
    "pthread_key_create",
    "pthread_key_delete",
    "pthread_setspecific",
    "pthread_sigmask",
    "read",
    "readlink",
    "realloc",
    "realpath",
    "sched_yield",
    "sigaddset",
    "sigemptyset",
    "sigfillset",
    "sigismember",
    "stat64",
    "statx",
    "strlen",
    "syscall",
    "write",
    "writev",
];

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
    // lib.rs includes this file on every target: empty where nothing is wrapped.
    let mut trampolines = String::new();
    if target.contains("linux-gnu") {
        // No libgcc_s.so per exec (1. above): 17 k instructions per process start.
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
    if target.starts_with("x86_64-") && target.contains("linux-gnu") {
        // Unbound PLT slots until first call (2. above; .got.plt then stays writable,
        // partial RELRO). Overrides rustc's earlier `-z now`. Alone 222 k -> 215 k.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");
        for name in LAZY {
            // Calls to NAME go to the trampoline (2. above): with -z lazy, 52 k fewer
            // instructions per /bin/true start (of 222 k; 137 k with an empty .so).
            println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={name}");
            // Each in its own section, so that --gc-sections drops the unused ones.
            let _ = write!(
                trampolines,
                ".section .text.__wrap_{name},\"ax\",@progbits\n.globl __wrap_{name}\n.hidden __wrap_{name}\n\
                 .type __wrap_{name},@function\n__wrap_{name}:\n\tjmp __real_{name}@PLT\n"
            );
        }
    }
    let source =
        if trampolines.is_empty() { String::new() } else { format!("core::arch::global_asm!({trampolines:?});\n") };
    // Rewritten only when it changes, so that cargo does not rebuild the crate for nothing.
    let path = Path::new(&out).join("lazy_imports.rs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(source.as_str()) {
        std::fs::write(&path, source).expect("write lazy_imports.rs");
    }
}
