//! Links the unwinder (libgcc_eh) into the shim instead of loading
//! libgcc_s.so into every process the shim is preloaded into: one library
//! fewer to map and relocate, and no libgcc_s constructor (it runs CPUID,
//! which traps to the hypervisor in a VM) per exec. Listed as the crate's own
//! native library, it comes ahead of std's `-lgcc_s` on the link line, so the
//! linker takes the unwinder from it and `--as-needed` drops libgcc_s.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
