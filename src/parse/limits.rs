//! Byte-level guards put between a file and a parser: a cap on the length of one
//! physical line (or XML token), and on the bytes a decompressor may produce.
//! They turn an unbounded input into a bounded error instead of unbounded memory.

use std::io::{self, Read};

/// Marker error: a line (CSV) or a run of bytes without `>` (XML) was too long.
#[derive(Debug, thiserror::Error)]
#[error("a line is longer than {0} bytes")]
pub struct LineTooLong(pub usize);

/// Marker error: the (decompressed) content grew past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("the content is larger than {0} bytes")]
pub struct TooLarge(pub u64);

/// Fails reading once more than `max` bytes pass without a `delim` byte.
pub struct LineLimit<R> {
    inner: R,
    max: usize,
    since: usize,
    delim: u8,
}

impl<R: Read> LineLimit<R> {
    pub fn new(inner: R, delim: u8, max: usize) -> Self {
        LineLimit {
            inner,
            max,
            since: 0,
            delim,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == self.delim {
                self.since = 0;
            } else {
                self.since += 1;
                if self.since > self.max {
                    return Err(io::Error::other(LineTooLong(self.max)));
                }
            }
        }
        Ok(n)
    }
}

/// Fails reading once more than `max` bytes were produced.
pub struct SizeLimit<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> SizeLimit<R> {
    pub fn new(inner: R, max: u64) -> Self {
        SizeLimit {
            inner,
            left: max,
            max,
        }
    }
}

impl<R: Read> Read for SizeLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(TooLarge(self.max)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What an I/O error met while parsing means for the file.
pub fn classify(error: &io::Error) -> (&'static str, String) {
    if let Some(inner) = error.get_ref() {
        if let Some(e) = inner.downcast_ref::<LineTooLong>() {
            return ("LINE_TOO_LONG", format!("{e}; the file cannot be read safely"));
        }
        if let Some(e) = inner.downcast_ref::<TooLarge>() {
            return ("TOO_LARGE", format!("{e} (hub.max_file_bytes)"));
        }
    }
    if error.kind() == io::ErrorKind::InvalidInput || error.kind() == io::ErrorKind::InvalidData {
        return ("ENCODING", format!("the content cannot be decoded: {error}"));
    }
    ("READ_ERROR", format!("reading the file failed: {error}"))
}
