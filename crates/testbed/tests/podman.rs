//! A real container runtime end to end: Debian's podman 4.3 with its CNI
//! backend and a conflist naming hostnet-cni runs a container from a root
//! filesystem directory holding a static busybox. Podman runs inside the
//! test's host namespace (its network namespace only: mounts are shared,
//! so hostnetd sees the netns podman bind-mounts in /run/netns), with its
//! storage, run and temporary directories under the test's own directory.
//!
//! runc, not crun: this machine mounts cgroups in hybrid mode (v1
//! hierarchies plus the unified one), which crun refuses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{require_installed, unique, unmount_below, wait_until, workspace_binary};
use serde_json::json;

const NETWORK: &str = "hostnet";
const CONTAINER: &str = "hn-web";

/// Podman confined to a directory of its own; removes its containers and
/// the directory on drop.
struct Podman {
    dir: PathBuf,
    host: PathBuf,
}

impl Podman {
    fn new(w: &World) -> Podman {
        let dir = std::env::temp_dir().join(unique("podman"));
        let cni_dir = dir.join("cni");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&cni_dir).unwrap();
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("www")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        std::fs::write(rootfs.join("www/index.html"), "hello from podman\n").unwrap();
        let plugin_dir = workspace_binary("hostnet-cni")
            .parent()
            .unwrap()
            .to_path_buf();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[engine]\ncgroup_manager=\"cgroupfs\"\nevents_logger=\"file\"\nruntime=\"runc\"\n\
                 [network]\nnetwork_backend=\"cni\"\ncni_plugin_dirs=[\"{}\", \"/usr/lib/cni\"]\n\
                 network_config_dir=\"{}\"\n",
                plugin_dir.display(),
                cni_dir.display()
            ),
        )
        .unwrap();
        // Debian's podman 4.3 links libcni 1.1, which speaks CNI up to 1.0.0.
        let conflist = json!({
            "cniVersion": "1.0.0", "name": NETWORK,
            "plugins": [{
                "type": "hostnet-cni", "network": "podnet", "driver": "nat",
                "subnet": "10.91.0.0/24", "gateway": "10.91.0.1",
                "socket": w.daemon.socket,
                "capabilities": {"portMappings": true},
            }],
        });
        std::fs::write(cni_dir.join("hostnet.conflist"), conflist.to_string()).unwrap();
        Podman {
            dir,
            host: w.host.path().to_path_buf(),
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// `podman ARGS` in the host namespace, with this directory's config
    /// and storage.
    fn run(&self, args: &[&str]) -> Output {
        let d = |p: &str| self.dir.join(p).display().to_string();
        hostnet_testbed::Probe::command(&self.host, "podman")
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args(["--root", &d("root"), "--runroot", &d("runroot")])
            .args(["--tmpdir", &d("tmp"), "--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-a", "-f", "-t", "0"]);
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn limits() -> Vec<String> {
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    // This machine cannot raise limits: ask for what we have.
    vec![
        format!("nofile={}:{}", hard.rlim_max, hard.rlim_max),
        "nproc=32768:32768".to_string(),
    ]
}

#[test]
fn podman_runs_a_container_on_a_hostnet_network() {
    let test = "podman_runs_a_container_on_a_hostnet_network";
    let Some(w) = World::new(test) else {
        return;
    };
    if !require_installed(
        test,
        &["/usr/bin/podman", "/usr/sbin/runc", "/bin/busybox"],
        "podman runc busybox-static",
    ) {
        return;
    }
    let podman = Podman::new(&w);
    let outside = hostnet_testbed::Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );

    let limits = limits();
    let rootfs = podman.rootfs().display().to_string();
    let mut run = vec![
        "run",
        "-d",
        "--name",
        CONTAINER,
        "--network",
        NETWORK,
        "-p",
        "8090:80",
    ];
    for l in &limits {
        run.extend(["--ulimit", l]);
    }
    run.extend([
        "--rootfs",
        &rootfs,
        "/bin/busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let id = podman.ok(&run);

    // The container has hostnet's address: the endpoint hostnet-cni made
    // for it, on eth0 inside.
    let endpoint = w
        .client()
        .find_by_name(Kind::Endpoints, &format!("cni/{NETWORK}/{id}/eth0"))
        .unwrap()
        .expect("hostnet-cni's endpoint for the container");
    let ip = endpoint["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.91.0."), "{endpoint}");
    let inspected = podman.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.hostnet.IPAddress}}",
        CONTAINER,
    ]);
    assert_eq!(inspected, ip);
    let inside = podman.ok(&[
        "exec",
        CONTAINER,
        "/bin/busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(inside.contains(&format!("{ip}/24")), "{inside}");
    let sandbox = podman.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.SandboxKey}}",
        CONTAINER,
    ]);
    assert!(Path::new(&sandbox).exists(), "{sandbox}");

    // It reaches a server outside (through NAT: the server sees the host).
    // busybox's wget crashes in a static build without NSS; nc does not.
    let got = podman.run(&[
        "exec",
        CONTAINER,
        "/bin/busybox",
        "nc",
        "-w",
        "3",
        INTERNET,
        "7000",
    ]);
    let seen = outside.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {HOST}:")),
        "outside saw {seen:?}; nc said {}",
        String::from_utf8_lossy(&got.stderr),
    );

    // It serves its published port to the outside.
    let mut last = String::new();
    let served = wait_until(Duration::from_secs(10), || {
        let out = w
            .outside
            .command("sh")
            .args([
                "-c",
                &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {HOST} 8090"),
            ])
            .output()
            .unwrap();
        last = format!("{out:?}");
        String::from_utf8_lossy(&out.stdout).contains("hello from podman")
    });
    assert!(
        served,
        "the published port 8090 did not serve the container's page: {last}"
    );

    // podman rm leaves nothing: no endpoint, namespace object, veth, port
    // mapping, netns or libcni cache entry.
    podman.ok(&["rm", "-f", "-t", "0", CONTAINER]);
    let c = w.client();
    for kind in [Kind::Endpoints, Kind::Namespaces] {
        let left: Vec<_> = c
            .list(kind, None)
            .unwrap()
            .into_iter()
            .filter(|o| o["Name"].as_str().unwrap_or_default().starts_with("cni/"))
            .collect();
        assert!(left.is_empty(), "{kind:?} left: {left:?}");
    }
    assert!(
        w.links().iter().all(|l| !l.starts_with("hnve")),
        "{:?}",
        w.links()
    );
    assert!(w.elements("inet", "map", "ports4").is_empty());
    assert!(!Path::new(&sandbox).exists(), "{sandbox} is still there");
    let cached = std::fs::read_dir("/var/lib/cni/results")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(&id))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(cached, 0, "libcni's result cache still has the container");
}
