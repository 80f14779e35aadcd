//! `<COMMAND> HELP` replies: an array of status lines, as Redis sends them. The wording is ours
//! (clients never parse help text; only its shape matters), kept in one place.

use bytes::Bytes;
use common::resp::Frame;

/// The help reply for `command`: a heading line, then each usage line followed by its
/// explanation indented by four spaces.
pub fn reply(command: &str, entries: &[(&str, &str)]) -> Frame {
    let mut lines = vec![format!("{command} <subcommand> [arguments]. Subcommands:")];
    for (usage, what) in entries {
        lines.push((*usage).to_string());
        lines.push(format!("    {what}"));
    }
    lines.push("HELP".to_string());
    lines.push("    Show this text.".to_string());
    Frame::Array(lines.into_iter().map(|l| Frame::Simple(Bytes::from(l))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_an_array_of_status_lines_ending_with_help() {
        let Frame::Array(lines) = reply("X", &[("A <k>", "Does a.")]) else {
            panic!("array expected")
        };
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| matches!(l, Frame::Simple(_))));
        assert_eq!(lines[3], Frame::simple("HELP"));
    }
}
