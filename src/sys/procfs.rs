//! The start time of a process from `/proc/PID/stat`: with the pid, the
//! identity of a process that has no pidfd. Async-signal-safe.

use libc::{c_int, pid_t};

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, in clock
/// ticks since boot), which tells apart two processes that had the same pid
/// more than a tick apart. Works on zombies. Err(errno) when the file cannot
/// be opened or read (`ENOENT` once the process is gone, `EMFILE` when the
/// fd table is full), `EINVAL` when it cannot be parsed.
///
/// Async-signal-safe: open, read and close into stack buffers; no allocation
/// and no errno written.
pub fn proc_start_time(pid: pid_t) -> Result<u64, c_int> {
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let pid = u64::try_from(pid).map_err(|_| libc::EINVAL)?;
    let mut len = prefix.len() + write_decimal(&mut path[prefix.len()..], pid);
    path[len..len + 5].copy_from_slice(b"/stat");
    len += 5;
    path[len] = 0;
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    let open_args = [libc::AT_FDCWD as usize, path.as_ptr() as usize, flags, 0, 0, 0];
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { super::bare::syscall6(libc::SYS_openat, open_args) }? as c_int;
    let mut buf = [0u8; 2048];
    let n = super::bare::read(fd, &mut buf);
    super::close(fd);
    start_time_from_stat(&buf[..n?]).ok_or(libc::EINVAL)
}

/// Field 22 (starttime) of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the last ')'.
pub fn start_time_from_stat(stat: &[u8]) -> Option<u64> {
    let close_paren = stat.iter().rposition(|&b| b == b')')?;
    let field = stat[close_paren + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty()).nth(19)?;
    field.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))).flatten()
    })
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
    fn start_time_is_field_22_after_the_last_paren() {
        let line = b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n";
        assert_eq!(start_time_from_stat(line), Some(987654));
        assert_eq!(start_time_from_stat(b"42 (x) S 1 2"), None);
        assert_eq!(start_time_from_stat(b"no paren"), None);
    }

    #[test]
    fn start_time_of_this_process_is_stable_and_of_a_gone_pid_none() {
        let me = proc_start_time(std::process::id() as pid_t).unwrap();
        assert_eq!(proc_start_time(std::process::id() as pid_t), Ok(me));
        assert_eq!(proc_start_time(i32::MAX), Err(libc::ENOENT));
    }
}
