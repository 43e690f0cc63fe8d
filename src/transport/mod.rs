//! Transport, local side: the mailbox folders (SPEC §1.1), the checks of their layout
//! at start (§6.6), the root's owner marker, and the moves of inbound files between
//! folders (`in/` -> `archive/DATE/`, `failed/`, `quarantine/`). The SFTP transport
//! builds on these folders.
//!
//! Owns the folder layout and the root marker. Every folder below the root is reached
//! through [`fsutil::Dir`] handles (a symbolic link is refused, never followed). Must
//! never copy an inbound file (it is renamed, so it exists in exactly one place),
//! never delete one except by the archive retention, and never change a mode through
//! a path.

pub(crate) mod mesh;
pub(crate) mod sftp;

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use tracing::warn;

use crate::config::{Config, ConfigError};
use crate::fsutil::{self, Dir, Kind};

/// The folders of every mailbox.
pub(crate) const FOLDERS: &[&str] = &["in", "out", "archive", "failed", "quarantine"];

/// The file that says which database a mailbox root belongs to (§6.6).
pub(crate) const ROOT_MARKER: &str = ".cpis-hub-root";

/// Opens the mailbox root (creating it, 0700, when missing).
pub(crate) fn open_root(config: &Config) -> io::Result<Dir> {
    fsutil::ensure_dir(&config.hub.root)?;
    Dir::open(&config.hub.root)
}

/// `<root>/<MAILBOX>/<folder>` (`folder` may be `archive/2026-11-22` or `out/sent`),
/// every component a real folder.
pub(crate) fn folder(root: &Dir, mailbox: &str, folder: &str) -> io::Result<Dir> {
    root.sub(mailbox)?.sub_path(folder)
}

/// Like [`folder`], creating what is missing (0700).
pub(crate) fn create_folder(root: &Dir, mailbox: &str, folder: &str) -> io::Result<Dir> {
    root.create_dir(mailbox, 0o700)?.create_path(folder, 0o700)
}

/// The hub's files waiting in a partner's `out/` for a transport (SFTP upload, MESH
/// send): regular files, temporary names aside, sorted by name.
pub(crate) fn waiting_files(out_dir: &Dir) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = out_dir
        .entries()?
        .into_iter()
        .filter(|(_, info)| info.kind == Kind::File)
        .filter_map(|(n, _)| n.to_str().map(str::to_string))
        .filter(|n| !crate::intake::is_temporary(n.as_bytes()))
        .collect();
    names.sort();
    Ok(names)
}

/// Whether a partner's `out/` holds files waiting for a transport.
pub(crate) fn has_outbound(config: &Config, mailbox: &str) -> bool {
    std::fs::read_dir(config.folder(mailbox, "out"))
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_type().is_ok_and(|t| t.is_file())
                    && !crate::intake::is_temporary(e.file_name().as_encoded_bytes())
            })
        })
        .unwrap_or(false)
}

/// A mailbox whose folders cannot be used (replaced by a link, not a folder...).
#[derive(Debug)]
pub(crate) struct MailboxFault {
    pub mailbox: String,
    pub error: io::Error,
}

/// Creates every partner's mailbox folders (mode 0700) when missing. A mailbox whose
/// folders are unusable is returned, so that it stops only its own partner.
pub(crate) fn ensure_mailboxes(config: &Config) -> io::Result<Vec<MailboxFault>> {
    let root = open_root(config)?;
    let mut faults = Vec::new();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    for partner in &config.partners {
        wanted.extend(FOLDERS.iter().map(|f| (partner.mailbox.as_str(), *f)));
    }
    for remote in &config.sftp {
        wanted.push((remote.mailbox.as_str(), "out/sent"));
    }
    for (mailbox, folder) in wanted {
        if faults.iter().any(|f: &MailboxFault| f.mailbox == mailbox) {
            continue;
        }
        if let Err(error) = create_folder(&root, mailbox, folder) {
            warn!(event = "mailbox_unusable", mailbox = %mailbox, error = %error, "this partner's files wait until its folders are real folders again");
            faults.push(MailboxFault {
                mailbox: mailbox.to_string(),
                error,
            });
        }
    }
    Ok(faults)
}

/// A folder under the mailbox root that is no configured partner's mailbox, and how
/// many files wait in it (in its `in/`, or in itself): nobody will ever take them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Unconfigured {
    pub folder: String,
    pub files: u64,
}

/// The folders under the root that are no configured mailbox (the hub's own dot
/// folders aside), with the files left in them.
pub(crate) fn unconfigured_mailboxes(config: &Config) -> Vec<Unconfigured> {
    let Ok(root) = Dir::open(&config.hub.root) else {
        return Vec::new();
    };
    let Ok(entries) = root.entries() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, info) in entries {
        let text = name.to_string_lossy().into_owned();
        if info.kind != Kind::Dir || text.starts_with('.') || config.partner(&text).is_some() {
            continue;
        }
        let Ok(dir) = root.sub(&name) else { continue };
        let count = |d: &Dir| {
            d.entries()
                .map(|e| e.iter().filter(|(_, i)| i.kind != Kind::Dir).count() as u64)
                .unwrap_or(0)
        };
        let files = count(&dir) + dir.sub("in").map(|d| count(&d)).unwrap_or(0);
        found.push(Unconfigured {
            folder: text,
            files,
        });
    }
    found.sort_by(|a, b| a.folder.cmp(&b.folder));
    found
}

/// A name not yet used in `dir`: `name`, else `name.1`, `name.2`, ...
pub(crate) fn free_name(dir: &Dir, name: &OsStr) -> OsString {
    let free = |n: &OsStr| matches!(dir.stat(n), Ok(None));
    if free(name) {
        return name.to_os_string();
    }
    (1u32..)
        .map(|i| {
            let mut candidate = name.to_os_string();
            candidate.push(format!(".{i}"));
            candidate
        })
        .find(|c| free(c))
        .unwrap_or_else(|| name.to_os_string())
}

/// Moves `from/name` to `to/to_name` by renaming the entry (whatever it is: a link is
/// moved, not followed), then, in the hub's own folder where no partner can swap it,
/// makes a regular file with one link mode 0600 through its descriptor. The caller
/// flushes the folders (one `syncfs` for a batch). Succeeds when the source is already
/// gone and the destination exists (a move finished before a crash).
pub(crate) fn move_entry(from: &Dir, name: &OsStr, to: &Dir, to_name: &OsStr) -> io::Result<()> {
    match from.rename(name, to, to_name) {
        Ok(()) => {}
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && matches!(to.stat(to_name), Ok(Some(_))) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    }
    match to.open_read(to_name) {
        Ok((file, info)) if info.kind == Kind::File && info.links == 1 => {
            fsutil::set_mode(&file, 0o600)
        }
        Ok((_, info)) => {
            warn!(event = "moved_entry_not_plain", folder = %to.path().display(), kind = info.kind.describe(), links = info.links, "left as it is: its mode is not changed");
            Ok(())
        }
        // A link or something that cannot be opened: moved, never followed.
        Err(_) => Ok(()),
    }
}

/// Name bytes as stored in the ledger.
pub(crate) fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Ledger bytes back to a name.
pub(crate) fn name_from(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}

// ---------------------------------------------------------------------------
// Checks at start (§6.6): refused with the key named, exit 2
// ---------------------------------------------------------------------------

fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// `path` made absolute and free of `.` and `..` (lexically), for comparing places.
fn normal(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where a path really is: its longest existing ancestor resolved, the rest appended.
fn real_place(path: &Path) -> PathBuf {
    let path = normal(path);
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path,
        }
    }
}

/// The layout rules of §6.6 checked before a hub that writes starts: the database
/// and its lock outside the mailbox root (a partner folder must never be able to
/// reach them), no mailbox folder a symbolic link, the root and mailbox folders not
/// writable by everyone.
pub(crate) fn check_layout(config: &Config) -> Result<(), ConfigError> {
    let root = real_place(&config.hub.root);
    for (key, path) in [
        ("hub.database", config.hub.database.clone()),
        ("hub.database", config.lock_path()),
    ] {
        if real_place(&path).starts_with(&root) {
            return Err(key_error(
                key,
                format!(
                    "{} is inside the mailbox root {} (hub.root): partners' folders are there; put the database outside it",
                    path.display(),
                    config.hub.root.display()
                ),
            ));
        }
    }
    if let Ok(meta) = std::fs::metadata(&config.hub.root) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(key_error(
                "hub.root",
                format!(
                    "{} is writable by every user: chmod o-w it (mailbox folders must be reachable by their own partner only)",
                    config.hub.root.display()
                ),
            ));
        }
    } else {
        return Ok(()); // created at start, 0700
    }
    let Ok(root_dir) = Dir::open(&config.hub.root) else {
        return Ok(());
    };
    for partner in &config.partners {
        let key = format!("{}.mailbox", partner.config_key);
        let mut dir_path = PathBuf::from(&partner.mailbox);
        let check = |info: Option<fsutil::Info>, shown: &Path| -> Result<bool, ConfigError> {
            match info {
                None => Ok(false),
                Some(i) if i.kind == Kind::Symlink => Err(key_error(
                    &key,
                    format!(
                        "{} is a symbolic link: a mailbox folder must be a real folder (a link could send one partner's files to another)",
                        config.hub.root.join(shown).display()
                    ),
                )),
                Some(i) if i.kind != Kind::Dir => Err(key_error(
                    &key,
                    format!("{} is {}, not a folder", config.hub.root.join(shown).display(), i.kind.describe()),
                )),
                Some(i) if i.world_writable() => Err(key_error(
                    &key,
                    format!(
                        "{} is writable by every user: chmod o-w it",
                        config.hub.root.join(shown).display()
                    ),
                )),
                Some(_) => Ok(true),
            }
        };
        let io_err = |e: io::Error| key_error(&key, e.to_string());
        if !check(root_dir.stat(&partner.mailbox).map_err(io_err)?, &dir_path)? {
            continue;
        }
        let mailbox_dir = root_dir.sub(&partner.mailbox).map_err(io_err)?;
        for folder in FOLDERS.iter().copied().chain(["out/sent"]) {
            let (parent, name) = match folder.split_once('/') {
                Some((p, n)) => match mailbox_dir.sub(p) {
                    Ok(d) => (Some(d), n),
                    Err(_) => continue, // its parent was checked (or is missing)
                },
                None => (None, folder),
            };
            let info = parent
                .as_ref()
                .unwrap_or(&mailbox_dir)
                .stat(name)
                .map_err(io_err)?;
            dir_path = Path::new(&partner.mailbox).join(folder);
            check(info, &dir_path)?;
        }
    }
    Ok(())
}

/// Marks the mailbox root as this database's, or refuses when another database
/// marked it first (§6.6): two hubs never write sequences or FULL alerts into the
/// same partners' folders.
pub(crate) fn claim_root(config: &Config, database_id: &str) -> Result<(), ConfigError> {
    let root = open_root(config).map_err(|e| {
        key_error(
            "hub.root",
            format!("cannot open {}: {e}", config.hub.root.display()),
        )
    })?;
    let ours = format!(
        "database-id={database_id}\ndatabase={}\n",
        normal(&config.hub.database).display()
    );
    let marker = config.hub.root.join(ROOT_MARKER);
    let unreadable = |e: io::Error| {
        key_error(
            "hub.root",
            format!("cannot read the root marker {}: {e}", marker.display()),
        )
    };
    match root.open_read(ROOT_MARKER) {
        Ok((file, info)) if info.kind == Kind::File => {
            let mut text = String::new();
            file.take(4096)
                .read_to_string(&mut text)
                .map_err(unreadable)?;
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                    .unwrap_or("")
                    .to_string()
            };
            if field("database-id") == database_id {
                return Ok(());
            }
            Err(key_error(
                "hub.root",
                format!(
                    "the mailbox root {} belongs to another database: {} (id {}), not this hub's {} (id {database_id}). \
                     Point hub.root at this hub's own mailboxes; if this database replaced that one on purpose, remove {} (a restore from `cpis-hub backup` keeps the id and needs nothing)",
                    config.hub.root.display(),
                    field("database"),
                    field("database-id"),
                    normal(&config.hub.database).display(),
                    marker.display()
                ),
            ))
        }
        Ok((_, info)) => Err(key_error(
            "hub.root",
            format!(
                "{} is {}: remove it",
                marker.display(),
                info.kind.describe()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let write = || -> io::Result<()> {
                let mut file = root.create_new(ROOT_MARKER, 0o600)?;
                file.write_all(ours.as_bytes())?;
                file.sync_all()?;
                root.sync()
            };
            match write() {
                Ok(()) => Ok(()),
                // Another hub raced us to it: read what it wrote.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    claim_root(config, database_id)
                }
                Err(e) => Err(key_error(
                    "hub.root",
                    format!("cannot write the root marker {}: {e}", marker.display()),
                )),
            }
        }
        Err(e) => Err(unreadable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_place_resolves_what_exists_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("a")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("link")).unwrap();
        assert_eq!(real_place(&real.join("link/x/../y")), real.join("a/y"));
        assert_eq!(real_place(&real.join("new/db")), real.join("new/db"));
    }
}
