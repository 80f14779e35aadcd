//! Commands of the lists family.

use crate::cmd::CommandSpec;

/// The lists commands.
pub static COMMANDS: &[CommandSpec] = &[];
