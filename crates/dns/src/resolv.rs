//! The host's upstream resolvers: the `nameserver` lines of its
//! resolv.conf, read again when the file changes.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// How often the file's metadata is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// The upstream servers in resolv.conf text, port 53, in order. Addresses
/// in `exclude` (the proxy's own) are left out, so the proxy never
/// forwards to itself.
pub fn nameservers(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A link-local IPv6 address with a scope (`fe80::1%eth0`) is not
        // reachable from the proxy's namespace by that name; skip it.
        .filter_map(|addr| addr.parse::<IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .fold(Vec::new(), |mut list, a| {
            if !list.contains(&a) {
                list.push(a);
            }
            list
        })
}

/// What identifies a version of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// resolv.conf, watched.
pub struct Upstreams {
    path: PathBuf,
    checked: Option<Instant>,
    stamp: Option<Stamp>,
    servers: Vec<SocketAddr>,
}

impl Upstreams {
    /// Watch `path` (normally `/etc/resolv.conf`).
    pub fn new(path: PathBuf) -> Self {
        Upstreams {
            path,
            checked: None,
            stamp: None,
            servers: Vec::new(),
        }
    }

    /// The current servers, reading the file again if it changed since the
    /// last look (at most once a second). A missing file means none.
    pub fn current(&mut self, now: Instant, exclude: &[IpAddr]) -> Vec<SocketAddr> {
        let due = self
            .checked
            .is_none_or(|t| now.saturating_duration_since(t) >= RECHECK);
        if due {
            self.checked = Some(now);
            let stamp = std::fs::metadata(&self.path).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                Stamp {
                    modified: m.modified().ok(),
                    len: m.len(),
                    inode: m.ino(),
                }
            });
            if stamp != self.stamp || self.stamp.is_none() {
                self.stamp = stamp;
                let text = std::fs::read_to_string(&self.path).unwrap_or_default();
                let servers = nameservers(&text, exclude);
                if servers != self.servers {
                    log::info!("DNS upstreams from {}: {:?}", self.path.display(), servers);
                }
                self.servers = servers;
            }
        }
        self.servers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameserver_lines() {
        let text = "# comment\nsearch corp\nnameserver 192.0.2.53\nnameserver  2001:db8::53 \n\
                    nameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.53\n\
                    nameserver 10.88.0.1\noptions ndots:2\n";
        let exclude = ["10.88.0.1".parse().unwrap()];
        let got: Vec<String> = nameservers(text, &exclude)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.53:53", "[2001:db8::53]:53"]);
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("hostnet-dns-resolv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let mut u = Upstreams::new(path.clone());
        let t0 = Instant::now();
        assert_eq!(u.current(t0, &[]), ["192.0.2.1:53".parse().unwrap()]);
        // Replaced as resolvconf does: a new file renamed over the old one.
        let tmp = dir.join("new");
        std::fs::write(&tmp, "nameserver 192.0.2.2\nnameserver 192.0.2.3\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        // Not looked at again within a second.
        assert_eq!(u.current(t0, &[]).len(), 1);
        let later = t0 + RECHECK;
        assert_eq!(
            u.current(later, &[]),
            [
                "192.0.2.2:53".parse().unwrap(),
                "192.0.2.3:53".parse().unwrap()
            ]
        );
        std::fs::remove_file(&path).unwrap();
        assert!(u.current(later + RECHECK, &[]).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
