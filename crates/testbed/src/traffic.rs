//! Traffic generators for the bench binaries: iperf3 flows, a TCP
//! request/response loop and a connection setup loop, each run inside a
//! namespace of the testbed.
//!
//! Client and server of the loops are pinned to CPU 0, as a TCP_RR test on
//! one core: the cost per packet, without cross-CPU wake-ups (bimodal
//! otherwise on this 2-core machine).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{wait_until, Probe};

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `cmd` to completion, killing it after `limit`; (success, stdout).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut p = Proc(child);
    let mut out = p.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut status = None;
    wait_until(limit, || {
        status = p.0.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = p.0.kill();
    }
    let _ = p.0.wait();
    let stdout = reader.join().unwrap_or_default();
    (status.is_some_and(|s| s.success()), stdout)
}

/// Gbit/s of one `iperf3 -c HOST -p PORT -t SECONDS` from `netns`, client
/// on CPU 0.
pub fn iperf_client(netns: &Path, host: &str, port: u16, seconds: u32) -> f64 {
    let mut cmd = Probe::command(netns, "iperf3");
    cmd.args([
        "-c",
        host,
        "-p",
        &port.to_string(),
        "-t",
        &seconds.to_string(),
        "-A",
        "0",
        "-J",
    ]);
    let (ok, out) = run_bounded(cmd, Duration::from_secs(u64::from(seconds) + 15));
    let v: Value = serde_json::from_str(&out).unwrap_or_default();
    match (ok, v["end"]["sum_received"]["bits_per_second"].as_f64()) {
        (true, Some(bps)) => bps / 1e9,
        _ => panic!(
            "iperf3 to {host}:{port} failed: {}",
            v["error"].as_str().unwrap_or(&out)
        ),
    }
}

/// `iperf3 -s -p PORT` in `netns` on CPU 1, once it listens.
pub fn iperf_server(netns: &Path, port: u16) -> Proc {
    let mut child = Probe::command(netns, "iperf3")
        .args(["-s", "-p", &port.to_string(), "-A", "1", "--forceflush"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3 server");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("Server listening") {
                let _ = tx.send(());
            }
        }
    });
    let p = Proc(child);
    rx.recv_timeout(Duration::from_secs(5))
        .expect("iperf3 server did not start");
    p
}

/// Pin the calling thread (or, in `pre_exec`, the child) to CPU 0.
pub fn pin_to_cpu0() -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET on index 0 is in range.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `hostnet-probe tcp-echo [::]:PORT` in `netns` (one dual-stack socket:
/// IPv4 clients too), pinned to CPU 0, once it listens.
pub fn echo_server(netns: &Path, port: u16) -> Proc {
    let bin = Probe::binary();
    let mut cmd = Probe::command(netns, &bin.to_string_lossy());
    // SAFETY: sched_setaffinity is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, pin_to_cpu0);
    }
    let mut child = cmd
        .args(["tcp-echo", &format!("[::]:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn echo server");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    let p = Proc(child);
    // It prints `ready` once bound and nothing more for tcp-echo.
    BufReader::new(out)
        .read_line(&mut line)
        .expect("echo server");
    assert_eq!(line.trim(), "ready", "echo server did not start");
    p
}

/// Run `f` on a thread of this process moved into the namespace at
/// `netns` (setns is per thread) and pinned to CPU 0.
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(netns).expect("open netns");
    std::thread::spawn(move || {
        // SAFETY: setns on a valid fd; only this thread changes namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns: {}", std::io::Error::last_os_error());
        }
        pin_to_cpu0().expect("sched_setaffinity");
        f()
    })
    .join()
    .expect("traffic thread")
}

/// One 2-byte request and its answer on `s`.
fn round_trip(s: &mut TcpStream) {
    let mut buf = [0u8; 2];
    s.write_all(b"x\n").expect("write");
    s.read_exact(&mut buf).expect("read");
}

/// Round trips per second of a 2-byte request/response over one TCP
/// connection from `netns` to `to` (an [`echo_server`]), for about `time`.
pub fn request_response(netns: &Path, to: SocketAddr, time: Duration) -> f64 {
    in_netns(netns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        // Warm up (ARP, conntrack, slow paths), then count.
        for _ in 0..100 {
            round_trip(&mut s);
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < time && n < 10_000_000 {
            for _ in 0..100 {
                round_trip(&mut s);
            }
            n += 100;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// New TCP connections per second from `netns` to `to` (an
/// [`echo_server`]), each opened, used for one round trip and reset, for
/// about `time`: the cost of a connection's first packets, which are the
/// ones that walk ACLs and load balancers (later ones ride conntrack).
/// Reset rather than closed, so no TIME_WAIT piles up over many runs.
pub fn connection_rate(netns: &Path, to: SocketAddr, time: Duration) -> f64 {
    in_netns(netns, move || {
        let once = || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            round_trip(&mut s);
            set_linger_zero(&s);
        };
        for _ in 0..50 {
            once();
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < time {
            for _ in 0..20 {
                once();
            }
            n += 20;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// SO_LINGER {on, 0}: close sends a reset and leaves no TIME_WAIT.
fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}
