//! `redis.conf`-style configuration: `directive arg…` lines, the same quoting rules as Redis
//! (`sdssplitargs`), and `--directive value…` flags on the command line that override the file.
//!
//! Each binary owns its typed config; this module only turns text into [`ConfigLine`]s and
//! offers the value parsers both binaries need, with errors that name the file, the line and the
//! directive.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One directive with its arguments and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    /// Where the directive was read: a file path or `command line`.
    pub source: String,
    /// 1-based line number in the file (0 for the command line).
    pub line: usize,
    /// The directive name, lower-cased.
    pub directive: String,
    /// The arguments after the directive, unquoted.
    pub args: Vec<String>,
}

/// A configuration error, naming where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the offending directive was read, if anywhere.
    pub at: Option<(String, usize, String)>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about a specific directive.
    pub fn at(line: &ConfigLine, message: impl Into<String>) -> ConfigError {
        ConfigError {
            at: Some((line.source.clone(), line.line, line.directive.clone())),
            message: message.into(),
        }
    }

    /// An error that is not about one line (e.g. a cross-field rule).
    pub fn general(message: impl Into<String>) -> ConfigError {
        ConfigError { at: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some((source, 0, directive)) => {
                write!(f, "{source}: directive '{directive}': {}", self.message)
            }
            Some((source, line, directive)) => {
                write!(f, "{source}:{line}: directive '{directive}': {}", self.message)
            }
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Splits a line into arguments with Redis's `sdssplitargs` rules: spaces separate arguments,
/// `"…"` supports `\n \r \t \b \a \\ \"` and `\xHH`, `'…'` supports `\'`, and a closing quote
/// must be followed by a space or the end of the line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false); // a closing quote ends the argument
        loop {
            let Some(&c) = line.get(i) else {
                if in_double || in_single {
                    return Err(UnbalancedQuotes);
                }
                break;
            };
            if in_double {
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && is_hex_pair(line, i + 2)
                {
                    current.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return Err(UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    current.push(b'\'');
                    i += 1;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return Err(UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

/// A quoted argument was not closed, or its closing quote was followed by another character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuotes;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn is_hex_pair(line: &[u8], at: usize) -> bool {
    at + 1 < line.len() && line[at].is_ascii_hexdigit() && line[at + 1].is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    (c as char).to_digit(16).expect("checked by is_hex_pair") as u8
}

/// Parses config text into lines. Blank lines and `#` comments are skipped.
pub fn parse_text(text: &str, source: &str) -> Result<Vec<ConfigLine>, ConfigError> {
    let mut lines = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = |message: &str| ConfigError {
            at: Some((source.to_string(), n + 1, trimmed.to_string())),
            message: message.to_string(),
        };
        let words = split_args(trimmed.as_bytes()).map_err(|_| at("unbalanced quotes"))?;
        let mut words = words.into_iter().map(|w| String::from_utf8_lossy(&w).into_owned());
        let directive =
            words.next().expect("a non-blank line has a first word").to_ascii_lowercase();
        lines.push(ConfigLine {
            source: source.to_string(),
            line: n + 1,
            directive,
            args: words.collect(),
        });
    }
    Ok(lines)
}

/// Reads a config file into lines.
pub fn read_file(path: &Path) -> Result<Vec<ConfigLine>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::general(format!("can't open config file '{}': {e}", path.display()))
    })?;
    parse_text(&text, &path.display().to_string())
}

/// The command line of a server binary: an optional config file, then `--directive value…`.
#[derive(Debug, Default)]
pub struct CommandLine {
    /// The config file named first, if any.
    pub file: Option<PathBuf>,
    /// The directives given as flags, in order.
    pub overrides: Vec<ConfigLine>,
}

/// Splits `redis-server`-style arguments (without the program name).
pub fn parse_command_line(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut cmd = CommandLine::default();
    let mut rest = args;
    if let Some(first) = args.first() {
        if !first.starts_with("--") {
            cmd.file = Some(PathBuf::from(first));
            rest = &args[1..];
        }
    }
    for arg in rest {
        if let Some(name) = arg.strip_prefix("--") {
            if name.is_empty() {
                return Err(ConfigError::general("empty option name '--'"));
            }
            cmd.overrides.push(ConfigLine {
                source: "command line".into(),
                line: 0,
                directive: name.to_ascii_lowercase(),
                args: Vec::new(),
            });
        } else {
            match cmd.overrides.last_mut() {
                Some(line) => line.args.push(arg.clone()),
                None => {
                    return Err(ConfigError::general(format!(
                        "unexpected argument '{arg}': options start with --"
                    )))
                }
            }
        }
    }
    Ok(cmd)
}

/// `yes` or `no`, as Redis accepts them.
pub fn parse_bool(line: &ConfigLine, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::at(line, "argument must be 'yes' or 'no'")),
    }
}

/// A memory size as Redis's `memtoull` reads it: `1024`, `100k` (1000), `1kb` (1024), `64mb`,
/// `1gb`. Its quirks are kept: no digits at all (`""`, `"k"`) is 0, and a number too large for
/// 64 bits saturates (C's `strtoull`) unless the unit then overflows it.
pub fn parse_memory(value: &str) -> Option<u64> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // memtoull copies the digits into a 128-byte buffer first.
    if digits.len() >= 128 {
        return None;
    }
    let number = if digits.is_empty() { 0 } else { digits.parse::<u64>().unwrap_or(u64::MAX) };
    number.checked_mul(mul)
}

/// A duration given either as a plain number in `unit` (Redis's style, e.g. milliseconds) or in
/// humantime form (`1500ms`, `5s`, `1m`).
pub fn parse_duration(value: &str, unit: Duration) -> Option<Duration> {
    if let Ok(n) = value.parse::<u64>() {
        return unit.checked_mul(u32::try_from(n).ok()?);
    }
    humantime::parse_duration(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_args(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn splits_like_sdssplitargs() {
        assert_eq!(split("set a b"), ["set", "a", "b"]);
        assert_eq!(split("  set  \"a b\"  'c d' "), ["set", "a b", "c d"]);
        assert_eq!(split(r#"x "\x41\n" 'it\'s'"#), ["x", "A\n", "it's"]);
        assert_eq!(split(r#"save """#), ["save", ""]);
        assert!(split_args(b"set \"a").is_err());
        assert!(split_args(b"set \"a\"b").is_err());
        assert!(split_args(b"set 'a").is_err());
    }

    #[test]
    fn parses_files_and_flags() {
        let lines = parse_text("# comment\n\nport 7000\nsave \"\"\n", "x.conf").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].line, lines[0].directive.as_str()), (3, "port"));
        assert_eq!(lines[1].args, [""]);
        let args: Vec<String> = ["my.conf", "--port", "7001", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cmd = parse_command_line(&args).unwrap();
        assert_eq!(cmd.file.unwrap(), PathBuf::from("my.conf"));
        assert_eq!(cmd.overrides.len(), 3);
        assert_eq!(cmd.overrides[1].args, [""]);
    }

    #[test]
    fn memory_and_durations() {
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory("+1"), None);
        assert_eq!(parse_memory(""), Some(0), "memtoull reads no digits as 0");
        assert_eq!(parse_memory("k"), Some(0));
        assert_eq!(parse_memory("18446744073709551616"), Some(u64::MAX), "strtoull saturates");
        assert_eq!(parse_memory("18446744073709551615k"), None, "the unit overflows it");
        assert_eq!(
            parse_duration("1500", Duration::from_millis(1)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("2s", Duration::from_millis(1)), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("soon", Duration::from_millis(1)), None);
    }
}
