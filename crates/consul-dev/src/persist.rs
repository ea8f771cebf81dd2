//! `--data-dir`: the whole store as one JSON snapshot, replaced atomically (temp file, fsync,
//! rename) after every write, so the index never goes backwards across restarts.
//!
//! Must not decide what is persisted (the `serde(skip)` marks in `crate::state` do).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::state::Store;
use crate::DevError;

const SNAPSHOT: &str = "consul-dev-state.json";

/// Path of the snapshot inside `dir`.
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT)
}

/// Loads the snapshot from `dir`, `None` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Store>, DevError> {
    let path = snapshot_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut store: Store = serde_json::from_slice(&bytes)
                .map_err(|e| DevError::Snapshot(path, e.to_string()))?;
            store.kv.rebuild();
            Ok(Some(store))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DevError::Io(path, e)),
    }
}

/// Writes the snapshot atomically.
pub fn save(dir: &Path, store: &Store) -> Result<(), DevError> {
    let path = snapshot_path(dir);
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    let bytes =
        serde_json::to_vec(store).map_err(|e| DevError::Snapshot(path.clone(), e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| DevError::Io(path.clone(), e))
}
