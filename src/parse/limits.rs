//! Byte-level guards put between a file and a parser: a cap on the length of one
//! physical line (or XML token), and on the bytes a decompressor may produce.
//! They turn an unbounded input into a bounded error instead of unbounded memory.

use crate::model::Code;
use std::io::{self, Read};

/// Marker error: a line (CSV) or a run of bytes without `>` (XML) was too long.
#[derive(Debug, thiserror::Error)]
#[error("a line is longer than {0} bytes")]
pub(crate) struct LineTooLong(pub usize);

/// Marker error: one CSV record (with the blank lines before it) was too long.
#[derive(Debug, thiserror::Error)]
#[error("a record, with the blank lines before it, is longer than {0} bytes")]
pub(crate) struct RecordTooLong(pub u64);

/// Marker error: the (decompressed) content grew past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("the content is larger than {0} bytes")]
pub(crate) struct TooLarge(pub u64);

/// Fails reading once more than `max` bytes pass without a `delim` byte.
pub(crate) struct LineLimit<R> {
    inner: R,
    max: usize,
    since: usize,
    delim: u8,
}

impl<R: Read> LineLimit<R> {
    pub(crate) fn new(inner: R, delim: u8, max: usize) -> Self {
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
        // Whole runs between delimiters at a time (memchr), not byte by byte.
        let mut start = 0;
        for at in memchr::memchr_iter(self.delim, &buf[..n]) {
            if self.since + (at - start) > self.max {
                return Err(io::Error::other(LineTooLong(self.max)));
            }
            self.since = 0;
            start = at + 1;
        }
        self.since += n - start;
        if self.since > self.max {
            return Err(io::Error::other(LineTooLong(self.max)));
        }
        Ok(n)
    }
}

/// Fails reading once more than `max` bytes were produced.
pub(crate) struct SizeLimit<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> SizeLimit<R> {
    pub(crate) fn new(inner: R, max: u64) -> Self {
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

/// Marker error: a compressed `.dat` is not a complete, valid gzip stream (cut short,
/// or corrupt): the file's own fault, answered at once.
#[derive(Debug, thiserror::Error)]
#[error("the .dat is marked Compress=Y but is not a complete gzip stream ({0})")]
pub(crate) struct BadCompression(pub String);

/// An error of the file under a decompressor, kept apart from the decompressor's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SourceError(io::Error);

/// The file's bytes, each error marked as the file's (not the decompressor's).
struct Marked<R>(R);

impl<R: Read> Read for Marked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceError(e)))
    }
}

/// Decompresses a gzip `.dat`: every member (a file written as several gzip members
/// is read whole), a stream cut short or corrupt failing with [`BadCompression`]; the
/// file's own read errors pass through as they were.
pub(crate) struct Gunzip<R: Read> {
    inner: flate2::read::MultiGzDecoder<Marked<R>>,
}

impl<R: Read> Gunzip<R> {
    pub(crate) fn new(inner: R) -> Self {
        Gunzip {
            inner: flate2::read::MultiGzDecoder::new(Marked(inner)),
        }
    }
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            match e.into_inner() {
                Some(inner) => match inner.downcast::<SourceError>() {
                    Ok(source) => source.0,
                    Err(other) => io::Error::new(
                        io::ErrorKind::InvalidData,
                        BadCompression(other.to_string()),
                    ),
                },
                None => io::Error::new(
                    io::ErrorKind::InvalidData,
                    BadCompression(io::Error::from(kind).to_string()),
                ),
            }
        })
    }
}

/// What an I/O error met while parsing means for the file: a content problem when a
/// guard (or the decoder) says so; `None` when the source itself failed (an error for
/// the pipeline to classify, never a receipt row).
pub(crate) fn classify(error: &io::Error) -> Option<(Code, String)> {
    if let Some(inner) = error.get_ref() {
        if let Some(e) = inner.downcast_ref::<LineTooLong>() {
            return Some((
                Code::LineTooLong,
                format!("{e}; the file cannot be read safely"),
            ));
        }
        if let Some(e) = inner.downcast_ref::<RecordTooLong>() {
            return Some((
                Code::LineTooLong,
                format!("{e}; the file cannot be read safely"),
            ));
        }
        if let Some(e) = inner.downcast_ref::<TooLarge>() {
            return Some((Code::TooLarge, format!("{e} (hub.max_file_bytes)")));
        }
        if let Some(e) = inner.downcast_ref::<BadCompression>() {
            return Some((Code::Compression, format!("{e}: send the message again")));
        }
    }
    if matches!(
        error.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    ) {
        // Decoding the text (UTF-8) reports these.
        return Some((
            Code::Encoding,
            format!("the content cannot be decoded: {error}"),
        ));
    }
    None
}

/// Turns every `\r\n` into `\n`, so that line numbers count CRLF and LF files alike
/// (the csv reader numbers a record after a CRLF one line short). A lone `\r` is kept.
pub(crate) struct CrLf<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// A `\r` seen at the end of the last chunk, not yet known to precede `\n`.
    pending_cr: bool,
    eof: bool,
}

impl<R: Read> CrLf<R> {
    pub(crate) fn new(inner: R) -> Self {
        CrLf {
            inner,
            buf: vec![0; 64 * 1024],
            pos: 0,
            len: 0,
            pending_cr: false,
            eof: false,
        }
    }
}

impl<R: Read> Read for CrLf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.len {
                if self.eof || written > 0 {
                    break;
                }
                self.len = self.inner.read(&mut self.buf)?;
                self.pos = 0;
                if self.len == 0 {
                    self.eof = true;
                    if self.pending_cr {
                        self.pending_cr = false;
                        out[written] = b'\r';
                        written += 1;
                    }
                    break;
                }
            }
            if self.pending_cr {
                self.pending_cr = false;
                if self.buf[self.pos] != b'\n' {
                    out[written] = b'\r';
                    written += 1;
                    continue;
                }
                // `\r\n`: the `\r` is dropped, the `\n` copied with the run below.
            }
            // Copy the run up to the next `\r` (or as much as fits) in one go.
            let avail = &self.buf[self.pos..self.len];
            let take = avail.len().min(out.len() - written);
            match memchr::memchr(b'\r', &avail[..take]) {
                Some(i) => {
                    out[written..written + i].copy_from_slice(&avail[..i]);
                    written += i;
                    self.pos += i + 1;
                    self.pending_cr = true;
                }
                None => {
                    out[written..written + take].copy_from_slice(&avail[..take]);
                    written += take;
                    self.pos += take;
                }
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `.1` bytes per read.
    struct Chunks<'a>(&'a [u8], usize);

    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn through(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut got = Vec::new();
        CrLf::new(Chunks(data, chunk))
            .read_to_end(&mut got)
            .unwrap();
        got
    }

    #[test]
    fn crlf_becomes_lf_across_chunk_boundaries() {
        for chunk in 1..6 {
            assert_eq!(
                through(b"a\r\nb\rc\r\n\r\n\r", chunk),
                b"a\nb\rc\n\n\r",
                "chunk {chunk}"
            );
        }
    }

    proptest::proptest! {
        /// The chunked `CrLf` equals the byte-by-byte rule: `\r\n` → `\n`, a lone
        /// `\r` kept, whatever the chunk sizes.
        #[test]
        fn crlf_matches_the_simple_rule(
            data in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\r', b'\n', b',']), 0..200),
            chunk in 1usize..9,
        ) {
            let mut expected = Vec::new();
            let mut i = 0;
            while i < data.len() {
                if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                    continue;
                }
                expected.push(data[i]);
                i += 1;
            }
            proptest::prop_assert_eq!(through(&data, chunk), expected);
        }

        /// `LineLimit` fails exactly when some run without the delimiter is longer
        /// than the limit, whatever the read sizes.
        #[test]
        fn line_limit_fails_exactly_on_a_long_line(
            data in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n']), 0..120),
            max in 0usize..12,
            chunk in 1usize..9,
        ) {
            let longest = data.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap_or(0);
            let mut out = Vec::new();
            let r = LineLimit::new(Chunks(&data, chunk), b'\n', max).read_to_end(&mut out);
            proptest::prop_assert_eq!(r.is_err(), longest > max);
        }
    }

    #[test]
    fn size_limit_and_line_limit_fail() {
        let mut out = Vec::new();
        let e = SizeLimit::new(&b"0123456789"[..], 5)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(classify(&e).unwrap().0, Code::TooLarge);
        let e = LineLimit::new(&b"abc\nabcdef"[..], b'\n', 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(classify(&e).unwrap().0, Code::LineTooLong);
    }
}
