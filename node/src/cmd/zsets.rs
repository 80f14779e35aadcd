//! Commands of the zsets family.

use crate::cmd::CommandSpec;

/// The zsets commands.
pub static COMMANDS: &[CommandSpec] = &[];
