//! The state and start time of a process from `/proc/PID/stat`: with the
//! pid, the identity of a process that has no pidfd. Async-signal-safe.

use libc::{c_int, pid_t};

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (a zombie), ...
    pub state: u8,
    /// Field 22, in clock ticks since boot: it tells apart two processes
    /// that had the same pid more than a tick apart.
    pub start_time: u64,
}

/// The state and start time of process `pid`. Works on zombies. Err(errno)
/// when the file cannot be opened or read (`ENOENT` once the process is gone,
/// `EMFILE` when the fd table is full), `EINVAL` when it cannot be parsed.
///
/// Async-signal-safe: open, read and close into stack buffers; no allocation
/// and no errno written.
pub fn proc_stat(pid: pid_t) -> Result<ProcStat, c_int> {
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let pid = u64::try_from(pid).map_err(|_| libc::EINVAL)?;
    let mut len = prefix.len() + write_decimal(&mut path[prefix.len()..], pid);
    path[len..len + 5].copy_from_slice(b"/stat");
    len += 5;
    path[len] = 0;
    let path = std::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| libc::EINVAL)?;
    let mut buf = [0u8; 2048];
    let n = read_head(path, &mut buf)?;
    parse_stat(&buf[..n]).ok_or(libc::EINVAL)
}

/// Reads the start of the file at `path` (one read, at most `buf.len()`
/// bytes) into `buf`; returns how many bytes. Err(errno) when it cannot be
/// opened or read. Async-signal-safe: open, read and close; no errno written.
pub fn read_head(path: &std::ffi::CStr, buf: &mut [u8]) -> Result<usize, c_int> {
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    let open_args = [libc::AT_FDCWD as usize, path.as_ptr() as usize, flags, 0, 0, 0];
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { super::bare::syscall6(libc::SYS_openat, open_args) }? as c_int;
    let n = super::bare::read(fd, buf);
    super::close(fd);
    n
}

/// The start time of process `pid`: [`proc_stat`]'s, with its errors.
/// Async-signal-safe.
pub fn proc_start_time(pid: pid_t) -> Result<u64, c_int> {
    proc_stat(pid).map(|stat| stat.start_time)
}

/// Fields 3 (state) and 22 (starttime) of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after the last ')'.
pub fn parse_stat(stat: &[u8]) -> Option<ProcStat> {
    let close_paren = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close_paren + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let field = fields.nth(18)?;
    let start_time = field.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))).flatten()
    })?;
    Some(ProcStat { state, start_time })
}

/// Writes `n` in decimal at the start of `out`; returns the length.
/// Async-signal-safe. `out` must hold 20 bytes.
fn write_decimal(out: &mut [u8], mut n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_field_3_and_start_time_field_22_after_the_last_paren() {
        let line = b"42 (a) b) (c) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n";
        assert_eq!(parse_stat(line), Some(ProcStat { state: b'Z', start_time: 987654 }));
        assert_eq!(parse_stat(b"42 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"no paren"), None);
    }

    #[test]
    fn start_time_of_this_process_is_stable_and_of_a_gone_pid_none() {
        let me = proc_start_time(std::process::id() as pid_t).unwrap();
        assert_eq!(proc_start_time(std::process::id() as pid_t), Ok(me));
        assert_eq!(proc_start_time(i32::MAX), Err(libc::ENOENT));
    }

    #[test]
    fn an_exited_unreaped_child_reads_as_a_zombie() {
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0);
        let zombie = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            proc_stat(pid).is_ok_and(|stat| stat.state == b'Z')
        });
        // SAFETY: reaps the child made above.
        assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) }, pid);
        assert!(zombie);
    }
}
