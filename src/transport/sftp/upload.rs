//! Upload: the hub's own files in the local `out/` to the remote, then to `out/sent/`.

use crate::config::{Config, Framing, SftpRemote};
use crate::fsutil::{self};
use ssh2::{RenameFlags, Sftp};
use std::io::{self, Read, Write};
use tracing::{info, warn};

use super::{local, remote_path, ssh, SftpError};

/// Uploads every outbound file waiting in the local `out/`, then moves it to
/// `out/sent/`. Only the hub's own files go: each is opened without following a link
/// and must be a regular file with one link, owned by the hub's user (a partner that
/// can write `out/` cannot make the hub send anything else).
pub(crate) fn upload(
    sftp: &Sftp,
    remote: &SftpRemote,
    config: &Config,
) -> Result<Vec<String>, SftpError> {
    let out_path = config.folder(&remote.mailbox, "out");
    let root = crate::transport::open_root(config).map_err(local(&config.hub.root))?;
    let out_dir = match crate::transport::folder(&root, &remote.mailbox, "out") {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(local(&out_path)(e)),
    };
    let mesh = config
        .partner(&remote.mailbox)
        .is_some_and(|p| p.framing == Framing::Mesh);
    let names = crate::transport::waiting_files(&out_dir).map_err(local(&out_path))?;
    let mut batches: Vec<Vec<String>> = Vec::new();
    for name in &names {
        if name.ends_with(".ctl") {
            continue;
        }
        if name.ends_with(".dat") || mesh {
            let ctl = format!("{}.ctl", name.trim_end_matches(".dat"));
            if names.contains(&ctl) {
                batches.push(vec![name.clone(), ctl]);
            }
            // A .dat whose .ctl is not written yet waits for the next round.
        } else {
            batches.push(vec![name.clone()]);
        }
    }
    let mut uploaded = Vec::new();
    'batches: for batch in batches {
        let mut opened = Vec::new();
        for name in &batch {
            let path = out_path.join(name);
            let (src, info) = out_dir.open_read(name).map_err(local(&path))?;
            if info.kind != fsutil::Kind::File || info.links != 1 || info.uid != fsutil::euid() {
                warn!(event = "sftp_not_uploaded", mailbox = %remote.mailbox, file = %name, "not a file the hub wrote (a link, another owner, or more than one name): left in out/");
                continue 'batches;
            }
            opened.push(src);
        }
        for (name, mut src) in batch.iter().zip(opened) {
            let path = out_path.join(name);
            let tmp = remote_path(&remote.remote_out, &format!(".{name}.part"));
            let dst = remote_path(&remote.remote_out, name);
            let mut file = sftp
                .create(&tmp)
                .map_err(ssh(format!("creating {}", tmp.display())))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = src.read(&mut buf).map_err(local(&path))?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])
                    .map_err(|source| SftpError::Transfer {
                        what: format!("writing {}", tmp.display()),
                        source,
                    })?;
            }
            let _ = file.fsync();
            drop(file);
            sftp.rename(
                &tmp,
                &dst,
                Some(RenameFlags::OVERWRITE | RenameFlags::ATOMIC | RenameFlags::NATIVE),
            )
            .map_err(ssh(format!("renaming {}", dst.display())))?;
        }
        // Delivered: move the batch (the .ctl last, as it went) to out/sent/.
        let sent_dir = crate::transport::create_folder(&root, &remote.mailbox, "out/sent")
            .map_err(local(&out_path.join("sent")))?;
        for name in &batch {
            out_dir
                .rename(name, &sent_dir, name)
                .map_err(local(&out_path))?;
            info!(event = "sftp_uploaded", mailbox = %remote.mailbox, file = %name);
            uploaded.push(name.clone());
        }
        sent_dir.sync().map_err(local(sent_dir.path()))?;
        out_dir.sync().map_err(local(&out_path))?;
    }
    Ok(uploaded)
}
