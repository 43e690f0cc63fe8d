//! The MESH control file (`NAME.ctl`, root `DTSControl`, §1.3), read leniently:
//! element names case-insensitive, unknown elements ignored.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest control file read (they are a few hundred bytes).
pub(crate) const MAX_CTL_BYTES: usize = 64 * 1024;

/// A parsed control file: lower-case element name -> trimmed text.
/// `StatusRecord` children appear as `statusrecord.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Control {
    fields: HashMap<String, String>,
}

impl Control {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `Y`/`N` flags; anything but `Y` (case-insensitive) is no.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("y"))
    }
}

/// Parses a control file; the error says what is wrong, for a receipt.
pub(crate) fn parse(data: &[u8]) -> Result<Control, String> {
    if data.len() > MAX_CTL_BYTES {
        return Err(format!("the .ctl is larger than {MAX_CTL_BYTES} bytes"));
    }
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = Reader::from_reader(data);
    reader.config_mut().trim_text(true);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<String> = Vec::new();
    let mut fields = HashMap::new();
    let mut text = String::new();
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("the .ctl is not well-formed XML: {e}")),
            Ok(Event::DocType(_)) => return Err("the .ctl has a DOCTYPE".into()),
            Ok(Event::Start(s)) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).to_ascii_lowercase();
                if stack.is_empty() {
                    if name != "dtscontrol" || saw_root {
                        return Err(format!("the .ctl root is <{name}>, not <DTSControl>"));
                    }
                    saw_root = true;
                }
                if stack.len() >= 4 {
                    return Err("the .ctl is nested too deeply".into());
                }
                stack.push(name);
                text.clear();
            }
            Ok(Event::Text(t)) => {
                let value = t
                    .unescape()
                    .map_err(|e| format!("the .ctl has a bad escape: {e}"))?;
                text.push_str(&value);
            }
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                let key = match stack.len() {
                    1 => Some(name),
                    2 => Some(format!("{}.{name}", stack[1])),
                    _ => None,
                };
                if let Some(key) = key {
                    // A control element appears once: a second one (say an empty
                    // From_DTS, then another partner's) is never resolved in
                    // anybody's favour.
                    if stack.len() == 1 && fields.contains_key(&key) {
                        return Err(format!("the .ctl repeats the element <{key}>: each control element appears once"));
                    }
                    fields.entry(key).or_insert_with(|| text.trim().to_string());
                }
                text.clear();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
    }
    if !saw_root {
        return Err("the .ctl has no <DTSControl> element".into());
    }
    if !stack.is_empty() {
        return Err("the .ctl ends before </DTSControl>".into());
    }
    Ok(Control { fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_control_element_is_refused_in_any_case() {
        let e = parse(b"<DTSControl><From_DTS></From_DTS><from_dts>X26LA317</from_dts><WorkflowId>CPISHUB_EXTRACT</WorkflowId></DTSControl>").unwrap_err();
        assert!(e.contains("from_dts"), "{e}");
    }

    #[test]
    fn lenient_names_and_status_record() {
        let c = parse(b"<?xml version=\"1.0\"?><dtscontrol><WORKFLOWID>CPISHUB_EXTRACT</WORKFLOWID><From_DTS>x26la101</From_DTS><Compress>y</Compress><Unknown>1</Unknown><StatusRecord><StatusCode>0</StatusCode></StatusRecord></dtscontrol>").unwrap();
        assert_eq!(c.get("WorkflowId"), Some("CPISHUB_EXTRACT"));
        assert_eq!(c.get("from_dts"), Some("x26la101"));
        assert!(c.flag("Compress"));
        assert!(!c.flag("Encrypted"));
        assert_eq!(c.get("statusrecord.statuscode"), Some("0"));
    }

    #[test]
    fn refuses_junk() {
        assert!(parse(b"not xml").is_err());
        assert!(parse(b"<Other/>").is_err());
        assert!(parse(b"<!DOCTYPE x><DTSControl/>").is_err());
        assert!(parse(b"<DTSControl><A>").is_err());
    }
}
