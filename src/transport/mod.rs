//! Transport, local side: the mailbox folders (SPEC §1.1) and the moves of inbound
//! files between them (`in/` -> `archive/DATE/`, `failed/`, `quarantine/`).
//! The SFTP transport builds on these folders.
//!
//! Owns the folder layout. Must never follow a symbolic link, never copy an inbound
//! file (it is renamed, so it exists in exactly one place), and never delete one
//! except by the archive retention.

pub mod sftp;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::Config;
use crate::emit::ensure_dir;

/// The folders of every mailbox.
pub const FOLDERS: &[&str] = &["in", "out", "archive", "failed", "quarantine"];

/// Creates every partner's mailbox folders (mode 0700) when missing.
pub fn ensure_mailboxes(config: &Config) -> io::Result<()> {
    for partner in &config.partners {
        for folder in FOLDERS {
            ensure_dir(&config.folder(&partner.mailbox, folder))?;
        }
    }
    for remote in &config.sftp {
        ensure_dir(&config.folder(&remote.mailbox, "out/sent"))?;
    }
    Ok(())
}

/// A name not yet used in `dir`: `name`, else `name.1`, `name.2`, ...
pub fn free_name(dir: &Path, name: &OsStr) -> OsString {
    if fs::symlink_metadata(dir.join(name)).is_err() {
        return name.to_os_string();
    }
    (1u32..)
        .map(|i| {
            let mut candidate = name.to_os_string();
            candidate.push(format!(".{i}"));
            candidate
        })
        .find(|c| fs::symlink_metadata(dir.join(c)).is_err())
        .unwrap_or_else(|| name.to_os_string())
}

/// Moves `from_dir/name` to `to_dir/to_name` (creating `to_dir`), making a regular
/// file mode 0600 first. The caller flushes the folders (one `syncfs` for a batch).
/// Succeeds when the source is already gone and the destination exists (a move
/// finished before a crash).
pub fn move_entry(from_dir: &Path, name: &OsStr, to_dir: &Path, to_name: &OsStr) -> io::Result<()> {
    let from = from_dir.join(name);
    let to = to_dir.join(to_name);
    let meta = match fs::symlink_metadata(&from) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&to).is_ok() => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        fs::set_permissions(&from, fs::Permissions::from_mode(0o600))?;
    }
    ensure_dir(to_dir)?;
    fs::rename(&from, &to)
}

/// Name bytes as stored in the ledger.
pub fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Ledger bytes back to a name.
pub fn name_from(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}
