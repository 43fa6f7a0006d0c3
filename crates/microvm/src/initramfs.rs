//! The guest's initramfs: busybox (its userland, under `/hostnet`), the
//! command with its shared libraries at the paths it has on the host, the
//! NIC's kernel modules, the container's resolv.conf, and an `/init` that
//! configures the NIC from the kernel command line ([`crate::GuestNet`]),
//! runs the command with its output on the second and third serial ports,
//! reports its exit status on the console and powers off.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cpio::Archive;
use crate::libs;

/// `/init` prints this on the console, then the command's exit status.
pub const EXIT_MARKER: &str = "hostnet-microvm: exit ";
/// `/init` prints this on the console, then why it could not run the
/// command (the guest's set-up failed).
pub const ERROR_MARKER: &str = "hostnet-microvm: error ";

/// What goes into one guest.
pub struct Guest<'a> {
    /// The command line; `argv[0]` is run as `program`.
    pub argv: &'a [String],
    /// The command's program on this machine ([`resolve_program`]).
    pub program: &'a Path,
    /// More programs or files of this machine the guest gets at the same
    /// paths, with their libraries.
    pub extra: &'a [PathBuf],
    /// A static busybox ([`find_busybox`]).
    pub busybox: &'a Path,
    /// The guest kernel's modules directory (`…/lib/modules/<version>`)
    /// and the modules to load from it, in order ([`crate::modules`]).
    pub modules: Option<(&'a Path, Vec<String>)>,
    /// The guest's `/etc/resolv.conf`, if the endpoint names DNS servers.
    pub resolv_conf: Option<&'a str>,
}

/// Writes the initramfs to `out`; returns its size in bytes.
pub fn build(g: &Guest, out: &Path) -> Result<u64, String> {
    let io = |e: std::io::Error| format!("initramfs {}: {e}", out.display());
    let mut programs = vec![g.program.to_path_buf()];
    programs.extend(g.extra.iter().cloned());
    let interpreters: Vec<PathBuf> = programs.iter().filter_map(|p| interpreter_of(p)).collect();
    programs.extend(interpreters);
    for p in &programs {
        if !p.is_absolute() || !p.is_file() {
            return Err(format!(
                "{} is not a file given by its absolute path",
                p.display()
            ));
        }
    }
    let libraries = libs::closure(&programs)?;
    let mut t = Tree {
        a: Archive::create(out).map_err(io)?,
        made: BTreeSet::new(),
    };
    for d in ["/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"] {
        t.dir(d)?;
    }
    t.dir("/hostnet/bin")?;
    t.copy("/hostnet/busybox", 0o755, g.busybox)?;
    t.file("/init", 0o755, init_script().as_bytes())?;
    t.file(
        "/hostnet/cmd",
        0o755,
        command_script(g.program, g.argv).as_bytes(),
    )?;
    t.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    t.file("/etc/group", 0o644, b"root:x:0:\n")?;
    t.file("/etc/hosts", 0o644, b"127.0.0.1 localhost\n")?;
    if let Some(text) = g.resolv_conf {
        t.file("/etc/resolv.conf", 0o644, text.as_bytes())?;
    }
    let mut order = String::new();
    if let Some((dir, modules)) = &g.modules {
        for m in modules {
            t.copy(&format!("/hostnet/modules/{m}"), 0o644, &dir.join(m))?;
            order.push_str(&format!("/hostnet/modules/{m}\n"));
        }
    }
    t.file("/hostnet/modules.order", 0o644, order.as_bytes())?;
    for path in libraries.iter().chain(&programs) {
        let at = path.to_string_lossy();
        if !t.made.contains(at.as_ref()) {
            t.copy(&at, 0o755, path)?;
        }
    }
    t.a.finish().map_err(io)?;
    Ok(std::fs::metadata(out).map_err(io)?.len())
}

/// The program `argv0` names, as an absolute path (not resolving
/// symlinks: the guest has the program at that path): itself if it holds
/// a `/`, else the first executable of that name on `PATH`.
pub fn resolve_program(argv0: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if argv0.contains('/') {
        let p = std::env::current_dir().ok()?.join(argv0);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(argv0))
        .find(|p| executable(p))
}

/// Debian's static busybox (package busybox-static).
pub fn find_busybox() -> Result<PathBuf, String> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "busybox is not installed: apt-get install busybox-static".into())
}

/// A script's `#!` interpreter, which the guest needs as well.
fn interpreter_of(program: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::io::Read::read(&mut std::fs::File::open(program).ok()?, &mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line);
    let interpreter = line.lines().next()?.split_whitespace().next()?;
    Some(PathBuf::from(interpreter)).filter(|p| p.is_absolute() && p.exists())
}

/// The guest's PID 1. Busybox's applets live in `/hostnet/bin`, last on
/// `PATH`, so the command's own programs (at their host paths) win.
fn init_script() -> String {
    format!(
        r#"#!/hostnet/busybox sh
/hostnet/busybox --install -s /hostnet/bin
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/hostnet/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
fail() {{ echo "{error}$*" >/dev/ttyS0; poweroff -f; }}
while read -r m; do insmod "$m" || fail "insmod $m failed"; done </hostnet/modules.order
ip link set lo up
mac=; addrs=; mtu=; routes=
for a in $(cat /proc/cmdline); do
  case "$a" in
    hostnet.mac=*) mac="${{a#*=}}" ;;
    hostnet.addr=*) addrs="$addrs ${{a#*=}}" ;;
    hostnet.mtu=*) mtu="${{a#*=}}" ;;
    hostnet.route=*) routes="$routes ${{a#*=}}" ;;
  esac
done
nic=
for i in $(seq 100); do
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$mac" ] && nic="${{d##*/}}"
  done
  [ -n "$nic" ] && break
  sleep 0.05
done
[ -n "$nic" ] || fail "no NIC with MAC $mac: the kernel has no virtio-net driver (give its modules)"
[ -z "$mtu" ] || ip link set "$nic" mtu "$mtu" || fail "cannot give $nic MTU $mtu"
# No duplicate address detection: the address is the endpoint's, hostnet
# gave it to no one else, and DAD would hold IPv6 back for a second.
echo 0 >"/proc/sys/net/ipv6/conf/$nic/accept_dad" 2>/dev/null
ip link set "$nic" up || fail "cannot set $nic up"
for addr in $addrs; do
  ip addr add "$addr" dev "$nic" || fail "cannot give $nic $addr"
done
for r in $routes; do
  dest="${{r%@*}}"; via="${{r#*@}}"
  if [ -n "$via" ]; then ip route replace "$dest" via "$via" dev "$nic"
  else ip route replace "$dest" dev "$nic"; fi || fail "cannot add route $r"
done
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
cd /
echo "hostnet-microvm: command starts {uptime_at}$(cut -d' ' -f1 /proc/uptime) s" >/dev/ttyS0
/hostnet/busybox sh /hostnet/cmd </dev/null >/dev/ttyS1 2>/dev/ttyS2
echo "{exit}$?" >/dev/ttyS0
poweroff -f
"#,
        error = ERROR_MARKER,
        uptime_at = "at uptime ",
        exit = EXIT_MARKER,
    )
}

/// `exec` of the command line, each argument quoted for the shell; the
/// program by the path it has in the guest.
fn command_script(program: &Path, argv: &[String]) -> String {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let mut words = vec![quote(&program.to_string_lossy())];
    words.extend(argv.iter().skip(1).map(|a| quote(a)));
    format!("exec {}\n", words.join(" "))
}

/// An archive that makes each file's parent directories once.
struct Tree<W: Write> {
    a: Archive<W>,
    made: BTreeSet<String>,
}

impl<W: Write> Tree<W> {
    fn dir(&mut self, path: &str) -> Result<(), String> {
        let mut at = String::new();
        for part in path.trim_matches('/').split('/') {
            at.push('/');
            at.push_str(part);
            if self.made.insert(at.clone()) {
                self.a.dir(&at, 0o755).map_err(|e| format!("{at}: {e}"))?;
            }
        }
        Ok(())
    }

    fn parent(&mut self, path: &str) -> Result<(), String> {
        match path.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.dir(dir),
            _ => Ok(()),
        }
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        self.parent(path)?;
        self.made.insert(path.to_string());
        self.a
            .file(path, mode, data)
            .map_err(|e| format!("{path}: {e}"))
    }

    fn copy(&mut self, path: &str, mode: u32, from: &Path) -> Result<(), String> {
        self.parent(path)?;
        self.made.insert(path.to_string());
        self.a
            .copy(path, mode, from)
            .map_err(|e| format!("{}: {e}", from.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_quoted_for_the_shell() {
        let argv = ["sh".to_string(), "-c".into(), "echo it's".into()];
        assert_eq!(
            command_script(Path::new("/usr/bin/sh"), &argv),
            "exec '/usr/bin/sh' '-c' 'echo it'\\''s'\n"
        );
    }

    #[test]
    fn init_configures_the_nic_runs_the_command_and_reports_its_status() {
        let s = init_script();
        assert!(s.starts_with("#!/hostnet/busybox sh\n"));
        assert!(s.contains(r#"ip addr add "$addr" dev "$nic""#));
        assert!(s.contains("for addr in $addrs; do"));
        assert!(s.contains(">/dev/ttyS1 2>/dev/ttyS2"));
        assert!(s.contains(&format!("echo \"{EXIT_MARKER}$?\" >/dev/ttyS0")));
        assert!(s.trim_end().ends_with("poweroff -f"));
    }

    /// Debian's `cpio` lists what an image holds: init, busybox, the
    /// command, its libraries and loader.
    #[test]
    fn an_image_holds_init_busybox_and_the_command_with_its_libraries() {
        let (Ok(busybox), Some(program)) = (find_busybox(), resolve_program("ip")) else {
            eprintln!("skipped: busybox or ip is not installed");
            return;
        };
        if resolve_program("cpio").is_none() {
            eprintln!("skipped: cpio is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("hostnet-microvm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("initrd");
        let argv = ["ip".to_string(), "addr".into()];
        let g = Guest {
            argv: &argv,
            program: &program,
            extra: &[],
            busybox: &busybox,
            modules: None,
            resolv_conf: Some("nameserver 10.88.0.1\n"),
        };
        build(&g, &out).unwrap();
        let listed = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::fs::File::open(&out).unwrap())
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        for want in ["init", "hostnet/busybox", "hostnet/cmd", "etc/resolv.conf"] {
            assert!(listed.lines().any(|l| l == want), "no {want} in {listed}");
        }
        let program = program.to_string_lossy();
        assert!(listed.lines().any(|l| l == program.trim_start_matches('/')));
        assert!(listed.lines().any(|l| l.contains("libc.so")), "{listed}");
    }
}
