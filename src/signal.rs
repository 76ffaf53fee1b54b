//! [`Signal`]: a checked signal number, and the one signal-name parser of the
//! workspace (the CLI, the shim and the C API all use it).

use libc::c_int;
use std::fmt;
use std::str::FromStr;

/// A signal number in `1..=SIGRTMAX`.
///
/// ```
/// use zreap::Signal;
/// assert_eq!("TERM".parse::<Signal>().unwrap(), Signal::TERM);
/// assert_eq!(Signal::from_name("sigrtmin+2").unwrap().as_raw(), libc::SIGRTMIN() + 2);
/// assert_eq!(Signal::new(0), None);
/// assert_eq!(Signal::KILL.to_string(), "KILL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(c_int);

/// The standard names, without the `SIG` prefix; the first of a number is its
/// canonical name, the others are aliases.
const NAMES: [(&str, c_int); 34] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGABRT),
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
    ("CLD", libc::SIGCHLD),
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
    ("POLL", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

macro_rules! signal_consts {
    ($($name:ident = $libc:ident),* $(,)?) => {
        impl Signal {
            $(
                #[doc = concat!("`", stringify!($libc), "`.")]
                pub const $name: Signal = Signal(libc::$libc);
            )*
        }
    };
}

signal_consts!(
    HUP = SIGHUP,
    INT = SIGINT,
    QUIT = SIGQUIT,
    ILL = SIGILL,
    TRAP = SIGTRAP,
    ABRT = SIGABRT,
    BUS = SIGBUS,
    FPE = SIGFPE,
    KILL = SIGKILL,
    USR1 = SIGUSR1,
    SEGV = SIGSEGV,
    USR2 = SIGUSR2,
    PIPE = SIGPIPE,
    ALRM = SIGALRM,
    TERM = SIGTERM,
    STKFLT = SIGSTKFLT,
    CHLD = SIGCHLD,
    CONT = SIGCONT,
    STOP = SIGSTOP,
    TSTP = SIGTSTP,
    TTIN = SIGTTIN,
    TTOU = SIGTTOU,
    URG = SIGURG,
    XCPU = SIGXCPU,
    XFSZ = SIGXFSZ,
    VTALRM = SIGVTALRM,
    PROF = SIGPROF,
    WINCH = SIGWINCH,
    IO = SIGIO,
    PWR = SIGPWR,
    SYS = SIGSYS,
);

impl Signal {
    /// The signal `number`, or None outside `1..=SIGRTMAX`.
    pub fn new(number: c_int) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&number).then_some(Signal(number))
    }

    /// Parses a name (`TERM`, `SIGTERM`, `term`, the aliases `IOT`, `CLD`,
    /// `POLL`), a real-time name (`RTMIN`, `RTMIN+2`, `RTMAX-1`, also
    /// `SIGRTMIN+2`) or a number (`15`). None for anything else.
    pub fn from_name(text: &str) -> Option<Signal> {
        if let Ok(n) = text.parse::<c_int>() {
            return Signal::new(n);
        }
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
            return Some(Signal(n));
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let offset = |rest: &str| -> Option<c_int> {
            match rest {
                "" => Some(0),
                r if r.starts_with(['+', '-']) && r[1..].bytes().all(|b| b.is_ascii_digit()) && r.len() > 1 => {
                    r.parse().ok()
                }
                _ => None,
            }
        };
        let n = if let Some(rest) = name.strip_prefix("RTMIN") {
            min.checked_add(offset(rest).filter(|&k| k >= 0)?)?
        } else if let Some(rest) = name.strip_prefix("RTMAX") {
            max.checked_add(offset(rest).filter(|&k| k <= 0)?)?
        } else {
            return None;
        };
        (min..=max).contains(&n).then_some(Signal(n))
    }

    /// The signal number.
    pub const fn as_raw(self) -> c_int {
        self.0
    }

    /// The canonical name without `SIG`: `TERM`, `RTMIN+3`; the number for
    /// one that has no name.
    pub fn name(self) -> String {
        if let Some(&(name, _)) = NAMES.iter().find(|&&(_, n)| n == self.0) {
            return name.to_string();
        }
        let min = libc::SIGRTMIN();
        match self.0 - min {
            0 => "RTMIN".to_string(),
            k if k > 0 => format!("RTMIN+{k}"),
            _ => self.0.to_string(),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({} SIG{})", self.0, self.name())
    }
}

/// The error of parsing a [`Signal`] from a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSignalError(String);

impl fmt::Display for ParseSignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a signal name or number", self.0)
    }
}

impl std::error::Error for ParseSignalError {}

impl FromStr for Signal {
    type Err = ParseSignalError;
    fn from_str(text: &str) -> Result<Signal, ParseSignalError> {
        Signal::from_name(text).ok_or_else(|| ParseSignalError(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_aliases() {
        assert_eq!(Signal::from_name("TERM"), Some(Signal::TERM));
        assert_eq!(Signal::from_name("SIGKILL"), Some(Signal::KILL));
        assert_eq!(Signal::from_name("9"), Some(Signal::KILL));
        assert_eq!(Signal::from_name("term"), Some(Signal::TERM));
        assert_eq!(Signal::from_name("IOT"), Some(Signal::ABRT));
        assert_eq!(Signal::from_name("POLL"), Some(Signal::IO));
        assert_eq!(Signal::from_name("CLD"), Some(Signal::CHLD));
        assert_eq!(Signal::from_name("RTMIN+1").map(Signal::as_raw), Some(libc::SIGRTMIN() + 1));
        assert_eq!(Signal::from_name("SIGRTMAX-2").map(Signal::as_raw), Some(libc::SIGRTMAX() - 2));
        assert_eq!(Signal::from_name("RTMAX").map(Signal::as_raw), Some(libc::SIGRTMAX()));
        for bad in [
            "",
            "0",
            "65",
            "-1",
            "TERMS",
            "SIGFOO",
            "RTMIN+99",
            "SIG",
            "RTMIN2",
            "RTMIN+",
            "RTMAX+1",
            "RTMIN-1",
            "RTMIN+2147483647",
            "RTMAX-2147483648",
            "RTMAX50",
            "RTMIN-5",
            "99999999999",
        ] {
            assert_eq!(Signal::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_number_has_a_name_that_parses_back() {
        for n in 1..=libc::SIGRTMAX() {
            let signal = Signal::new(n).unwrap();
            assert_eq!(Signal::from_name(&signal.name()), Some(signal), "{n}");
        }
    }
}
