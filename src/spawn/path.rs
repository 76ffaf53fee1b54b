//! The `$PATH` search of `execvp`, done in the parent before the clone so the
//! child only tries the candidates.

use std::ffi::{CStr, CString};

/// The places `execvp` would try for `name`: each `$PATH` entry (default
/// "/bin:/usr/bin"; an empty entry is the current directory) joined with it.
pub(super) fn path_candidates(name: &[u8]) -> Vec<CString> {
    // SAFETY: getenv reads the environment without Rust's env lock, which a
    // forked child could have inherited held.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let path: &[u8] = if path.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: getenv returned a valid C string.
        unsafe { CStr::from_ptr(path) }.to_bytes()
    };
    candidates_in(path, name)
}

/// The candidates for `name` along the `$PATH` value `path`.
fn candidates_in(path: &[u8], name: &[u8]) -> Vec<CString> {
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let mut full = if dir.is_empty() { b".".to_vec() } else { dir.to_vec() };
            full.push(b'/');
            full.extend_from_slice(name);
            CString::new(full).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_path_and_an_empty_entry_is_the_current_directory() {
        let found = candidates_in(b"/a::/b", b"prog");
        assert_eq!(found, [c"/a/prog".to_owned(), c"./prog".to_owned(), c"/b/prog".to_owned()]);
    }
}
