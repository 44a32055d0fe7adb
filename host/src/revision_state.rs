//! The revision last accepted, kept in a small state file
//! (`snapshot.state_file`) so that it survives a restart: after one, a
//! snapshot older than it — however validly signed — is refused from every
//! source, and one of the same revision only if it is the same snapshot.
//! Only a forced push goes below it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the state file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedRevision {
    /// The revision.
    pub revision: u64,
    /// Its body's SHA-256 (hex).
    pub sha256: String,
}

/// The state file.
#[derive(Clone, Debug)]
pub struct RevisionState {
    path: PathBuf,
}

impl RevisionState {
    /// The state kept at `path`.
    pub fn new(path: &Path) -> Self {
        RevisionState {
            path: path.to_path_buf(),
        }
    }

    /// The revision last accepted; `None` before the first. An unreadable
    /// or corrupt file is an error: the gateway must not guess its floor.
    pub fn load(&self) -> Result<Option<AcceptedRevision>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "snapshot.state_file {}: not a Portcullis state file ({e}); fix or remove it",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("snapshot.state_file {}: {e}", self.path.display())),
        }
    }

    /// Records `accepted`, atomically (written beside, then renamed).
    pub fn store(&self, accepted: &AcceptedRevision) -> Result<(), String> {
        let json = serde_json::to_vec(accepted).map_err(|e| e.to_string())?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("snapshot.state_file {}: {e}", self.path.display()))
    }
}
