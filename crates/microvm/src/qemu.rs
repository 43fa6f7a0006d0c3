//! The qemu command line of a guest, and what its console said.
//!
//! Three serial ports: the console (ttyS0: the kernel's rare messages and
//! `/init`'s exit marker), the command's stdout (ttyS1) and its stderr
//! (ttyS2), each to a descriptor the caller passes (as `/proc/self/fd/N`),
//! so the command's output reaches the user's stdout and stderr apart
//! from the console's.

use std::path::Path;

use crate::initramfs::{ERROR_MARKER, EXIT_MARKER};

/// How qemu runs the guest's CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`/dev/kvm` works).
    Kvm,
    /// Software emulation (TCG): slower, works everywhere, also nested.
    Tcg,
}

impl Accel {
    /// KVM when `/dev/kvm` opens and qemu can start a (paused) KVM
    /// machine with the host's CPU, else TCG. A usable-looking `/dev/kvm`
    /// is not enough: nested KVM in cloud VMs often refuses the vCPU's
    /// MSRs, and qemu aborts (as it does on this project's test machine).
    pub fn detect(qemu: &str) -> Self {
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm");
        if kvm.is_err() {
            return Accel::Tcg;
        }
        let probe = std::process::Command::new(qemu)
            .args([
                "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "32",
            ])
            .args(["-nodefaults", "-display", "none", "-S", "-monitor", "stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut probe) = probe else {
            return Accel::Tcg;
        };
        if let Some(mut stdin) = probe.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"quit\n");
        }
        match probe.wait() {
            Ok(status) if status.success() => Accel::Kvm,
            _ => Accel::Tcg,
        }
    }
}

/// One guest.
pub struct Machine<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// The endpoint's tap, opened by name (qemu must run in its namespace).
    pub tap: &'a str,
    /// The endpoint's MAC, `aa:bb:…`.
    pub mac: &'a str,
    pub memory_mib: u32,
    pub accel: Accel,
    /// `hostnet.*` parameters ([`crate::GuestNet::kernel_args`]).
    pub kernel_args: Vec<String>,
    /// Descriptors (in qemu) of the command's stdout and stderr.
    pub stdout_fd: i32,
    pub stderr_fd: i32,
}

/// qemu-system-x86_64's arguments; the console is qemu's stdio.
pub fn args(m: &Machine) -> Vec<String> {
    let (accel, cpu) = match m.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    let mut append = vec![
        "console=ttyS0".to_string(),
        "quiet".into(),
        "loglevel=0".into(),
        "panic=-1".into(),
        // No time spent probing for a real-time clock or a mouse.
        "i8042.noaux".into(),
        "8250.nr_uarts=3".into(),
    ];
    append.extend(m.kernel_args.iter().cloned());
    let mut a: Vec<String> = [
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "-m".into(),
        m.memory_mib.to_string(),
        "-smp".into(),
        "1".into(),
        "-kernel".into(),
        m.kernel.display().to_string(),
        "-initrd".into(),
        m.initrd.display().to_string(),
        "-append".into(),
        append.join(" "),
        "-serial".into(),
        "stdio".into(),
        "-chardev".into(),
        format!("file,id=out,path=/proc/self/fd/{}", m.stdout_fd),
        "-serial".into(),
        "chardev:out".into(),
        "-chardev".into(),
        format!("file,id=err,path=/proc/self/fd/{}", m.stderr_fd),
        "-serial".into(),
        "chardev:err".into(),
        "-netdev".into(),
        format!("tap,id=nic,ifname={},script=no,downscript=no", m.tap),
        "-device".into(),
        format!("virtio-net-pci,netdev=nic,mac={}", m.mac),
    ]);
    a
}

/// What the guest reported on its console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and exited with this status.
    Exited(i32),
    /// `/init` could not run it, and said why.
    GuestError(String),
    /// Neither: the guest crashed, or was stopped, before reporting.
    NoReport,
}

/// Reads `/init`'s markers out of the console text.
pub fn outcome(console: &str) -> Outcome {
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(code) = line.strip_prefix(EXIT_MARKER) {
            if let Ok(code) = code.trim().parse() {
                return Outcome::Exited(code);
            }
        }
        if let Some(why) = line.strip_prefix(ERROR_MARKER) {
            return Outcome::GuestError(why.trim().to_string());
        }
    }
    Outcome::NoReport
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nic_is_the_taps_with_the_endpoints_mac_and_output_has_its_own_ports() {
        let m = Machine {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            tap: "hnve0123456789",
            mac: "00:15:5d:00:00:05",
            memory_mib: 256,
            accel: Accel::Tcg,
            kernel_args: vec!["hostnet.addr=10.88.0.5/16".into()],
            stdout_fd: 3,
            stderr_fd: 4,
        };
        let a = args(&m).join(" ");
        assert!(a.contains("-accel tcg -cpu max -nodefaults"), "{a}");
        assert!(a.contains("-netdev tap,id=nic,ifname=hnve0123456789,script=no,downscript=no"));
        assert!(a.contains("-device virtio-net-pci,netdev=nic,mac=00:15:5d:00:00:05"));
        assert!(a.contains(
            "-serial stdio -chardev file,id=out,path=/proc/self/fd/3 -serial chardev:out"
        ));
        assert!(a.contains("quiet loglevel=0"));
        assert!(a.contains(" hostnet.addr=10.88.0.5/16"));
        assert!(a.contains("-m 256"));
    }

    #[test]
    fn the_console_gives_the_exit_status_or_the_guests_error() {
        assert_eq!(
            outcome("noise\r\nhostnet-microvm: exit 3\r\n"),
            Outcome::Exited(3)
        );
        assert_eq!(
            outcome("hostnet-microvm: error no NIC with MAC x\n"),
            Outcome::GuestError("no NIC with MAC x".into())
        );
        assert_eq!(outcome("Kernel panic\n"), Outcome::NoReport);
    }
}
