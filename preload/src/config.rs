//! The ZREAP_* settings, read once at start-up. A bad value prints one line on
//! stderr and turns the shim off: the program then runs as it would without it.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering::SeqCst};

pub const OFF: u8 = 0;
pub const HANDLER: u8 = 1;
pub const ALL: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(OFF);
static SUBREAPER: AtomicBool = AtomicBool::new(false);
static PDEATHSIG: AtomicI32 = AtomicI32::new(0);
/// The process the shim's state belongs to: set at start-up and in fork's
/// child handler. A child made without fork's handlers is another process
/// on the same state: a vfork child shares this very memory until it execs
/// (`_posixsubprocess`, gdb and posix_spawn-like code reset SIGCHLD there),
/// a raw clone child has a copy of the parent's stored exits. The shim stays
/// out of the way in both.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// Makes the calling process the owner of the shim's state. Async-signal-safe.
pub fn own() {
    // SAFETY: getpid cannot fail.
    OWNER.store(unsafe { libc::getpid() }, SeqCst);
}

/// Is the shim on, in the process that owns its state? Async-signal-safe.
pub fn active() -> bool {
    // SAFETY: getpid cannot fail.
    MODE.load(SeqCst) != OFF && OWNER.load(SeqCst) == unsafe { libc::getpid() }
}

/// Does the shim reap children whose SIGCHLD disposition is the default
/// (no program handler)? In `all` mode, and as a subreaper.
pub fn reaps_unwaited() -> bool {
    active() && (MODE.load(SeqCst) == ALL || SUBREAPER.load(SeqCst))
}

pub fn pdeathsig() -> libc::c_int {
    PDEATHSIG.load(SeqCst)
}

fn getenv(name: &CStr) -> Option<&'static str> {
    // SAFETY: getenv with a valid name; the constructor runs before the
    // program can change the environment.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a valid C string that lives as long as the environment.
    unsafe { CStr::from_ptr(value) }.to_str().ok().or(Some("\u{fffd}"))
}

/// The settings, or the line that says what is wrong.
pub struct Settings {
    pub mode: u8,
    pub pdeathsig: libc::c_int,
    pub subreaper: bool,
    /// None: no log; Some("stderr") or a path.
    pub log: Option<&'static str>,
}

pub fn read() -> Result<Settings, String> {
    let mode = match getenv(c"ZREAP_REAP") {
        None | Some("handler") => HANDLER,
        Some("all") => ALL,
        Some("off") => OFF,
        Some(other) => return Err(format!("ZREAP_REAP={other:?}: expected handler, all or off")),
    };
    let pdeathsig = match getenv(c"ZREAP_PDEATHSIG") {
        None | Some("") => 0,
        Some(name) => signal_number(name)
            .ok_or_else(|| format!("ZREAP_PDEATHSIG={name:?}: expected a signal name (TERM, SIGKILL) or number"))?,
    };
    let subreaper = match getenv(c"ZREAP_SUBREAPER") {
        None | Some("") | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("ZREAP_SUBREAPER={other:?}: expected 0 or 1")),
    };
    let log = match getenv(c"ZREAP_LOG") {
        None | Some("") => None,
        Some(path) => Some(path),
    };
    Ok(Settings { mode, pdeathsig, subreaper, log })
}

/// "TERM", "SIGTERM", "15", "RTMIN+2" -> the signal number.
pub fn signal_number(name: &str) -> Option<libc::c_int> {
    const NAMES: [(&str, libc::c_int); 31] = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
    ];
    let in_range = |n: libc::c_int| (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    if let Ok(n) = name.parse::<libc::c_int>() {
        return in_range(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == bare) {
        return Some(n);
    }
    let offset = |rest: &str| if rest.is_empty() { Some(0) } else { rest.parse::<libc::c_int>().ok() };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return in_range(libc::SIGRTMIN() + offset(rest.strip_prefix('+').unwrap_or(rest))?);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return in_range(libc::SIGRTMAX() - offset(rest.strip_prefix('-').unwrap_or(rest))?);
    }
    None
}

/// Applies valid settings.
pub fn apply(settings: &Settings) {
    own();
    MODE.store(settings.mode, SeqCst);
    SUBREAPER.store(settings.subreaper, SeqCst);
    PDEATHSIG.store(settings.pdeathsig, SeqCst);
}

#[cfg(test)]
mod tests {
    use super::signal_number;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal_number("TERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(signal_number("RTMAX"), Some(libc::SIGRTMAX()));
        for bad in ["", "0", "65", "-1", "TERMS", "SIGFOO", "RTMIN+99", "SIG"] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }
}
