//! Which hostnet network each Docker network is, one small file per
//! network: Docker's later calls name only its own network ID.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A Docker network's hostnet network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The hostnet network's ID.
    pub hostnet: String,
    /// Created by this plugin (DeleteNetwork deletes it), or named by
    /// `windowsshim.hnsid` (left alone).
    pub owned: bool,
}

/// The records, under a directory of their own.
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    pub fn new(dir: PathBuf) -> Self {
        Networks { dir }
    }

    fn path(&self, docker_id: &str) -> Result<PathBuf, String> {
        if docker_id.is_empty() || !docker_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("NetworkID {docker_id:?} is not a Docker ID"));
        }
        Ok(self.dir.join(format!("{docker_id}.json")))
    }

    pub fn get(&self, docker_id: &str) -> Result<Option<NetworkRecord>, String> {
        let path = self.path(docker_id)?;
        match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn put(&self, docker_id: &str, record: &NetworkRecord) -> Result<(), String> {
        let path = self.path(docker_id)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let tmp = path.with_extension("tmp");
        let raw = serde_json::to_vec(record).expect("a record serializes");
        std::fs::write(&tmp, raw)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn remove(&self, docker_id: &str) -> Result<(), String> {
        match std::fs::remove_file(self.path(docker_id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ids_are_checked() {
        let dir = std::env::temp_dir().join(format!("hostnet-docker-state-{}", std::process::id()));
        let n = Networks::new(dir.clone());
        let r = NetworkRecord {
            hostnet: "A1".into(),
            owned: true,
        };
        assert_eq!(n.get("abc123").unwrap(), None);
        n.put("abc123", &r).unwrap();
        assert_eq!(n.get("abc123").unwrap(), Some(r));
        n.remove("abc123").unwrap();
        n.remove("abc123").unwrap();
        assert!(n.get("../etc/passwd").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
