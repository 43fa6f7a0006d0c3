//! CPU time spent by a process or by this process's finished children,
//! split user/system: a cost that load from other work on a shared machine
//! does not inflate the way it inflates wall time (the kernel's work for a
//! netlink request runs in the sender's context and counts as its system
//! time).

use std::ops::Sub;

/// Seconds of CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

impl CpuTime {
    /// All threads of process `pid` so far, exited ones included (from
    /// `/proc/PID/stat`, in clock ticks); zero if it cannot be read.
    pub fn of_process(pid: u32) -> CpuTime {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // utime and stime are the 14th and 15th fields; the command name
        // (2nd) may hold spaces, so count from after its closing ") ".
        let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or_default();
        let field = |i: usize| {
            after
                .split_whitespace()
                .nth(i)
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        CpuTime {
            user: field(11) / hz,
            system: field(12) / hz,
        }
    }

    /// This process's children that have been waited for, so far.
    pub fn of_children() -> CpuTime {
        // SAFETY: an all-zero rusage is valid, and getrusage writes into it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: usage is a valid rusage to write to.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        CpuTime {
            user: secs(usage.ru_utime),
            system: secs(usage.ru_stime),
        }
    }

    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

impl Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}
