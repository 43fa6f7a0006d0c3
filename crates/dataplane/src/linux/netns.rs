//! Network namespaces: creating, removing and entering them.
//!
//! A thread's network namespace is per thread, so entering one (`setns`) or
//! making one (`unshare`) happens only on a fresh thread spawned for that
//! purpose and discarded afterwards; a shared or async runtime thread never
//! changes namespace. Sockets opened on such a thread stay bound to its
//! namespace, which is how the dataplane configures an endpoint's namespace
//! from the daemon's own threads.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::link;
use super::netlink::Socket;

/// The calling thread's own network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Runs `f` on a new thread that has first entered the network namespace
/// bind-mounted (or otherwise found) at `path`, and returns its result.
/// The calling thread's namespace is untouched. A panic in `f` is
/// propagated.
pub fn run_in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    run_in_netns_fd(ns.as_fd(), f)
}

/// Like [`run_in_netns`], for an open namespace descriptor.
pub fn run_in_netns_fd<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            enter(ns)?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Opens a `NETLINK_ROUTE` socket inside the namespace at `ns`.
pub fn route_socket_in(ns: BorrowedFd<'_>) -> io::Result<Socket> {
    run_in_netns_fd(ns, || Socket::open(libc::NETLINK_ROUTE))?
}

/// Opens a `NETLINK_ROUTE` socket inside each of `namespaces`, from one
/// thread that enters them in turn: a change touching many namespaces
/// pays for one thread, not one each.
pub fn route_sockets_in(namespaces: &[BorrowedFd<'_>]) -> io::Result<Vec<Socket>> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            namespaces
                .iter()
                .map(|ns| {
                    enter(*ns)?;
                    Socket::open(libc::NETLINK_ROUTE)
                })
                .collect()
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Moves the calling thread into the network namespace `ns`.
fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns(2) on a valid descriptor; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("setns: {err}")));
    }
    Ok(())
}

/// Identity of a namespace: the (device, inode) of its nsfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsId(u64, u64);

impl NetnsId {
    /// The namespace `fd` refers to.
    pub fn of(fd: &File) -> io::Result<Self> {
        let meta = fd.metadata()?;
        Ok(Self(meta.dev(), meta.ino()))
    }

    /// The calling thread's namespace.
    pub fn current() -> io::Result<Self> {
        let meta = fs::metadata(THREAD_NETNS)?;
        Ok(Self(meta.dev(), meta.ino()))
    }
}

/// Opens the calling thread's network namespace (to come back to it, or
/// to run things in it from other threads).
pub fn open_current() -> io::Result<File> {
    File::open(THREAD_NETNS)
}

/// Creates a network namespace and bind-mounts it at `path`, with its
/// loopback up. Fails if `path` exists.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                io::Error::new(e.kind(), format!("{} exists already", path.display()))
            }
            _ => e,
        })?;
    let made = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                unshare_net()?;
                bind_mount(Path::new(THREAD_NETNS), path)?;
                loopback_up().inspect_err(|_| {
                    let _ = unmount(path);
                })
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    if made.is_err() {
        let _ = fs::remove_file(path);
    }
    made
}

/// Unmounts and removes a namespace made by [`create`]. Missing is fine.
pub fn delete(path: &Path) -> io::Result<()> {
    match unmount(path) {
        Ok(()) => {}
        // EINVAL: not a mount point (a leftover file); ENOENT: gone.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a network namespace is mounted at `path` (the file is on nsfs,
/// not a leftover plain file).
pub fn is_mounted(path: &Path) -> bool {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    let Ok(p) = c_path(path) else { return false };
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let rc = unsafe { libc::statfs(p.as_ptr(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == NSFS_MAGIC
}

fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare(2) affects only the calling (dedicated) thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("unshare: {err}")));
    }
    Ok(())
}

fn loopback_up() -> io::Result<()> {
    /// The kernel registers loopback first in every namespace.
    const LOOPBACK_IFINDEX: u32 = 1;
    let mut sock = Socket::open(libc::NETLINK_ROUTE)?;
    link::set_up(&mut sock, LOOPBACK_IFINDEX)
        .map_err(|e| io::Error::other(format!("loopback up: {e}")))
}

fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    let (src, dst) = (c_path(source)?, c_path(target)?);
    // SAFETY: valid NUL-terminated paths; null fstype and data are allowed
    // for MS_BIND.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("bind-mount namespace on {}: {err}", target.display()),
        ));
    }
    Ok(())
}

fn unmount(path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
