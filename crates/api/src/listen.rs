//! The server side of hostnet's Unix sockets (hostnetd's API, the Docker
//! driver's plugin socket): refuse to steal a socket another process is
//! serving, replace a stale one, and let only root and the socket's group
//! in.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds `path` (non-blocking, mode 0660); `who` names the kind of server
/// in the error when a live one already serves it.
pub fn bind_socket(path: &Path, who: &str) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another {who} is serving {}: stop it first",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    Ok(listener)
}
