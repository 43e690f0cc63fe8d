//! File-system primitives that never follow a link a partner could plant.
//!
//! A partner may write in its own `in/` and `out/` and may swap any entry there
//! between two system calls. So every folder below the mailbox root is reached by
//! [`Dir`] handles, one path component at a time with `O_NOFOLLOW` (a symbolic link
//! anywhere below the root is refused, never followed); files are opened relative to
//! those handles with `O_NOFOLLOW | O_NONBLOCK` (a FIFO cannot block the hub) and
//! checked on the open descriptor; files are created with `O_EXCL | O_NOFOLLOW`; moves
//! are `renameat` between handles; modes are changed on descriptors, never on paths.
//!
//! Owns nothing but the descriptors it hands out. Must never resolve a path below
//! the mailbox root through a symbolic link.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Mode, OFlags};

/// An open folder, and the path it was opened by (for messages only).
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What `lstat` (or `fstat`) says of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Info {
    pub kind: Kind,
    pub size: u64,
    pub modified: SystemTime,
    pub mode: u32,
    pub links: u64,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
}

/// The kinds of directory entries the hub tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    /// How a receipt names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a folder",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a FIFO, socket or device",
        }
    }
}

impl Info {
    // The field types of `stat` differ between targets.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> Info {
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => Kind::File,
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let modified = if st.st_mtime >= 0 {
            SystemTime::UNIX_EPOCH
                + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32 % 1_000_000_000)
        } else {
            SystemTime::UNIX_EPOCH
        };
        Info {
            kind,
            size: st.st_size.max(0) as u64,
            modified,
            mode: st.st_mode & 0o7777,
            links: st.st_nlink as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            uid: st.st_uid,
        }
    }

    /// Writable by users other than the owner and the group.
    pub(crate) fn world_writable(&self) -> bool {
        self.mode & 0o002 != 0
    }
}

/// `fstat` of an open file.
pub(crate) fn info(file: &impl AsFd) -> io::Result<Info> {
    Ok(Info::of(&rustix::fs::fstat(file)?))
}

/// Sets a file's mode through its descriptor.
pub(crate) fn set_mode(file: &impl AsFd, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(file, Mode::from_raw_mode(mode))?)
}

/// The effective user id of this process (the owner of what the hub creates).
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// A name that is one path component: not empty, no `/`, not `.` or `..`.
fn component(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') || b == b"." || b == b".." || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a single file name", name),
        ));
    }
    Ok(name)
}

impl Dir {
    /// Opens a folder named by the operator (the mailbox root, the database's
    /// folder): the path as configured, links in it followed.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path this folder was opened by (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `self/name`, which must be a folder and not a symbolic link.
    pub(crate) fn sub(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
        let name = component(name.as_ref())?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            dir_flags() | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| self.refused_link(name, e.into()))?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// `self/a/b/...` (components separated by `/`), none a symbolic link.
    pub(crate) fn sub_path(&self, rel: &str) -> io::Result<Dir> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let first = parts
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty folder path"))?;
        let mut dir = self.sub(first)?;
        for part in parts {
            dir = dir.sub(part)?;
        }
        Ok(dir)
    }

    /// Like [`Dir::sub_path`], creating missing folders with `mode` on the way.
    pub(crate) fn create_path(&self, rel: &str, mode: u32) -> io::Result<Dir> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let first = parts
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty folder path"))?;
        let mut dir = self.create_dir(first, mode)?;
        for part in parts {
            dir = dir.create_dir(part, mode)?;
        }
        Ok(dir)
    }

    /// `self/name` as a folder, created with `mode` when missing.
    pub(crate) fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<Dir> {
        let name = component(name.as_ref())?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.sub(name)
    }

    /// ELOOP / ENOTDIR from an `O_NOFOLLOW` open, said plainly (what the entry is).
    fn refused_link(&self, name: &OsStr, e: io::Error) -> io::Error {
        if !matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
            return e;
        }
        let path = self.path.join(name);
        match self.stat(name) {
            Ok(Some(i)) if i.kind == Kind::Symlink => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: refused, never followed",
                    path.display()
                ),
            ),
            Ok(Some(i)) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is {}", path.display(), i.kind.describe()),
            ),
            _ => e,
        }
    }

    /// `lstat` of `self/name`; `None` when there is no such entry.
    pub(crate) fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Info>> {
        let name = component(name.as_ref())?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Info::of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `fstat` of the folder itself.
    pub(crate) fn info(&self) -> io::Result<Info> {
        info(&self.fd)
    }

    /// Every entry (but `.` and `..`) with what `lstat` says of it; entries that
    /// vanish while listed are left out.
    pub(crate) fn entries(&self) -> io::Result<Vec<(OsString, Info)>> {
        let mut out = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            if let Some(info) = self.stat(name)? {
                out.push((name.to_os_string(), info));
            }
        }
        Ok(out)
    }

    /// Opens `self/name` for reading without following a link and without blocking
    /// on a FIFO; returns the file and what its descriptor says it is. The caller
    /// decides what to accept (see [`Info`]).
    pub(crate) fn open_read(&self, name: impl AsRef<OsStr>) -> io::Result<(File, Info)> {
        let name = component(name.as_ref())?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.refused_link(name, e.into()))?;
        let info = info(&fd)?;
        if info.kind == Kind::File {
            // Regular files never block; later reads need no special handling.
            rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        }
        Ok((File::from(fd), info))
    }

    /// Creates `self/name`, which must not exist (not even as a link), with `mode`
    /// from the start.
    pub(crate) fn create_new(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<File> {
        let name = component(name.as_ref())?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let file = File::from(fd);
        // The umask may have taken bits away; never added any.
        set_mode(&file, mode)?;
        Ok(file)
    }

    /// Renames `self/from` to `to/to_name`, replacing a file (or link) there; the
    /// entry itself moves, whatever it is (a link is not followed).
    pub(crate) fn rename(
        &self,
        from: impl AsRef<OsStr>,
        to: &Dir,
        to_name: impl AsRef<OsStr>,
    ) -> io::Result<()> {
        let (from, to_name) = (component(from.as_ref())?, component(to_name.as_ref())?);
        Ok(rustix::fs::renameat(&self.fd, from, &to.fd, to_name)?)
    }

    /// Removes the entry `self/name` (a file, link, FIFO...; not a folder).
    pub(crate) fn remove_file(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = component(name.as_ref())?;
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes `self/name` and everything below it, never following a link.
    pub(crate) fn remove_tree(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = component(name.as_ref())?;
        match self.stat(name)? {
            None => Ok(()),
            Some(i) if i.kind == Kind::Dir => {
                let sub = self.sub(name)?;
                for (child, _) in sub.entries()? {
                    sub.remove_tree(&child)?;
                }
                Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
            }
            Some(_) => self.remove_file(name),
        }
    }

    /// Flushes the folder's entries (a rename is durable once its folder is).
    pub(crate) fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Flushes the whole file system this folder is on (one flush for a batch).
    pub(crate) fn syncfs(&self) -> io::Result<()> {
        Ok(rustix::fs::syncfs(&self.fd)?)
    }
}

/// Creates a folder named by the operator (and its parents), mode 0700, when missing.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// A reader of a file through its descriptor at its own offset (`pread`): many
/// readers of one open file, each from the start, none disturbing another, and
/// never the file's name again.
#[derive(Debug, Clone)]
pub(crate) struct ReadAt {
    file: std::sync::Arc<File>,
    pos: u64,
}

impl ReadAt {
    pub(crate) fn new(file: std::sync::Arc<File>) -> ReadAt {
        ReadAt { file, pos: 0 }
    }
}

impl io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_link_anywhere_below_is_refused_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open(tmp.path()).unwrap();
        let a = root.create_path("A/out", 0o700).unwrap();
        std::fs::create_dir(tmp.path().join("B")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("A"), tmp.path().join("B/out")).unwrap();
        let e = root.sub_path("B/out").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("A/out/x")).unwrap();
        let e = a.open_read("x").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(
            a.create_new("x", 0o600).is_err(),
            "O_EXCL: a link is in the way"
        );
        assert_eq!(a.stat("x").unwrap().unwrap().kind, Kind::Symlink);
    }

    #[test]
    fn a_fifo_opens_without_blocking_and_says_what_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        rustix::fs::mkfifoat(&dir.fd, "f", Mode::from_raw_mode(0o600)).unwrap();
        let (_, info) = dir.open_read("f").unwrap();
        assert_eq!(info.kind, Kind::Other);
    }

    #[test]
    fn created_files_have_their_mode_from_the_start_and_readers_share_a_descriptor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut f = dir.create_new("a", 0o640).unwrap();
        f.write_all(b"hello").unwrap();
        assert_eq!(info(&f).unwrap().mode, 0o640);
        let (file, info) = dir.open_read("a").unwrap();
        assert_eq!((info.kind, info.links, info.size), (Kind::File, 1, 5));
        let file = std::sync::Arc::new(file);
        let (mut one, mut two) = (ReadAt::new(file.clone()), ReadAt::new(file));
        let mut buf = [0u8; 2];
        one.read_exact(&mut buf).unwrap();
        let mut all = String::new();
        two.read_to_string(&mut all).unwrap();
        assert_eq!((&buf, all.as_str()), (b"he", "hello"));
    }

    #[test]
    fn remove_tree_does_not_follow_links_out() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let root = Dir::open(tmp.path()).unwrap();
        root.create_path("day/sub", 0o700).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("day/sub/link")).unwrap();
        root.remove_tree("day").unwrap();
        assert!(outside.join("keep").exists());
        assert!(root.stat("day").unwrap().is_none());
    }

    #[test]
    fn names_are_single_components() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        for bad in ["", ".", "..", "a/b"] {
            assert!(dir.stat(bad).is_err(), "{bad:?}");
        }
    }
}
