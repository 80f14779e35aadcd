//! The process title (`set-proc-title`, `proc-title-template`): what `ps` and `top -c` show
//! for this process, e.g. `warden-node 127.0.0.1:6379`, so operators running several nodes on
//! one host can tell them apart.
//!
//! As Redis does, the title is written over the process's original argument strings, which
//! is where the kernel reads `/proc/<pid>/cmdline` from. Only that area is used (Redis also
//! moves the environment out of the way to gain room): a title longer than the command line
//! it replaces is cut short. The arguments have been parsed before the title is set.

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::server::Shared;

/// `argv[0]`, captured before the argument area is overwritten; set only by the binary, so
/// servers started inside tests never retitle the test process.
static INVOKED_AS: OnceLock<String> = OnceLock::new();

/// Turns titling on for this process (`set-proc-title yes`, read once at startup as in Redis)
/// and sets the first title.
pub fn init(shared: &Shared) {
    let argv0 = std::env::args().next().unwrap_or_else(|| "warden-node".into());
    if INVOKED_AS.set(argv0).is_ok() {
        refresh(shared);
    }
}

/// Sets the title from the current template (after startup and CONFIG SET
/// proc-title-template); nothing unless [`init`] ran.
pub fn refresh(shared: &Shared) {
    let Some(title) = INVOKED_AS.get() else { return };
    let (template, bind, file) = {
        let c = shared.config.read();
        let file = c
            .file
            .as_ref()
            .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()).display().to_string());
        (
            c.get("proc-title-template").unwrap_or_default().to_string(),
            c.settings.bind.clone(),
            file.unwrap_or_default(),
        )
    };
    let port = shared.port();
    let vars = TitleVars { title, listen_addr: listen_addr(&bind, port), port, config_file: &file };
    if let Some(text) = expand(&template, &vars) {
        set(&text);
    }
}

/// What a template's variables stand for.
pub struct TitleVars<'a> {
    /// How the binary was invoked (`argv[0]`).
    pub title: &'a str,
    /// The first bind address (`*` for all) and the port.
    pub listen_addr: String,
    /// The TCP port.
    pub port: u16,
    /// The config file's absolute path, or empty.
    pub config_file: &'a str,
}

/// Expands `template` (Redis's `{variable}` syntax, `{{` and `}}` for literal braces).
/// `None` if it is malformed, names an unknown variable, or expands to nothing — the cases
/// Redis refuses with "template format is invalid or contains unknown variables".
pub fn expand(template: &str, vars: &TitleVars<'_>) -> Option<String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return None,
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next()? {
                        '}' => break,
                        c => name.push(c),
                    }
                }
                match name.as_str() {
                    "title" => out.push_str(vars.title),
                    "listen-addr" => out.push_str(&vars.listen_addr),
                    "server-mode" | "unixsocket" => {}
                    "port" => {
                        let _ = write!(out, "{}", vars.port);
                    }
                    "tls-port" => out.push('0'),
                    "config-file" => out.push_str(vars.config_file),
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    let trimmed = out.trim_matches(' ');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Checks a template without a running server (config load, CONFIG SET).
pub fn is_valid(template: &str) -> bool {
    let vars = TitleVars { title: "t", listen_addr: "*:0".into(), port: 0, config_file: "" };
    expand(template, &vars).is_some()
}

/// `{listen-addr}`: the first bind address, as configured, and the port, as Redis prints it.
pub fn listen_addr(bind: &[String], port: u16) -> String {
    format!("{}:{port}", bind.first().map_or("*", String::as_str))
}

/// Writes `title` over the process's argument area. Returns false where that area cannot be
/// found (not Linux, /proc unavailable).
fn set(title: &str) -> bool {
    let Some((start, end)) = argument_area() else { return false };
    let len = end - start;
    if len == 0 {
        return false;
    }
    let mut bytes = title.as_bytes().to_vec();
    bytes.truncate(len - 1);
    bytes.resize(len, 0);
    // SAFETY: [arg_start, arg_end) is this process's own argument strings, mapped writable on
    // its stack since exec (the kernel reports it in /proc/self/stat). Nothing reads them
    // after startup: the command line was parsed before the title is set, and
    // `std::env::args` is not called afterwards.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, len) };
    true
}

/// `arg_start` and `arg_end` from /proc/self/stat (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TitleVars<'static> {
        TitleVars {
            title: "warden-node",
            listen_addr: "127.0.0.1:6379".into(),
            port: 6379,
            config_file: "/etc/redis/redis.conf",
        }
    }

    #[test]
    fn expands_redis_variables_and_trims() {
        let t = |s| expand(s, &vars());
        assert_eq!(t("{title} {listen-addr} {server-mode}").unwrap(), "warden-node 127.0.0.1:6379");
        assert_eq!(
            t("{title} {port} {tls-port} {unixsocket} {config-file}").unwrap(),
            "warden-node 6379 0  /etc/redis/redis.conf"
        );
        assert_eq!(t("foo").unwrap(), "foo");
        assert_eq!(t("{{x}}").unwrap(), "{x}");
    }

    #[test]
    fn refuses_what_redis_refuses() {
        for bad in ["", "   ", "{title", "{title} {bogus}", "a}b", "{server-mode}"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn listen_addr_is_the_first_bind_address() {
        assert_eq!(listen_addr(&["*".into(), "-::*".into()], 6379), "*:6379");
        assert_eq!(listen_addr(&["127.0.0.1".into(), "-::1".into()], 7000), "127.0.0.1:7000");
        assert_eq!(listen_addr(&[], 1), "*:1");
    }
}
