//! Outbound files (SPEC §4): names, the CSV and XML writers shared by every
//! format, and atomic publication: files are staged under temporary dot-names,
//! then a batch is flushed (`syncfs`), renamed into place and flushed again.
//!
//! Owns nothing but the bytes it writes. Must never leave a partial file under a
//! final name, never write a BOM, and never render anything that is not already
//! committed in the index (so that a re-render after a crash is byte-identical).

pub mod render;
mod table;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

pub use table::TableWriter;

/// `RECEIPT_X26LA101_20261122T100000Z_000001` (without extension).
pub fn stem(kind: &str, mailbox: &str, stamp: &str, sequence: u64) -> String {
    format!("{kind}_{mailbox}_{stamp}_{sequence:06}")
}

/// Creates a folder (and parents) with mode 0700 when missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// Flushes a folder's entries (a rename is durable only once its folder is).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file written under a temporary name, not yet flushed nor renamed: many are
/// published together by [`publish`] (one flush for the batch instead of one each).
#[derive(Debug)]
pub struct Staged {
    tmp: std::path::PathBuf,
    dst: std::path::PathBuf,
}

/// Writes `name` in `dir` under a temporary dot-name, without flushing.
pub fn stage(
    dir: &Path,
    name: &str,
    mode: u32,
    body: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<Staged> {
    ensure_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        body(&mut file)
    })();
    match result {
        Ok(()) => Ok(Staged {
            tmp,
            dst: dir.join(name),
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Flushes every file system under `root` (`syncfs`): one flush for a batch.
pub fn syncfs(root: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(root)?;
    // SAFETY: syncfs takes a file descriptor we own for the duration of the call.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Publishes staged files atomically and durably, in order: flush their data, rename
/// each into place (a reader never sees a partial file), flush the folders.
pub fn publish(root: &Path, staged: &[Staged]) -> io::Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    syncfs(root)?;
    for s in staged {
        fs::rename(&s.tmp, &s.dst)?;
    }
    syncfs(root)
}
