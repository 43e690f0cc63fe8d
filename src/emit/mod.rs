//! Outbound files (SPEC §4): names, the CSV and XML writers shared by every format,
//! and atomic publication. Every file is written in the hub's own staging folder
//! (`<root>/.staging`, 0700: no partner can write there), created with
//! `O_EXCL | O_NOFOLLOW` and its final mode from the start; a batch is flushed
//! (`syncfs`), renamed into the partners' folders (each reached without following a
//! link) and flushed again.
//!
//! Owns nothing but the bytes it writes and the staging folder. Must never leave a
//! partial file under a final name, never write a BOM, never create a file in a
//! folder a partner can write, and never render anything that is not already
//! committed in the index (so that a re-render after a crash is byte-identical). A
//! partner's folder that cannot take a file stops that partner's file only.

pub(crate) mod alerts;
mod ctl;
pub(crate) mod render;
mod table;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fsutil::{self, Dir};

pub(crate) use table::TableWriter;

/// The staging folder under the mailbox root.
pub(crate) const STAGING: &str = ".staging";

/// `RECEIPT_X26LA101_20261122T100000Z_000001` (without extension).
pub(crate) fn stem(kind: &str, mailbox: &str, stamp: &str, sequence: u64) -> String {
    format!("{kind}_{mailbox}_{stamp}_{sequence:06}")
}

/// The hub's staging folder, and the root the files are published under.
pub(crate) struct Staging {
    root: Dir,
    dir: Dir,
}

/// One file staged for `<root>/<mailbox>/<folder>/<name>`.
#[derive(Debug)]
pub(crate) struct Part {
    tmp: OsString,
    mailbox: String,
    folder: String,
    name: String,
}

/// The files of one outbound file (its data, a copy, a `.ctl`), published in order.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The outbound row they render.
    pub id: i64,
    pub parts: Vec<Part>,
}

/// An outbound file that could not be put in its partner's folder (it stays
/// reserved and is written again by the next pass).
#[derive(Debug)]
pub(crate) struct Undelivered {
    pub id: i64,
    pub mailbox: String,
    pub error: io::Error,
}

impl Staging {
    /// Opens (creating, 0700) the staging folder under the mailbox root.
    pub(crate) fn open(root: &Path) -> io::Result<Staging> {
        fsutil::ensure_dir(root)?;
        let root = Dir::open(root)?;
        let dir = root.create_dir(STAGING, 0o700)?;
        Ok(Staging { root, dir })
    }

    /// The mailbox root.
    pub(crate) fn root(&self) -> &Dir {
        &self.root
    }

    /// Removes what an interrupted pass left (everything staged is rendered again
    /// from the index).
    pub(crate) fn clear(&self) -> io::Result<()> {
        for (name, _) in self.dir.entries()? {
            self.dir.remove_tree(&name)?;
        }
        Ok(())
    }

    /// A new file in the staging folder, mode `mode` from its creation: its
    /// staging name and the open file.
    pub(crate) fn scratch(&self, label: &str, mode: u32) -> io::Result<(OsString, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let name = OsString::from(format!(
                "{}-{}-{label}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match self.dir.create_new(&name, mode) {
                Ok(file) => return Ok((name, file)),
                // Left by an earlier process with our pid: take it away and retry.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.dir.remove_tree(&name)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens a staged file for reading.
    pub(crate) fn open_staged(&self, name: &OsString) -> io::Result<File> {
        Ok(self.dir.open_read(name)?.0)
    }

    /// Removes a staged file.
    pub(crate) fn remove(&self, name: &OsString) -> io::Result<()> {
        self.dir.remove_file(name)
    }

    /// Writes `<mailbox>/<folder>/<name>` to a new staged file of mode `mode`.
    pub(crate) fn stage(
        &self,
        mailbox: &str,
        folder: &str,
        name: &str,
        mode: u32,
        body: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<Part> {
        let (tmp, mut file) = self.scratch(name, mode)?;
        match body(&mut file) {
            Ok(()) => Ok(Part {
                tmp,
                mailbox: mailbox.to_string(),
                folder: folder.to_string(),
                name: name.to_string(),
            }),
            Err(e) => {
                let _ = self.dir.remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Publishes staged files atomically and durably: one flush of their data, each
/// renamed into its partner's folder in order (a reader never sees a partial file; a
/// `.ctl` never appears before its `.dat`), one flush of the folders. A file whose
/// folder cannot take it is returned undelivered, and the rest of its parts are not
/// published; every other file is. An error is returned only when nothing could be
/// flushed at all.
pub(crate) fn publish(staging: &Staging, batch: Vec<Outgoing>) -> io::Result<Vec<Undelivered>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    staging.root.syncfs()?;
    let mut folders: HashMap<(String, String), io::Result<Dir>> = HashMap::new();
    let mut undelivered = Vec::new();
    for out in batch {
        let mailbox = out
            .parts
            .first()
            .map(|p| p.mailbox.clone())
            .unwrap_or_default();
        let mut parts = out.parts.into_iter();
        while let Some(part) = parts.next() {
            let folder = folders
                .entry((part.mailbox.clone(), part.folder.clone()))
                .or_insert_with(|| staging.root.sub(&part.mailbox)?.sub_path(&part.folder));
            let result = match folder {
                Ok(dir) => staging.dir.rename(&part.tmp, dir, &part.name).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{}: {e}", dir.path().join(&part.name).display()),
                    )
                }),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            if let Err(error) = result {
                for rest in std::iter::once(part).chain(parts.by_ref()) {
                    let _ = staging.dir.remove_file(&rest.tmp);
                }
                undelivered.push(Undelivered {
                    id: out.id,
                    mailbox,
                    error,
                });
                break;
            }
        }
    }
    staging.root.syncfs()?;
    Ok(undelivered)
}
