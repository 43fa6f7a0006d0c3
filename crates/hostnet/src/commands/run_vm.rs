//! `hostnet run --isolation vm`: the command in a microVM.
//!
//! As on Windows, where HNS provides a Hyper-V-isolated container's NIC and
//! HCS runs the VM, hostnetd makes the endpoint (a `VmNic`: a tap on the
//! network's bridge) and the CLI plays HCS: it builds the guest (an
//! initramfs with busybox and the command), boots it under qemu in the
//! namespace the tap lives in, passes the command's output through, and
//! exits with the command's status. Everything it needs is checked before
//! anything is created on the host.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hostnet_api::Client;
use hostnet_microvm::initramfs::{self, Guest};
use hostnet_microvm::qemu::{self, Accel, Machine, Outcome};
use hostnet_microvm::{modules, GuestNet};

use super::run::{clean_up, provision, Sandbox, EXIT_NOT_FOUND, EXIT_SETUP};
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::exec::{signal_name, wait_relayed, SignalRelay};

/// The VM monitor.
const QEMU: &str = "qemu-system-x86_64";
/// Set to a file name, the guest's console is written there after the run
/// (kernel messages, `/init`'s markers, boot timing).
pub const CONSOLE_ENV: &str = "HOSTNET_VM_CONSOLE";

/// What the guest is made of, found before anything is created.
#[derive(Debug)]
pub struct GuestParts {
    pub kernel: PathBuf,
    /// The modules directory and the NIC's modules, in load order.
    pub modules: Option<(PathBuf, Vec<String>)>,
    pub busybox: PathBuf,
    pub program: PathBuf,
    /// `--vm-add`'s files, absolute.
    pub extra: Vec<PathBuf>,
}

fn setup(message: impl Into<String>) -> CliError {
    CliError::new(message).with_exit(EXIT_SETUP)
}

impl GuestParts {
    /// Checks the configuration and this machine: a kernel, its NIC
    /// modules, qemu, busybox and the command's program.
    pub fn check(args: &RunArgs) -> Result<Self, CliError> {
        if args.keep {
            return Err(setup(
                "--keep applies to --isolation process: a VM's endpoint is removed when the VM stops",
            ));
        }
        let kernel = args.vm_kernel.clone().ok_or_else(|| {
            setup("--isolation vm needs a guest kernel and none is configured: give --vm-kernel PATH or set HOSTNET_VM_KERNEL (e.g. the vmlinuz of Debian's linux-image-cloud-amd64)")
        })?;
        if !kernel.is_file() {
            return Err(setup(format!(
                "guest kernel {} is not a file: give --vm-kernel the path of a kernel image (vmlinuz)",
                kernel.display()
            )));
        }
        let modules = nic_modules(&kernel, args.vm_modules.as_deref())?;
        if initramfs::resolve_program(QEMU).is_none() {
            return Err(setup(format!(
                "{QEMU} is not installed: apt-get install qemu-system-x86"
            )));
        }
        let busybox = initramfs::find_busybox().map_err(setup)?;
        let program = initramfs::resolve_program(&args.command[0]).ok_or_else(|| {
            CliError::new(format!(
                "cannot start {} in the VM: no such program on this host (the guest gets it from here)",
                args.command[0]
            ))
            .with_exit(EXIT_NOT_FOUND)
        })?;
        let extra = args
            .vm_add
            .iter()
            .map(|p| match p.is_absolute() && p.is_file() {
                true => Ok(p.clone()),
                false => Err(setup(format!(
                    "--vm-add {}: not a file on this host given by its absolute path",
                    p.display()
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            kernel,
            modules,
            busybox,
            program,
            extra,
        })
    }
}

/// The modules the guest loads for its NIC: from `given`, or the
/// directory beside a Debian-style kernel tree (`…/boot/vmlinuz-V` →
/// `…/lib/modules/V`) if it exists. None: no modules directory; the
/// kernel must have virtio-net built in (the guest says so if not).
fn nic_modules(
    kernel: &Path,
    given: Option<&Path>,
) -> Result<Option<(PathBuf, Vec<String>)>, CliError> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => {
            let version = kernel
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("vmlinuz-"));
            let root = kernel.parent().and_then(Path::parent);
            match (version, root) {
                (Some(v), Some(root)) if root.join("lib/modules").join(v).is_dir() => {
                    root.join("lib/modules").join(v)
                }
                _ => return Ok(None),
            }
        }
    };
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            setup(format!(
                "guest modules directory {}: {name}: {e}: give --vm-modules the kernel's lib/modules/VERSION (with modules.dep)",
                dir.display()
            ))
        })
    };
    let dep = read("modules.dep")?;
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let order = modules::load_order(&dep, &builtin, modules::NIC_MODULES)
        .map_err(|e| setup(format!("guest modules {}: {e}", dir.display())))?;
    Ok(Some((dir, order)))
}

/// Runs `hostnet run --isolation vm`.
pub fn run(client: &Client, args: &RunArgs, relay: &SignalRelay) -> Result<u8, CliError> {
    let parts = GuestParts::check(args)?;
    let sandbox = provision(client, args, || relay.received())?;
    let scratch = std::env::temp_dir().join(format!("hostnet-vm-{}", std::process::id()));
    let result = std::fs::create_dir_all(&scratch)
        .map_err(|e| setup(format!("{}: {e}", scratch.display())))
        .and_then(|()| boot(args, &parts, &sandbox, &scratch, relay));
    let _ = std::fs::remove_dir_all(&scratch);
    clean_up(client, &sandbox);
    result
}

fn boot(
    args: &RunArgs,
    parts: &GuestParts,
    sandbox: &Sandbox,
    scratch: &Path,
    relay: &SignalRelay,
) -> Result<u8, CliError> {
    let started = Instant::now();
    let endpoint = &sandbox.endpoint;
    let tap = endpoint["InterfaceName"].as_str().unwrap_or_default();
    let netns = endpoint["TapNetNsPath"].as_str().unwrap_or_default();
    if tap.is_empty() || netns.is_empty() {
        return Err(setup(
            "hostnetd did not report the VM NIC's tap (InterfaceName, TapNetNsPath): update hostnetd to this CLI's version",
        ));
    }
    let net = GuestNet::from_endpoint(endpoint).map_err(setup)?;
    let initrd = scratch.join("initrd");
    let guest = Guest {
        argv: &args.command,
        program: &parts.program,
        extra: &parts.extra,
        busybox: &parts.busybox,
        modules: parts
            .modules
            .as_ref()
            .map(|(d, m)| (d.as_path(), m.clone())),
        resolv_conf: sandbox.resolv_conf.as_deref(),
    };
    initramfs::build(&guest, &initrd).map_err(|e| setup(format!("building the guest: {e}")))?;
    let ns = File::open(netns).map_err(|e| {
        setup(format!(
            "cannot open the tap's network namespace {netns}: {e}"
        ))
    })?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let machine = Machine {
        kernel: &parts.kernel,
        initrd: &initrd,
        tap,
        mac: &net.mac,
        memory_mib: args.vm_memory,
        accel: Accel::detect(QEMU),
        kernel_args: net.kernel_args(),
        stdout_fd: 3,
        stderr_fd: 4,
    };
    let mut command = Command::new(QEMU);
    command
        .args(qemu::args(&machine))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (ns_fd, out_fd, err_fd) = (ns.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd());
    // SAFETY: setns and dup2 are async-signal-safe; the descriptors are
    // open in the child (the pipe ends are at 10 or above, so dup2 onto
    // 3 and 4 never overwrites one before it is used).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0
                || libc::dup2(out_fd, 3) < 0
                || libc::dup2(err_fd, 4) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| setup(format!("cannot start {QEMU}: {e}")))?;
    drop((ns, out_w, err_w));
    let out = pass_through(out_r, io::stdout());
    let err = pass_through(err_r, io::stderr());
    let console = collect(child.stdout.take().expect("piped"));
    let qemu_err = collect(child.stderr.take().expect("piped"));
    // A signal before the child was known to the relay was only recorded.
    if relay.received().is_some() {
        let _ = child.kill();
    }
    let status = wait_relayed(&mut child).map_err(|e| setup(format!("waiting for {QEMU}: {e}")))?;
    let _ = (out.join(), err.join());
    let console = console.join().unwrap_or_default();
    let qemu_err = qemu_err.join().unwrap_or_default();
    if let Some(path) = std::env::var_os(CONSOLE_ENV) {
        let _ = std::fs::write(
            path,
            format!(
                "{console}\nhostnet-microvm: qemu exited after {:.2} s ({status})\n",
                started.elapsed().as_secs_f64()
            ),
        );
    }
    if let Some(signal) = relay.received() {
        eprintln!("hostnet: the VM was stopped by {}", signal_name(signal));
        return Ok(128u8.saturating_add(signal as u8));
    }
    match qemu::outcome(&console) {
        Outcome::Exited(code) => Ok((code & 0xff) as u8),
        Outcome::GuestError(why) => Err(setup(format!(
            "the VM could not run {}: {why}",
            args.command[0]
        ))),
        Outcome::NoReport => Err(setup(format!(
            "the VM stopped before {} reported its exit status ({QEMU} {status}): {}",
            args.command[0],
            last_lines(&format!("{console}\n{qemu_err}"), 3)
        ))),
    }
}

/// A pipe whose ends are close-on-exec and numbered 10 or above.
fn pipe() -> Result<(OwnedFd, OwnedFd), CliError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own; F_DUPFD_CLOEXEC
    // returns a new one (or -1).
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(setup(format!("pipe: {}", io::Error::last_os_error())));
        }
        let high = |fd: i32| {
            let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            libc::close(fd);
            moved
        };
        let (r, w) = (high(fds[0]), high(fds[1]));
        if r < 0 || w < 0 {
            return Err(setup(format!("fcntl: {}", io::Error::last_os_error())));
        }
        Ok((OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)))
    }
}

/// Copies what the guest writes on a serial port to `to` as it comes.
fn pass_through(from: OwnedFd, mut to: impl Write + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut from = File::from(from);
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                break;
            }
        }
    })
}

/// Everything `from` says, as text.
fn collect(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).replace('\r', "")
    })
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> RunArgs {
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::cli::Command::Run(args) => args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn no_kernel_or_keep_is_refused_before_anything() {
        let mut a = args(&["hostnet", "run", "--isolation", "vm", "--", "true"]);
        a.vm_kernel = None;
        let e = GuestParts::check(&a).unwrap_err();
        assert_eq!(e.exit_code, 125);
        assert!(e.message.contains("--vm-kernel") && e.message.contains("HOSTNET_VM_KERNEL"));
        let a = args(&[
            "hostnet",
            "run",
            "--isolation",
            "vm",
            "--keep",
            "--",
            "true",
        ]);
        let e = GuestParts::check(&a).unwrap_err();
        assert!(e.message.contains("--keep"), "{e}");
    }

    /// A Debian-style tree: `ROOT/boot/vmlinuz-V` finds `ROOT/lib/modules/V`
    /// and virtio-net's modules in load order; a tree without modules
    /// gives none (the kernel must have the driver built in).
    #[test]
    fn modules_are_found_beside_a_debian_style_kernel() {
        let root = std::env::temp_dir().join(format!("hostnet-run-vm-test-{}", std::process::id()));
        let boot = root.join("boot");
        let modules = root.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(&boot).unwrap();
        let kernel = boot.join("vmlinuz-6.1.0-test");
        std::fs::write(&kernel, b"").unwrap();
        assert!(nic_modules(&kernel, None).unwrap().is_none());
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(
            modules.join("modules.dep"),
            "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n",
        )
        .unwrap();
        std::fs::write(
            modules.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        let (dir, order) = nic_modules(&kernel, None).unwrap().unwrap();
        assert_eq!(dir, modules);
        assert_eq!(
            order,
            [
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/virtio_net.ko"
            ]
        );
        let e = nic_modules(&kernel, Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.message.contains("modules.dep"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_last_lines_of_a_console_say_why_a_guest_stopped() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(last_lines("", 3), "");
    }
}
