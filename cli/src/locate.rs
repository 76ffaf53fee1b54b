//! Finding the files zreap ships with: the preload shim and libzreap.

use std::path::{Path, PathBuf};

/// The shim's file name (the stub LD_PRELOAD names).
pub const SHIM: &str = "libzreap_preload.so";
/// The shim's core, which the stub loads from its own directory.
pub const SHIM_CORE: &str = "libzreap_preload_core.so";

/// Directories searched, in order: the binary's own directory (a cargo target
/// directory: `target/debug/`), then `../lib/zreap` and `../lib` relative to
/// it (an install prefix: `make install` puts the shim in `$(LIBDIR)/zreap/`).
pub fn search_dirs() -> Vec<PathBuf> {
    std::env::current_exe().ok().and_then(|exe| exe.parent().map(dirs_beside)).unwrap_or_default()
}

/// [`search_dirs`] for a binary in `dir`.
fn dirs_beside(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(prefix) = dir.parent() {
        dirs.push(prefix.join("lib/zreap"));
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

/// The preload shim, by absolute path; its core must be beside it.
pub fn shim() -> Result<PathBuf, String> {
    let stub = find(SHIM)?;
    let core = stub.with_file_name(SHIM_CORE);
    if core.is_file() {
        Ok(stub)
    } else {
        Err(format!(
            "{SHIM_CORE} is not beside {}; build it with `cargo build --workspace` or install it there",
            stub.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_binary_looks_in_lib_zreap_then_lib() {
        let dirs = dirs_beside(Path::new("/usr/local/bin"));
        assert_eq!(dirs, [Path::new("/usr/local/bin"), Path::new("/usr/local/lib/zreap"), Path::new("/usr/local/lib")]);
    }
}
