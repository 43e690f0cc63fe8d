//! CSV form: metadata line, header row matched case-insensitively, RFC 4180 rows.

use crate::model::Code;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use super::limits::{self, CrLf, LineLimit};
use super::{fail, meta, FileProblem, Item, Prelude, RawRecord, Spec, Stop, MAX_LINE_BYTES};

/// Remembers where the newlines the csv reader has been given but not yet placed
/// are: the csv reader dates a record from the end of the previous one, before the
/// blank lines it skips, so those are counted here. Kept as runs of consecutive
/// newlines (a file of a billion blank lines is one run), and bounded: more than
/// [`MAX_RECORD_BYTES`] read without a record is refused.
struct Newlines<R> {
    inner: R,
    offset: u64,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    /// (first offset, count) of each run of consecutive newlines.
    runs: VecDeque<(u64, u64)>,
    /// Bytes read since the csv reader last gave a record.
    since_record: u64,
}

/// The most bytes one record may span, with the blank lines before it (a record is a
/// few hundred bytes; a quoted field may span lines, so [`MAX_LINE_BYTES`] alone does
/// not bound it).
pub(super) const MAX_RECORD_BYTES: u64 = 4 << 20;

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            let at = self.offset + i as u64;
            match seen.runs.back_mut() {
                Some((first, count)) if *first + *count == at => *count += 1,
                _ => seen.runs.push_back((at, 1)),
            }
        }
        self.offset += n as u64;
        seen.since_record += n as u64;
        if seen.since_record > MAX_RECORD_BYTES + 64 * 1024 {
            return Err(std::io::Error::other(limits::RecordTooLong(
                MAX_RECORD_BYTES,
            )));
        }
        Ok(n)
    }
}

/// The byte stream under the csv reader, from the file up.
type Source<R> = Newlines<CrLf<BufReader<LineLimit<BufReader<R>>>>>;

pub(super) struct CsvDoc<R: Read> {
    reader: csv::Reader<Source<R>>,
    newlines: Arc<Mutex<Seen>>,
    /// For each CSV column: the index in the format's columns, if known.
    mapping: Vec<Option<usize>>,
    width: usize,
    /// Number of columns of the format.
    columns: usize,
    record: csv::ByteRecord,
}

fn csv_problem(e: csv::Error) -> Stop {
    let line = e.position().map(|p| p.line() + 1);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Stop::from_io(io),
        other => Stop::Content(FileProblem::new(
            Code::CsvMalformed,
            "",
            format!(
                "the CSV cannot be read near line {}: {other:?}",
                line.unwrap_or(0)
            ),
        )),
    }
}

impl<R: Read> CsvDoc<R> {
    pub(super) fn open(source: BufReader<R>, spec: &'static Spec) -> Result<(Self, Prelude), Stop> {
        let mut limited =
            BufReader::with_capacity(64 * 1024, LineLimit::new(source, b'\n', MAX_LINE_BYTES));
        let mut first = Vec::new();
        limited
            .read_until(b'\n', &mut first)
            .map_err(Stop::from_io)?;
        while first.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            first.pop();
        }
        let line = std::str::from_utf8(&first).map_err(|_| {
            FileProblem::new(
                Code::Encoding,
                "",
                "line 1 is not UTF-8: send the file in UTF-8",
            )
        })?;
        let metadata =
            meta::parse_line(line).map_err(|m| FileProblem::new(Code::Metadata, "", m))?;
        check_format(&metadata, spec)?;

        let newlines = Arc::new(Mutex::new(Seen::default()));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Newlines {
                inner: CrLf::new(limited),
                offset: 0,
                seen: newlines.clone(),
            });
        let mut header = csv::ByteRecord::new();
        let found = reader.read_byte_record(&mut header).map_err(csv_problem)?;
        if !found {
            return fail(FileProblem::new(
                Code::Header,
                "",
                "line 2 must be the header row of column names; the file has none",
            ));
        }
        if header.len() == 1 && header[0].contains(&b';') {
            // Excel in many locales saves "CSV" with semicolons.
            return fail(FileProblem::new(
                Code::Header,
                "",
                "the header row is separated by semicolons: save the file as \"CSV (comma-separated, UTF-8)\" and send it again",
            ));
        }
        let mut mapping = Vec::with_capacity(header.len());
        let mut present = vec![false; spec.columns.len()];
        let mut warnings = Vec::new();
        for (position, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw)
                .map_err(|_| FileProblem::new(Code::Encoding, "", "the header row is not UTF-8"))?
                .trim()
                .to_ascii_lowercase();
            match spec.columns.iter().position(|c| *c == name) {
                Some(index) => {
                    if present[index] {
                        return fail(FileProblem::new(
                            Code::Header,
                            name.clone(),
                            format!("column {name} is named twice in the header row"),
                        ));
                    }
                    present[index] = true;
                    mapping.push(Some(index));
                }
                None => {
                    let shown = if name.is_empty() {
                        format!("(column {} has no name)", position + 1)
                    } else {
                        name.clone()
                    };
                    warnings.push(FileProblem::new(
                        Code::UnknownColumn,
                        name,
                        format!(
                            "column {shown} is not part of {}; it was ignored",
                            spec.name
                        ),
                    ));
                    mapping.push(None);
                }
            }
        }
        let width = header.len();
        Ok((
            CsvDoc {
                reader,
                newlines,
                mapping,
                width,
                columns: spec.columns.len(),
                record: csv::ByteRecord::new(),
            },
            Prelude {
                metadata,
                present,
                warnings,
            },
        ))
    }

    pub(super) fn next_item(&mut self) -> Option<Item> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return None,
                Err(e) => return Some(csv_problem(e).item()),
                Ok(true) => {}
            }
            // The csv reader counts lines from the header; the metadata line is line 1.
            let (mut line, start) = self
                .record
                .position()
                .map(|p| (p.line() + 1, p.byte()))
                .unwrap_or((0, 0));
            {
                let mut seen = self.newlines.lock().unwrap_or_else(|e| e.into_inner());
                seen.since_record = 0;
                while seen
                    .runs
                    .front()
                    .is_some_and(|(first, count)| first + count <= start)
                {
                    seen.runs.pop_front();
                }
                // Blank lines skipped before the record: newlines at start, start+1, ...
                if let Some(&(first, count)) = seen.runs.front() {
                    if first <= start {
                        line += first + count - start;
                        seen.runs.pop_front();
                    }
                }
            }
            if self
                .record
                .iter()
                .all(|f| f.iter().all(u8::is_ascii_whitespace))
            {
                continue; // blank line
            }
            let mut values: Vec<Option<String>> = vec![None; self.columns];
            for (position, raw) in self.record.iter().enumerate() {
                let Some(Some(index)) = self.mapping.get(position) else {
                    continue;
                };
                let text = match std::str::from_utf8(raw) {
                    Ok(t) => t.trim(),
                    Err(_) => {
                        return Some(Item::Fatal(FileProblem::new(
                            Code::Encoding,
                            "",
                            format!("line {line} is not UTF-8: send the whole file in UTF-8"),
                        )))
                    }
                };
                if !text.is_empty() {
                    values[*index] = Some(text.to_string());
                }
            }
            let malformed = (self.record.len() != self.width).then(|| {
                format!(
                    "the line has {} fields; the header row has {}",
                    self.record.len(),
                    self.width
                )
            });
            return Some(Item::Record(RawRecord {
                line,
                values,
                malformed,
            }));
        }
    }
}

pub(super) fn check_format(metadata: &meta::Metadata, spec: &Spec) -> Result<(), Stop> {
    if metadata.format != spec.name {
        return fail(FileProblem::new(
            Code::Metadata,
            "",
            format!(
                "this mailbox takes {} files; the file says {:?}",
                spec.name, metadata.format
            ),
        ));
    }
    if metadata.version != "v1" {
        return fail(FileProblem::new(
            Code::Metadata,
            "",
            format!("version {:?} is not supported: write v1", metadata.version),
        ));
    }
    Ok(())
}
