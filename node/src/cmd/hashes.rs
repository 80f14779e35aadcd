//! Commands of the hashes family.

use crate::cmd::CommandSpec;

/// The hashes commands.
pub static COMMANDS: &[CommandSpec] = &[];
