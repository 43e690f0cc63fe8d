//! Download: remote `remote_in` to the local `in/`, each step recorded before the next.

use crate::clock::Clock;
use crate::config::{Config, SftpRemote};
use crate::fsutil::Dir;
use crate::index::{self, Index};
use crate::intake::is_temporary;
use crate::model::DownloadState;
use ssh2::{RenameFlags, Sftp};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use tracing::info;

use super::{list, local, remote_path, ssh, Listings, RemoteFile, SftpError};

/// Downloads one remote file into `in/` (atomically, size checked, durable): written
/// to a dot-temporary name created anew (`O_EXCL | O_NOFOLLOW`: a link planted there
/// is never followed), fsynced, renamed into place.
fn download_one(
    sftp: &Sftp,
    remote: &SftpRemote,
    file: &RemoteFile,
    in_dir: &Dir,
) -> Result<(), SftpError> {
    let tmp = format!(".{}.sftp.part", file.name);
    let tmp_path = in_dir.path().join(&tmp);
    let result = (|| {
        let mut src = sftp
            .open(remote_path(&remote.remote_in, &file.name))
            .map_err(ssh(format!("opening {}", file.name)))?;
        if in_dir.stat(&tmp).map_err(local(&tmp_path))?.is_some() {
            in_dir.remove_file(&tmp).map_err(local(&tmp_path))?;
        }
        let mut dst = in_dir.create_new(&tmp, 0o600).map_err(local(&tmp_path))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = src.read(&mut buf).map_err(|source| SftpError::Transfer {
                what: format!("reading {}", file.name),
                source,
            })?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n]).map_err(local(&tmp_path))?;
            got += n as u64;
        }
        if got != file.size {
            return Err(SftpError::ShortDownload {
                name: file.name.clone(),
                got,
                want: file.size,
            });
        }
        dst.sync_all().map_err(local(&tmp_path))?;
        drop(dst);
        in_dir
            .rename(&tmp, in_dir, &file.name)
            .map_err(local(&tmp_path))?;
        in_dir.sync().map_err(local(in_dir.path()))
    })();
    if result.is_err() {
        let _ = in_dir.remove_file(&tmp);
    }
    result
}

/// Removes a downloaded file from the remote (or moves it to `processed/`).
fn retire(sftp: &Sftp, remote: &SftpRemote, name: &str) -> Result<(), SftpError> {
    let path = remote_path(&remote.remote_in, name);
    if remote.move_to_processed {
        let dir = remote_path(&remote.remote_in, "processed");
        if sftp.stat(&dir).is_err() {
            sftp.mkdir(&dir, 0o700)
                .map_err(ssh(format!("creating {}", dir.display())))?;
        }
        sftp.rename(
            &path,
            &dir.join(name),
            Some(RenameFlags::OVERWRITE | RenameFlags::ATOMIC | RenameFlags::NATIVE),
        )
        .map_err(ssh(format!("moving {name} to processed/")))
    } else {
        match sftp.unlink(&path) {
            Ok(()) => Ok(()),
            // Already gone (a retire finished before a crash): nothing to do.
            Err(_) if sftp.stat(&path).is_err() => Ok(()),
            Err(e) => Err(ssh(format!("removing {name}"))(e)),
        }
    }
}

/// Takes every complete file from the remote's `remote_in` into the local `in/`.
pub(crate) fn download(
    sftp: &Sftp,
    remote: &SftpRemote,
    config: &Config,
    index: &mut Index,
    now: &Clock,
    listings: &mut Listings,
) -> Result<Vec<String>, SftpError> {
    let in_path = config.folder(&remote.mailbox, "in");
    let in_dir = crate::transport::open_root(config)
        .and_then(|root| crate::transport::create_folder(&root, &remote.mailbox, "in"))
        .map_err(local(&in_path))?;
    remove_partial_copies(&in_dir).map_err(local(&in_path))?;
    let files = list(sftp, &remote.remote_in)?;
    let by_name: HashMap<&str, &RemoteFile> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut ledger = Ledger {
        index,
        mailbox: &remote.mailbox,
        at: now.rfc3339(),
    };

    // Finish what a crash left: local copies durable, remote not yet retired.
    for (name, size, mtime) in index::runs::sftp_local_pending(ledger.index.db(), ledger.mailbox)? {
        if by_name
            .get(name.as_str())
            .is_some_and(|f| f.size == size && f.mtime == mtime)
        {
            retire(sftp, remote, &name)?;
        }
        let f = RemoteFile { name, size, mtime };
        ledger.set(&f, DownloadState::Done)?;
    }

    let order = download_order(&files, listings);
    listings.sizes = files.iter().map(|f| (f.name.clone(), f.size)).collect();

    let mut done = Vec::new();
    for f in order {
        let state = index::runs::sftp_download_state(
            ledger.index.db(),
            ledger.mailbox,
            &f.name,
            f.size,
            f.mtime,
        )?;
        if state != Some(DownloadState::Local) {
            if in_dir.stat(&f.name).map_err(local(&in_path))?.is_some() {
                // The previous file of that name is still waiting to be processed.
                continue;
            }
            ledger.set(f, DownloadState::Downloading)?;
            download_one(sftp, remote, f, &in_dir)?;
            ledger.set(f, DownloadState::Local)?;
            info!(event = "sftp_downloaded", mailbox = %remote.mailbox, file = %f.name, bytes = f.size);
        }
        retire(sftp, remote, &f.name)?;
        ledger.set(f, DownloadState::Done)?;
        done.push(f.name.clone());
    }
    Ok(done)
}

/// Partial copies left by a stop or a crash: nothing else writes these names.
fn remove_partial_copies(in_dir: &Dir) -> io::Result<()> {
    for (name, _) in in_dir.entries()? {
        let text = name.to_string_lossy();
        if text.starts_with('.') && text.ends_with(".sftp.part") {
            let _ = in_dir.remove_file(&name);
        }
    }
    Ok(())
}

/// What of a listing to take now, in order: each MESH `.ctl` after its `.dat`, and
/// plain files whose size is the same as at the previous listing (complete).
fn download_order<'a>(files: &'a [RemoteFile], listings: &Listings) -> Vec<&'a RemoteFile> {
    let mut order: Vec<&RemoteFile> = Vec::new();
    for f in files {
        if is_temporary(f.name.as_bytes()) || f.name == "processed" {
            continue;
        }
        let lower = f.name.to_ascii_lowercase();
        if lower.ends_with(".dat") {
            continue; // taken with its .ctl
        }
        if lower.ends_with(".ctl") {
            // Its .dat: the same stem, the extension in any case (X.DAT + X.CTL).
            let stem = &f.name[..f.name.len() - 4];
            if let Some(d) = files.iter().find(|d| {
                d.name.len() == f.name.len()
                    && d.name.starts_with(stem)
                    && d.name[stem.len()..].eq_ignore_ascii_case(".dat")
            }) {
                order.push(d);
            }
            order.push(f);
            continue;
        }
        if listings.sizes.get(&f.name) == Some(&f.size) {
            order.push(f);
        }
    }
    order
}

/// The download ledger of one remote: each step recorded in its own transaction.
struct Ledger<'a> {
    index: &'a mut Index,
    mailbox: &'a str,
    at: String,
}

impl Ledger<'_> {
    fn set(&mut self, f: &RemoteFile, state: DownloadState) -> Result<(), SftpError> {
        let (mailbox, at) = (self.mailbox, &self.at);
        self.index.write(|tx| {
            index::runs::set_sftp_download(tx, mailbox, &f.name, f.size, f.mtime, state, at)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size,
            mtime: 0,
        }
    }

    fn names(order: Vec<&RemoteFile>) -> Vec<&str> {
        order.into_iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_plain_file_waits_until_its_size_is_the_same_at_two_listings() {
        let files = [file("a.csv", 10)];
        let mut listings = Listings::default();
        assert!(download_order(&files, &listings).is_empty());
        listings.sizes.insert("a.csv".into(), 5);
        assert!(
            download_order(&files, &listings).is_empty(),
            "still growing"
        );
        listings.sizes.insert("a.csv".into(), 10);
        assert_eq!(names(download_order(&files, &listings)), ["a.csv"]);
    }

    #[test]
    fn a_ctl_comes_after_its_dat_whatever_the_case_of_the_extension() {
        let files = [
            file("X.CTL", 1),
            file("x.dat", 9),
            file("X.DAT", 9),
            file("lonely.dat", 9),
        ];
        let order = download_order(&files, &Listings::default());
        assert_eq!(names(order), ["X.DAT", "X.CTL"]);
    }

    #[test]
    fn temporary_names_and_the_processed_folder_are_never_taken() {
        let files = [
            file(".a.csv", 1),
            file("b.csv.part", 1),
            file("processed", 0),
        ];
        let mut listings = Listings::default();
        for f in &files {
            listings.sizes.insert(f.name.clone(), f.size);
        }
        assert!(download_order(&files, &listings).is_empty());
    }
}
