//! The MESH control file of an outbound message (SPEC §1.4), read back by
//! `parse::ctl`.

/// Writes the control file of an outbound message (§1.4). No patient data: the
/// subject is the file kind and `LocalId` the file's sequence number.
pub(super) fn control_file(
    workflow_id: &str,
    from: &str,
    to: &str,
    subject: &str,
    local_id: u64,
) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DTSControl>\n  <Version>1.0</Version>\n  <AddressType>DTS</AddressType>\n  <MessageType>Data</MessageType>\n  <WorkflowId>{workflow_id}</WorkflowId>\n  <To_DTS>{to}</To_DTS>\n  <From_DTS>{from}</From_DTS>\n  <Subject>{subject}</Subject>\n  <LocalId>{local_id}</LocalId>\n  <DTSId></DTSId>\n  <Compress>N</Compress>\n  <AllowChunking>Y</AllowChunking>\n  <Encrypted>N</Encrypted>\n</DTSControl>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_control_file_reads_back() {
        let text = control_file("CPISHUB_EXTRACT_ACK", "X26HUB01", "X26LA101", "RECEIPT", 7);
        let c = crate::parse::ctl::parse(text.as_bytes()).unwrap();
        assert_eq!(c.get("workflowid"), Some("CPISHUB_EXTRACT_ACK"));
        assert_eq!(c.get("localid"), Some("7"));
    }
}
