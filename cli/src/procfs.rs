//! Reading /proc. The parsers are pure functions on the text of one file, so
//! they can be tested (and property-tested) without a live process; the
//! readers around them return `None` when a process vanished or a file is
//! unreadable.

use std::fs;
use std::path::Path;

/// SIGCHLD is signal 17 on Linux: bit 16 of the `Sig*` masks.
pub const SIGCHLD_BIT: u64 = 1 << (libc::SIGCHLD - 1);

/// The fields of `/proc/PID/stat` (or `task/TID/stat`) that zreap uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// The command name (`comm`), as the kernel prints it: up to 15 bytes,
    /// may hold spaces, `(` and `)`.
    pub comm: String,
    /// `R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub num_threads: i64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Field 52 (Linux 3.5+): the exit status in `waitpid`'s encoding, set
    /// once the process has exited; `None` on older kernels.
    pub exit_code: Option<i32>,
}

/// Parses one `stat` line. The command name sits between the first `(` and
/// the LAST `)`: it may itself contain `)`, `(` and spaces, so the fields
/// after it are found from the last `)`. Returns `None` on anything malformed,
/// never panics.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(Stat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
        exit_code: field(52).and_then(|f| f.parse().ok()),
    })
}

/// The fields of `/proc/PID/status` that zreap uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub sig_blk: Option<u64>,
    pub sig_ign: Option<u64>,
    pub sig_cgt: Option<u64>,
    pub sig_pnd: Option<u64>,
    pub shd_pnd: Option<u64>,
    pub tracer_pid: Option<i32>,
    /// The pid in each pid namespace the process is in, outermost first.
    pub nspid: Vec<i32>,
    pub threads: Option<i64>,
}

/// Parses `status` text: `Key:\tvalue` lines. Unknown or malformed lines are
/// ignored; never panics.
pub fn parse_status(text: &str) -> Status {
    let mut st = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        let hex = || u64::from_str_radix(value, 16).ok();
        match key {
            "SigBlk" => st.sig_blk = hex(),
            "SigIgn" => st.sig_ign = hex(),
            "SigCgt" => st.sig_cgt = hex(),
            "SigPnd" => st.sig_pnd = hex(),
            "ShdPnd" => st.shd_pnd = hex(),
            "TracerPid" => st.tracer_pid = value.parse().ok(),
            "Threads" => st.threads = value.parse().ok(),
            "NSpid" => st.nspid = value.split_ascii_whitespace().filter_map(|v| v.parse().ok()).collect(),
            _ => {}
        }
    }
    st
}

/// The `sigmask:` of a signalfd's `fdinfo` text (hex), if there is one.
pub fn parse_fdinfo_sigmask(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("sigmask:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Seconds since boot, from `/proc/uptime` text.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok().filter(|v: &f64| v.is_finite())
}

/// Whether `mask` has SIGCHLD.
pub fn has_sigchld(mask: Option<u64>) -> bool {
    mask.is_some_and(|m| m & SIGCHLD_BIT != 0)
}

/// Why a read failed: the process is gone (skip silently) or the file is
/// unreadable (skip with a note).
#[derive(Debug)]
pub enum ReadError {
    Gone,
    Unreadable(String),
}

/// Reads a /proc file as (lossy) text.
pub fn read(path: &Path) -> Result<String, ReadError> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => Err(ReadError::Gone),
        Err(e) => Err(ReadError::Unreadable(format!("{}: {e}", path.display()))),
    }
}

/// `/proc/PID/stat` (or any `stat` path) read and parsed.
pub fn stat_at(path: &Path) -> Result<Stat, ReadError> {
    let text = read(path)?;
    // An empty read is what a just-exited task can give.
    if text.is_empty() {
        return Err(ReadError::Gone);
    }
    parse_stat(&text).ok_or_else(|| ReadError::Unreadable(format!("{}: unparsable: {:?}", path.display(), text)))
}

/// The wchan of a task (`/proc/PID/task/TID/wchan`), `None` when it is `0`,
/// empty or unreadable.
pub fn wchan(path: &Path) -> Option<String> {
    let text = read(path).ok()?;
    let w = text.trim();
    (!w.is_empty() && w != "0").then(|| w.to_string())
}

/// The command line, arguments joined by spaces (empty for zombies and kernel threads).
pub fn cmdline(pid: i32) -> String {
    read(Path::new(&format!("/proc/{pid}/cmdline")))
        .map(|t| t.trim_end_matches('\0').replace('\0', " "))
        .unwrap_or_default()
}

/// Every numeric entry of a /proc directory (`/proc` or `/proc/PID/task`).
pub fn numeric_entries(dir: &Path) -> Vec<i32> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<i32> = rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    v.sort_unstable();
    v
}

/// One thread of a process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Thread {
    pub tid: i32,
    pub name: String,
    pub state: String,
    pub wchan: Option<String>,
}

/// The threads of `pid` from `task/*/stat` and `task/*/wchan`; vanished ones skipped.
pub fn threads(pid: i32) -> Vec<Thread> {
    let dir = format!("/proc/{pid}/task");
    numeric_entries(Path::new(&dir))
        .into_iter()
        .filter_map(|tid| {
            let st = stat_at(Path::new(&format!("{dir}/{tid}/stat"))).ok()?;
            Some(Thread {
                tid,
                name: st.comm,
                state: st.state.to_string(),
                wchan: wchan(Path::new(&format!("{dir}/{tid}/wchan"))),
            })
        })
        .collect()
}

/// The `status` of every thread of `pid` (for per-thread signal masks).
pub fn thread_statuses(pid: i32) -> Vec<Status> {
    let dir = format!("/proc/{pid}/task");
    numeric_entries(Path::new(&dir))
        .into_iter()
        .filter_map(|tid| read(Path::new(&format!("{dir}/{tid}/status"))).ok().map(|t| parse_status(&t)))
        .collect()
}

/// The fds of `pid` that are signalfds, with their masks.
pub fn signalfds(pid: i32) -> Result<Vec<(i32, u64)>, ReadError> {
    let dir = format!("/proc/{pid}/fd");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(ReadError::Gone),
        Err(e) => return Err(ReadError::Unreadable(format!("{dir}: {e}"))),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(link) = fs::read_link(entry.path()) else { continue };
        if link.as_os_str() != "anon_inode:[signalfd]" {
            continue;
        }
        if let Ok(text) = read(Path::new(&format!("/proc/{pid}/fdinfo/{fd}"))) {
            if let Some(mask) = parse_fdinfo_sigmask(&text) {
                out.push((fd, mask));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Clock ticks per second.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stat_line(pid: i32, comm: &str, state: char, ppid: i32, threads: i64, start: u64) -> String {
        format!(
            "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 {threads} 0 {start} \
             1000 100 18446744073709551615 1 1 0 0 0 0 65536 4 65536 1 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn parses_a_real_looking_line() {
        let s = parse_stat(&stat_line(42, "a) b (c", 'Z', 7, 1, 12345)).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid, s.num_threads, s.starttime),
            (42, "a) b (c", 'Z', 7, 1, 12345)
        );
        assert_eq!(s.exit_code, None, "the line stops before field 52");
        let full = stat_line(42, "x", 'Z', 7, 1, 12345) + " 0 0 0 0 0 0 0 10752";
        assert_eq!(parse_stat(&full).unwrap().exit_code, Some(42 << 8));
    }

    #[test]
    fn rejects_garbage() {
        for t in ["", "(", ")", ") (", "1 (x)", "1 (x) Z", "x (y) Z 1 2", "1 (x) ZZ 1 2 3"] {
            assert!(parse_stat(t).is_none(), "{t:?}");
        }
    }

    #[test]
    fn status_and_fdinfo() {
        let st = parse_status(
            "Name:\tx\nSigBlk:\t0000000000010000\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000010002\n\
             TracerPid:\t0\nNSpid:\t4242\t1\nThreads:\t3\nbogus line\n",
        );
        assert!(has_sigchld(st.sig_blk));
        assert!(!has_sigchld(st.sig_ign));
        assert!(has_sigchld(st.sig_cgt));
        assert_eq!(st.nspid, vec![4242, 1]);
        assert_eq!(st.threads, Some(3));
        assert_eq!(
            parse_fdinfo_sigmask("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1\nsigmask:\t0000000000010000\n"),
            Some(SIGCHLD_BIT)
        );
        assert_eq!(parse_fdinfo_sigmask("pos:\t0\n"), None);
        assert_eq!(parse_uptime("123.45 678.9\n"), Some(123.45));
    }

    proptest! {
        #[test]
        fn any_comm_parses(comm in "[ -~]{0,15}", pid in 1i32..4_194_304, ppid in 0i32..4_194_304,
                           state in prop::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I']),
                           threads in 1i64..10_000, start in any::<u64>()) {
            let s = parse_stat(&stat_line(pid, &comm, state, ppid, threads, start)).unwrap();
            prop_assert_eq!(s.pid, pid);
            prop_assert_eq!(s.comm, comm);
            prop_assert_eq!(s.state, state);
            prop_assert_eq!(s.ppid, ppid);
            prop_assert_eq!(s.num_threads, threads);
            prop_assert_eq!(s.starttime, start);
        }

        #[test]
        fn parens_and_spaces_in_comm(parts in prop::collection::vec(prop::sample::select(vec![")", "(", " ", ") ", " (", "x", ") Z 1 2"]), 0..8)) {
            let comm: String = parts.concat();
            let s = parse_stat(&stat_line(5, &comm, 'S', 1, 1, 9)).unwrap();
            prop_assert_eq!(s.comm, comm);
            prop_assert_eq!((s.state, s.ppid, s.starttime), ('S', 1, 9));
        }

        #[test]
        fn garbage_never_panics(text in any::<String>()) {
            let _ = parse_stat(&text);
            let _ = parse_status(&text);
            let _ = parse_fdinfo_sigmask(&text);
            let _ = parse_uptime(&text);
        }

        #[test]
        fn mangled_stat_never_panics(comm in any::<String>(), cut in 0usize..200, junk in any::<String>()) {
            let line = stat_line(3, &comm, 'Z', 2, 1, 7);
            let mut cut = cut.min(line.len());
            while !line.is_char_boundary(cut) { cut -= 1; }
            let _ = parse_stat(&format!("{}{}", &line[..cut], junk));
        }
    }
}
