//! Redis 7.0's script shebang: a first line `#!lua [flags=<flag>,…]` declares the engine and
//! the script's flags. A script without one runs in compatibility mode (as scripts did before
//! 7.0); one with it runs with exactly the flags it declares. The shebang line is not Lua: the
//! rest of the script is compiled from its newline on, so line numbers in errors still count
//! the shebang as line 1.

/// The flags a script declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// No shebang: the pre-7.0 rules (Redis's `SCRIPT_FLAG_EVAL_COMPAT_MODE`).
    pub compat: bool,
    /// `no-writes`: the script only reads; a write command in it is refused.
    pub no_writes: bool,
    /// `allow-oom`: may run while memory is over `maxmemory`.
    pub allow_oom: bool,
    /// `allow-stale`: may run on a replica serving no stale data while its link is down.
    pub allow_stale: bool,
    /// `no-cluster`: refused in cluster mode.
    pub no_cluster: bool,
    /// `allow-cross-slot-keys`: may touch keys of several slots.
    pub allow_cross_slot_keys: bool,
}

impl ScriptFlags {
    /// Whether EVAL/EVALSHA of this script counts as a write for the server's gates (CLIENT
    /// PAUSE WRITE, read-only replicas): in compatibility mode it may replicate, so it does;
    /// with a shebang, unless it declared `no-writes`.
    pub fn may_write(self) -> bool {
        self.compat || !self.no_writes
    }
}

/// The script's flags and the length of its shebang line (0 without one), or Redis's error
/// text (without the `ERR ` prefix).
pub fn parse(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags { compat: true, ..Default::default() }, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let parts = common::config::split_args(&body[..end])
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| "Invalid engine in script shebang".to_string())?;
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = ScriptFlags::default();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(format!("Unknown lua shebang option: {}", String::from_utf8_lossy(part)));
        };
        // `flags=` alone declares none (Redis's split of an empty string has no parts).
        for flag in list.split(|&b| b == b',').filter(|_| !list.is_empty()) {
            match flag {
                b"no-writes" => flags.no_writes = true,
                b"allow-oom" => flags.allow_oom = true,
                b"allow-stale" => flags.allow_stale = true,
                b"no-cluster" => flags.no_cluster = true,
                b"allow-cross-slot-keys" => flags.allow_cross_slot_keys = true,
                other => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(other)
                    ))
                }
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_parse_as_redis_reads_them() {
        let compat = parse(b"return 1").unwrap();
        assert!(compat.0.compat && compat.0.may_write() && compat.1 == 0);
        let (flags, len) = parse(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(flags.no_writes && flags.allow_oom && !flags.compat && !flags.may_write());
        assert_eq!(len, "#!lua flags=no-writes,allow-oom".len());
        assert!(parse(b"#!lua\nreturn 1").unwrap().0.may_write());
        assert_eq!(parse(b"#!lua"), Err("Invalid script shebang".into()));
        assert!(parse(b"#!lua flags=\nreturn 1").unwrap().0.may_write());
        assert_eq!(
            parse(b"#!python\n"),
            Err("Unexpected engine in script shebang: #!python".into())
        );
        assert_eq!(parse(b"#!lua name=x\n"), Err("Unknown lua shebang option: name=x".into()));
        assert_eq!(
            parse(b"#!lua flags=bogus\n"),
            Err("Unexpected flag in script shebang: bogus".into())
        );
    }
}
