//! XML form: root named after the format in `urn:cpis-hub:v1`, metadata as root
//! attributes, one `Record` element per row. DOCTYPE refused, depth bounded.

use crate::model::Code;
use std::collections::{HashSet, VecDeque};
use std::io::{BufReader, Read};

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::limits::{self, LineLimit};
use super::{
    fail, meta, FileProblem, Item, Prelude, RawRecord, Spec, Stop, MAX_LINE_BYTES, MAX_XML_DEPTH,
};
use crate::formats::snake;

pub(super) const NAMESPACE: &str = "urn:cpis-hub:v1";

/// More root attributes than any format's metadata needs: refused.
const MAX_ROOT_ATTRIBUTES: usize = 64;

/// Distinct unknown element names warned about; beyond, one warning says more were
/// ignored (a file of endless distinct names makes a bounded receipt).
const MAX_WARNED_NAMES: usize = 100;

/// The text of one column element, at most (a field is far shorter; the validator
/// says FIELD_TOO_LONG long before).
const MAX_FIELD_BYTES: usize = 64 * 1024;

pub(super) struct XmlDoc<R: Read> {
    reader: NsReader<BufReader<LineLimit<BufReader<R>>>>,
    spec: &'static Spec,
    buf: Vec<u8>,
    position: u64,
    warned: HashSet<String>,
    /// Warnings found inside the last record, yielded before reading on.
    deferred: VecDeque<FileProblem>,
    finished: bool,
}

fn xml_problem(e: quick_xml::Error, at: u64) -> Stop {
    match e {
        quick_xml::Error::Io(io) => {
            match limits::classify(&io) {
                Some((code, message)) => Stop::Content(FileProblem::new(code, "", message)),
                None => Stop::Io(std::sync::Arc::try_unwrap(io).unwrap_or_else(|shared| {
                    std::io::Error::new(shared.kind(), shared.to_string())
                })),
            }
        }
        quick_xml::Error::Encoding(err) => Stop::Content(FileProblem::new(
            Code::Encoding,
            "",
            format!("the XML is not valid UTF-8 near byte {at}: {err}"),
        )),
        other => Stop::Content(FileProblem::new(
            Code::XmlMalformed,
            "",
            format!("the XML is malformed near byte {at}: {other}"),
        )),
    }
}

fn doctype() -> FileProblem {
    FileProblem::new(Code::XmlDoctype, "", "the document has a DOCTYPE; documents with a DOCTYPE or entity declarations are refused: remove it")
}

impl<R: Read> XmlDoc<R> {
    pub(super) fn open(source: BufReader<R>, spec: &'static Spec) -> Result<(Self, Prelude), Stop> {
        let limited =
            BufReader::with_capacity(64 * 1024, LineLimit::new(source, b'>', MAX_LINE_BYTES));
        let mut reader = NsReader::from_reader(limited);
        reader.config_mut().trim_text(true);
        reader.config_mut().expand_empty_elements = true;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let at = reader.buffer_position();
            let (ns, event) = reader
                .read_resolved_event_into(&mut buf)
                .map_err(|e| xml_problem(e, at))?;
            match event {
                Event::Decl(decl) => {
                    if let Some(Ok(enc)) = decl.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if enc != "utf-8" && enc != "utf8" {
                            return fail(FileProblem::new(
                                Code::Encoding,
                                "",
                                format!("the XML declares encoding {enc:?}: send UTF-8"),
                            ));
                        }
                    }
                }
                Event::DocType(_) => return fail(doctype()),
                Event::Comment(_) | Event::PI(_) | Event::Text(_) => {}
                Event::Start(start) => {
                    let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                    let namespace = match ns {
                        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                        _ => String::new(),
                    };
                    if local != spec.root || namespace != NAMESPACE {
                        return fail(FileProblem::new(
                            Code::Metadata,
                            "",
                            format!("this mailbox takes <{} xmlns=\"{NAMESPACE}\">; the root is <{local}> in namespace {namespace:?}", spec.root),
                        ));
                    }
                    let mut pairs = Vec::new();
                    let mut names = HashSet::new();
                    // Duplicates are found by a set, not by quick-xml's pairwise check
                    // (quadratic: 120,000 attributes took 37 s); and there are few
                    // metadata keys, so a root with many more is refused at once.
                    for attr in start.attributes().with_checks(false) {
                        if pairs.len() >= MAX_ROOT_ATTRIBUTES {
                            return fail(FileProblem::new(
                                Code::Metadata,
                                "",
                                format!("the root element has more than {MAX_ROOT_ATTRIBUTES} attributes"),
                            ));
                        }
                        let attr = attr.map_err(|e| xml_problem(e.into(), at))?;
                        let key = attr.key;
                        if key.as_namespace_binding().is_some() {
                            continue;
                        }
                        let name = snake(&String::from_utf8_lossy(key.local_name().as_ref()));
                        let value = attr
                            .unescape_value()
                            .map_err(|e| xml_problem(e, at))?
                            .into_owned();
                        if !names.insert(name.clone()) {
                            return fail(FileProblem::new(
                                Code::Metadata,
                                "",
                                format!("attribute {name} appears twice"),
                            ));
                        }
                        pairs.push((name, value));
                    }
                    let metadata = meta::Metadata {
                        format: spec.name.to_string(),
                        version: "v1".to_string(),
                        pairs,
                    };
                    return Ok((
                        XmlDoc {
                            reader,
                            spec,
                            buf,
                            position: 0,
                            warned: HashSet::new(),
                            deferred: VecDeque::new(),
                            finished: false,
                        },
                        Prelude {
                            metadata,
                            present: vec![true; spec.columns.len()],
                            warnings: Vec::new(),
                        },
                    ));
                }
                Event::Eof => {
                    return fail(FileProblem::new(
                        Code::XmlMalformed,
                        "",
                        "the XML document has no root element",
                    ))
                }
                _ => {
                    return fail(FileProblem::new(
                        Code::XmlMalformed,
                        "",
                        format!("unexpected content before the root element near byte {at}"),
                    ))
                }
            }
        }
    }

    fn read(&mut self) -> Result<Event<'static>, Stop> {
        self.buf.clear();
        let at = self.reader.buffer_position();
        self.reader
            .read_event_into(&mut self.buf)
            .map(|e| e.into_owned())
            .map_err(|e| xml_problem(e, at))
    }

    fn warn_once(&mut self, code: Code, field: String, message: String) -> Option<Item> {
        self.remember(code, &field, message)
            .map(|(field, message)| Item::Warning(FileProblem::new(code, field, message)))
    }

    /// Whether to warn of `code` for `field` (once each, for at most
    /// [`MAX_WARNED_NAMES`] names, then once that more are not named): the field and
    /// message of the warning to give.
    fn remember(&mut self, code: Code, field: &str, message: String) -> Option<(String, String)> {
        let key = format!("{code}/{field}");
        if self.warned.contains(&key) {
            return None;
        }
        if self.warned.len() < MAX_WARNED_NAMES {
            self.warned.insert(key);
            return Some((field.to_string(), message));
        }
        self.warned.insert(format!("{code}/*")).then(|| {
            (
                String::new(),
                format!(
                    "more unknown elements were ignored; the first {MAX_WARNED_NAMES} are named"
                ),
            )
        })
    }

    /// Skips the rest of an element whose start was just read (depth counted from it).
    fn skip_element(&mut self, depth_now: usize) -> Result<(), Stop> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.read()? {
                Event::Start(_) => {
                    depth += 1;
                    if depth_now + depth - 1 > MAX_XML_DEPTH {
                        return fail(too_deep());
                    }
                }
                Event::End(_) => depth -= 1,
                Event::DocType(_) => return fail(doctype()),
                Event::Eof => return fail(truncated(self.spec)),
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn next_item(&mut self) -> Option<Item> {
        if let Some(warning) = self.deferred.pop_front() {
            return Some(Item::Warning(warning));
        }
        if self.finished {
            return None;
        }
        match self.next_inner() {
            Ok(item) => item,
            Err(stop) => {
                self.finished = true;
                Some(stop.item())
            }
        }
    }

    fn next_inner(&mut self) -> Result<Option<Item>, Stop> {
        // Depth 1: inside the root.
        loop {
            match self.read()? {
                Event::Start(start) => {
                    let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                    if local == "Record" {
                        self.position += 1;
                        return self.read_record().map(|r| Some(Item::Record(r)));
                    }
                    self.skip_element(2)?;
                    let local = short(&local);
                    if let Some(w) = self.warn_once(
                        Code::UnknownElement,
                        local.clone(),
                        format!(
                            "element <{local}> is not part of {}; it was ignored",
                            self.spec.name
                        ),
                    ) {
                        return Ok(Some(w));
                    }
                }
                Event::End(_) => {
                    // End of the root: only comments, PIs and white space may follow.
                    loop {
                        match self.read()? {
                            Event::Eof => {
                                self.finished = true;
                                return Ok(None);
                            }
                            Event::Comment(_) | Event::PI(_) | Event::Text(_) => {}
                            _ => {
                                return fail(FileProblem::new(
                                    Code::XmlMalformed,
                                    "",
                                    "content after the root element",
                                ))
                            }
                        }
                    }
                }
                Event::DocType(_) => return fail(doctype()),
                Event::Eof => return fail(truncated(self.spec)),
                _ => {}
            }
        }
    }

    fn read_record(&mut self) -> Result<RawRecord, Stop> {
        let mut record = RawRecord {
            line: self.position,
            values: vec![None; self.spec.columns.len()],
            malformed: None,
        };
        let mut seen = vec![false; self.spec.columns.len()];
        let mut pending_warnings = Vec::new();
        loop {
            match self.read()? {
                Event::Start(start) => {
                    let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                    let column = snake(&local);
                    let index = self.spec.columns.iter().position(|c| *c == column);
                    let (text, nested) = self.read_field(&local)?;
                    match index {
                        Some(i) => {
                            if seen[i] {
                                record.malformed.get_or_insert(format!(
                                    "element <{local}> appears twice in the record"
                                ));
                            }
                            seen[i] = true;
                            if nested {
                                record.malformed.get_or_insert(format!(
                                    "element <{local}> contains other elements"
                                ));
                            }
                            let trimmed = text.trim();
                            if !trimmed.is_empty() {
                                record.values[i] = Some(trimmed.to_string());
                            }
                        }
                        // Names already warned of (or beyond the bound) are not kept.
                        None if pending_warnings.len() < MAX_WARNED_NAMES
                            && !self
                                .warned
                                .contains(&format!("UNKNOWN_COLUMN/{}", snake(&short(&local)))) =>
                        {
                            pending_warnings.push(local)
                        }
                        None => {}
                    }
                }
                Event::End(_) => break,
                Event::DocType(_) => return fail(doctype()),
                Event::Eof => return fail(truncated(self.spec)),
                Event::Text(t) => {
                    let text = t.unescape().map_err(|e| xml_problem(e, 0))?;
                    if !text.trim().is_empty() {
                        record
                            .malformed
                            .get_or_insert("a <Record> holds text outside its elements".into());
                    }
                }
                _ => {}
            }
        }
        for local in pending_warnings {
            let local = short(&local);
            let column = snake(&local);
            let message = format!(
                "element <{local}> is not a column of {}; it was ignored",
                self.spec.name
            );
            if let Some((field, message)) = self.remember(Code::UnknownColumn, &column, message) {
                self.deferred
                    .push_back(FileProblem::new(Code::UnknownColumn, field, message));
            }
        }
        Ok(record)
    }

    /// Reads the text of a column element up to its end tag; tells whether it held
    /// nested elements (which are skipped).
    fn read_field(&mut self, _local: &str) -> Result<(String, bool), Stop> {
        let mut text = String::new();
        let mut nested = false;
        loop {
            match self.read()? {
                Event::Text(t) => {
                    let piece = t.unescape().map_err(|e| xml_problem(e, 0))?;
                    push_bounded(&mut text, &piece)
                }
                Event::CData(c) => match std::str::from_utf8(&c) {
                    Ok(s) => push_bounded(&mut text, s),
                    Err(_) => {
                        return fail(FileProblem::new(
                            Code::Encoding,
                            "",
                            "a CDATA section is not UTF-8",
                        ))
                    }
                },
                Event::Start(_) => {
                    nested = true;
                    self.skip_element(4)?;
                }
                Event::End(_) => return Ok((text, nested)),
                Event::DocType(_) => return fail(doctype()),
                Event::Eof => return fail(truncated(self.spec)),
                _ => {}
            }
        }
    }
}

/// An element name as a receipt shows it: at most 64 characters.
fn short(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((at, _)) => format!("{}\u{2026}", &name[..at]),
        None => name.to_string(),
    }
}

/// Appends to a field's text up to [`MAX_FIELD_BYTES`] (what is longer is refused by
/// its length rule anyway; memory stays bounded whatever the element holds).
fn push_bounded(text: &mut String, piece: &str) {
    let room = MAX_FIELD_BYTES.saturating_sub(text.len());
    let mut take = piece.len().min(room);
    while !piece.is_char_boundary(take) {
        take -= 1;
    }
    text.push_str(&piece[..take]);
    if take < piece.len() && !text.ends_with('\u{2026}') {
        text.push('\u{2026}');
    }
}

fn too_deep() -> FileProblem {
    FileProblem::new(
        Code::XmlMalformed,
        "",
        format!("the XML is nested deeper than {MAX_XML_DEPTH} levels"),
    )
}

fn truncated(spec: &Spec) -> FileProblem {
    FileProblem::new(
        Code::XmlMalformed,
        "",
        format!("the file ends before </{}>: it is truncated", spec.root),
    )
}
