//! Finding the files zreap ships with: the preload shim and libzreap.

use std::path::PathBuf;

/// The shim's file name.
pub const SHIM: &str = "libzreap_preload.so";

/// Directories searched, in order: the binary's own directory (a cargo target
/// directory: `target/debug/`), then `../lib` relative to it (an install prefix).
pub fn search_dirs() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else { return Vec::new() };
    let Some(dir) = exe.parent() else { return Vec::new() };
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(prefix) = dir.parent() {
        dirs.push(prefix.join("lib"));
    }
    dirs
}

/// The first of `names` found in [`search_dirs`].
pub fn find(name: &str) -> Result<PathBuf, String> {
    let dirs = search_dirs();
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "{name} not found (looked in {}); build it with `cargo build --workspace` or install it there",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The preload shim, by absolute path.
pub fn shim() -> Result<PathBuf, String> {
    find(SHIM)
}
