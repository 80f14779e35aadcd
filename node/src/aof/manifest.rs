//! The Redis 7 multi-part AOF manifest (`appendonlydir/<appendfilename>.manifest`): one line
//! per file, `file <name> seq <n> type <b|h|i>` — the base (an RDB or AOF snapshot), history
//! files awaiting deletion, and the incremental files in order.

/// What a listed file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// The snapshot everything else applies to.
    Base,
    /// A file left over from before a rewrite (not loaded).
    History,
    /// Commands appended after the base, in `seq` order.
    Incr,
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name inside the AOF directory.
    pub name: String,
    /// Its sequence number.
    pub seq: u64,
    /// What it is.
    pub kind: FileType,
}

/// A parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Every line, in file order.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Parses a manifest. Errors name the line.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = common::config::split_args(line.as_bytes())
                .map_err(|_| format!("line {}: unbalanced quotes", n + 1))?;
            if words.len() % 2 != 0 {
                return Err(format!("line {}: invalid AOF manifest file format", n + 1));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks(2) {
                let value = String::from_utf8_lossy(&pair[1]).into_owned();
                match &pair[0][..] {
                    b"file" => name = Some(value),
                    b"seq" => seq = value.parse::<u64>().ok(),
                    b"type" => {
                        kind = match value.as_str() {
                            "b" => Some(FileType::Base),
                            "h" => Some(FileType::History),
                            "i" => Some(FileType::Incr),
                            _ => None,
                        }
                    }
                    _ => {} // unknown keys are ignored, as Redis does
                }
            }
            match (name, seq, kind) {
                (Some(name), Some(seq), Some(kind)) if !name.contains('/') => {
                    entries.push(Entry { name, seq, kind })
                }
                _ => return Err(format!("line {}: invalid AOF manifest file format", n + 1)),
            }
        }
        let m = Manifest { entries };
        if m.entries.iter().filter(|e| e.kind == FileType::Base).count() > 1 {
            return Err("found duplicate base file information".into());
        }
        Ok(m)
    }

    /// The manifest's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let kind = match e.kind {
                FileType::Base => 'b',
                FileType::History => 'h',
                FileType::Incr => 'i',
            };
            out.push_str(&format!("file {} seq {} type {kind}\n", e.name, e.seq));
        }
        out
    }

    /// The base file.
    pub fn base(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.kind == FileType::Base)
    }

    /// The incremental files, oldest first.
    pub fn incrs(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().filter(|e| e.kind == FileType::Incr).collect();
        v.sort_by_key(|e| e.seq);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_redis_writes() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base().unwrap().name, "appendonly.aof.1.base.rdb");
        let incrs: Vec<&str> = m.incrs().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(incrs, ["appendonly.aof.1.incr.aof", "appendonly.aof.2.incr.aof"]);
        assert_eq!(m.render(), text);
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Manifest::parse("file x seq\n").is_err());
        assert!(Manifest::parse("file x seq one type i\n").is_err());
        assert!(Manifest::parse("file ../x seq 1 type i\n").is_err());
        let two_bases = "file a seq 1 type b\nfile b seq 2 type b\n";
        assert!(Manifest::parse(two_bases).is_err());
    }
}
