//! The ZREAP_* settings, read once when the core starts. A bad value prints one
//! line on stderr and turns the shim off: the program then runs as it would
//! without it.

use crate::real;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering::SeqCst};

pub const OFF: u8 = 0;
pub const HANDLER: u8 = 1;
pub const ALL: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(OFF);
static SUBREAPER: AtomicBool = AtomicBool::new(false);
static PDEATHSIG: AtomicI32 = AtomicI32::new(0);

/// Is the shim on, in the process that owns its state (see [`crate::owner`])?
/// Async-signal-safe.
pub fn active() -> bool {
    MODE.load(SeqCst) != OFF && crate::owner::owned_by(zreap::sys::bare::getpid())
}

/// [`active`] in the calling process, whose pid the caller has read: `me`.
/// Async-signal-safe.
fn active_in(me: libc::pid_t) -> bool {
    MODE.load(SeqCst) != OFF && crate::owner::owned_by(me)
}

/// Does the shim reap children whose SIGCHLD disposition is the default
/// (no program handler)? In `all` mode, and as a subreaper.
pub fn reaps_unwaited() -> bool {
    // The settings first: active() costs a getpid.
    reaps_any_mode() && active()
}

/// [`reaps_unwaited`] in the calling process, whose pid is `me`.
pub fn reaps_unwaited_in(me: libc::pid_t) -> bool {
    reaps_any_mode() && active_in(me)
}

fn reaps_any_mode() -> bool {
    MODE.load(SeqCst) == ALL || SUBREAPER.load(SeqCst)
}

pub fn pdeathsig() -> libc::c_int {
    PDEATHSIG.load(SeqCst)
}

/// The variables [`parse`] asks for.
const NAMES: [&CStr; 4] = [c"ZREAP_REAP", c"ZREAP_PDEATHSIG", c"ZREAP_SUBREAPER", c"ZREAP_LOG"];

/// The values of [`NAMES`] in the environment, in one pass over it (four
/// getenv calls would walk it four times). The first of two entries with
/// one name wins, as for getenv. The stub starts the core from its constructor
/// whenever this is read (a setting other than a valid ZREAP_REAP), before the
/// program can change the environment.
fn from_environment() -> [Option<&'static str>; 4] {
    let mut values = [None; 4];
    let mut entry = real::environ();
    // SAFETY: environ is NULL or a NULL-terminated array of C strings that
    // live as long as the environment.
    while !entry.is_null() && !unsafe { *entry }.is_null() {
        // SAFETY: as above.
        let text = unsafe { *entry };
        // SAFETY: reads stop at the string's NUL, the first byte that differs from "ZREAP_".
        if b"ZREAP_".iter().enumerate().all(|(i, &b)| unsafe { *text.add(i) } as u8 == b) {
            // SAFETY: a C string from the environment.
            let (name, value) = unsafe { split_entry(text.cast()) };
            if let Some(slot) = NAMES.iter().position(|n| n.to_bytes() == name) {
                values[slot] = values[slot].or(Some(std::str::from_utf8(value).unwrap_or("\u{fffd}")));
            }
        }
        // SAFETY: not past the terminating NULL.
        entry = unsafe { entry.add(1) };
    }
    values
}

/// "NAME=value" -> (NAME, value), in one pass over the C string (not
/// CStr::from_ptr's strlen: a libc call bound at its first use, ~800
/// instructions at every process start).
///
/// # Safety
/// `entry` is a C string that lives as long as the environment.
unsafe fn split_entry(entry: *const u8) -> (&'static [u8], &'static [u8]) {
    let mut len = 0;
    let mut equals = None;
    // SAFETY: reads stop at the NUL.
    while let byte @ 1.. = unsafe { *entry.add(len) } {
        if byte == b'=' && equals.is_none() {
            equals = Some(len);
        }
        len += 1;
    }
    // SAFETY: the string's bytes before its NUL.
    let bytes = unsafe { std::slice::from_raw_parts(entry, len) };
    match equals {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}

/// The settings, or the line that says what is wrong.
pub struct Settings<'a> {
    pub mode: u8,
    pub pdeathsig: libc::c_int,
    pub subreaper: bool,
    /// None: no log; Some("stderr") or a path.
    pub log: Option<&'a str>,
}

impl Settings<'_> {
    /// No ZREAP_* variable set.
    pub const DEFAULT: Settings<'static> = Settings { mode: HANDLER, pdeathsig: 0, subreaper: false, log: None };
}

/// The settings from the environment.
pub fn read() -> Result<Settings<'static>, String> {
    let values = from_environment();
    parse(|name| NAMES.iter().position(|&n| n == name).and_then(|slot| values[slot]))
}

/// The settings from `var`, which gives the value of one ZREAP_* variable.
pub fn parse<'a>(var: impl Fn(&CStr) -> Option<&'a str>) -> Result<Settings<'a>, String> {
    let mode = match var(c"ZREAP_REAP") {
        None | Some("handler") => HANDLER,
        Some("all") => ALL,
        Some("off") => OFF,
        Some(other) => return Err(format!("ZREAP_REAP={other:?}: expected handler, all or off")),
    };
    let pdeathsig = match var(c"ZREAP_PDEATHSIG") {
        None | Some("") => 0,
        Some(name) => signal_number(name)
            .ok_or_else(|| format!("ZREAP_PDEATHSIG={name:?}: expected a signal name (TERM, SIGKILL) or number"))?,
    };
    let subreaper = match var(c"ZREAP_SUBREAPER") {
        None | Some("") | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("ZREAP_SUBREAPER={other:?}: expected 0 or 1")),
    };
    let log = match var(c"ZREAP_LOG") {
        None | Some("") => None,
        Some(path) => Some(path),
    };
    Ok(Settings { mode, pdeathsig, subreaper, log })
}

/// "TERM", "SIGTERM", "15", "RTMIN+2" -> the signal number (zreap's one
/// signal-name parser).
pub fn signal_number(name: &str) -> Option<libc::c_int> {
    zreap::Signal::from_name(name).map(zreap::Signal::as_raw)
}

/// Applies valid settings.
pub fn apply(settings: &Settings<'_>) {
    MODE.store(settings.mode, SeqCst);
    SUBREAPER.store(settings.subreaper, SeqCst);
    PDEATHSIG.store(settings.pdeathsig, SeqCst);
}

#[cfg(test)]
mod tests {
    use super::{parse, signal_number, split_entry, ALL};
    use std::ffi::CStr;

    #[test]
    fn settings_from_a_lookup() {
        let env = |reap, pdeathsig| {
            move |name: &CStr| match name.to_bytes() {
                b"ZREAP_REAP" => Some(reap),
                b"ZREAP_PDEATHSIG" => Some(pdeathsig),
                _ => None,
            }
        };
        let s = parse(env("all", "RTMAX-1")).unwrap();
        assert_eq!((s.mode, s.pdeathsig, s.subreaper, s.log), (ALL, libc::SIGRTMAX() - 1, false, None));
        let line = parse(env("all", "RTMIN-5")).err().unwrap();
        assert_eq!(line, r#"ZREAP_PDEATHSIG="RTMIN-5": expected a signal name (TERM, SIGKILL) or number"#);
        assert!(!parse(env("bad\nvalue", "")).err().unwrap().contains('\n'));
    }

    #[test]
    fn environment_entries_split_at_the_first_equals() {
        // SAFETY: C string literals live for the whole program.
        let split = |entry: &'static std::ffi::CStr| unsafe { split_entry(entry.as_ptr().cast()) };
        assert_eq!(split(c"ZREAP_LOG=/tmp/a=b"), (&b"ZREAP_LOG"[..], &b"/tmp/a=b"[..]));
        assert_eq!(split(c"ZREAP_REAP="), (&b"ZREAP_REAP"[..], &b""[..]));
        assert_eq!(split(c"ZREAP_REAP"), (&b"ZREAP_REAP"[..], &b""[..]));
    }

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal_number("TERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(signal_number("RTMAX"), Some(libc::SIGRTMAX()));
        assert_eq!(signal_number("SIGRTMAX-0"), Some(libc::SIGRTMAX()));
        assert_eq!(signal_number("RTMIN+30"), Some(libc::SIGRTMAX()));
        for bad in ["", "0", "65", "-1", "TERMS", "SIGFOO", "RTMIN+99", "SIG"] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }

    /// Found by the settings fuzz target: offsets that leave the real-time
    /// range named standard signals ("RTMAX50" was SIGALRM), or overflowed.
    #[test]
    fn real_time_names_stay_real_time() {
        for bad in [
            "RTMAX50",
            "RTMIN-5",
            "RTMAX+1",
            "RTMIN3",
            "RTMIN+",
            "RTMIN++1",
            "RTMIN+31",
            "RTMIN+2147483647",
            "RTMAX--2147483648",
            "RTMAX-99999999999",
        ] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }
}
