//! `completions` and `man`: generated from the command line itself.

use std::io::Write;

use super::{Cli, Exit};

/// A shell completion script (generated in memory: clap_complete panics when its
/// writer fails).
pub(super) fn completions(shell: clap_complete::Shell) -> Result<i32, Exit> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cpis-hub", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(0)
}

/// The manual page (roff).
pub(super) fn man() -> Result<i32, Exit> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)?;
    Ok(0)
}
