//! Commands of the sets family.

use crate::cmd::CommandSpec;

/// The sets commands.
pub static COMMANDS: &[CommandSpec] = &[];
