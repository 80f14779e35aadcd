//! LCS: the longest common subsequence of two strings, by the textbook dynamic programme, with
//! Redis's walk back through the table for the matched ranges (IDX), so ranges, their order and
//! the chosen subsequence are Redis's own.

use bytes::Bytes;
use common::resp::Frame;

use crate::cmd::args::{int, is};
use crate::cmd::flags::*;
use crate::cmd::{cmd, CommandSpec};
use crate::db::Value;
use crate::error::{CmdResult, CommandError};
use crate::exec::Ctx;

/// LCS.
pub static COMMANDS: &[CommandSpec] = &[cmd("lcs", -3, READONLY, (1, 2, 1), lcs)];

fn string_or_empty(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Vec<u8>, CommandError> {
    match ctx.lookup_read(key) {
        None => Ok(Vec::new()),
        Some(Value::Str { bytes, .. }) => Ok(bytes.to_vec()),
        Some(_) => Err(CommandError::err("The specified keys must contain string values")),
    }
}

fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Both keys are looked up before either is judged, as in Redis.
    let a = string_or_empty(ctx, &args[1]);
    let b = string_or_empty(ctx, &args[2]);
    let (a, b) = (a?, b?);
    let (mut idx, mut len, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "idx") {
            idx = true;
        } else if is(opt, "len") {
            len = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && i + 1 < args.len() {
            min_len = int(&args[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if idx && len {
        return Err(CommandError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let limit = ctx.server.config.read().settings.proto_max_bulk_len as u64;
    if cells.saturating_mul(4) > limit {
        return Err(CommandError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    // table[i][j]: the LCS length of a[..i] and b[..j].
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    if len {
        return Ok(Frame::Integer(total as i64));
    }

    // Walk back from the end, collecting the subsequence and the matched ranges.
    let mut result = vec![0u8; total as usize];
    let mut left = total as usize;
    let mut matches = Vec::new();
    // (a_start, a_end, b_start, b_end) of the range being extended backwards.
    let mut open: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[left - 1] = a[i - 1];
            match open.as_mut() {
                None => open = Some((i - 1, i - 1, j - 1, j - 1)),
                Some(r) if r.0 == i && r.2 == j => {
                    r.0 -= 1;
                    r.2 -= 1;
                }
                Some(_) => emit = true,
            }
            if open.is_some_and(|r| r.0 == 0 || r.2 == 0) {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = open.is_some();
        }
        if emit {
            if let Some((a0, a1, b0, b1)) = open.take() {
                let match_len = a1 - a0 + 1;
                if min_len == 0 || match_len as i64 >= min_len {
                    let mut entry = vec![
                        Frame::Array(vec![Frame::Integer(a0 as i64), Frame::Integer(a1 as i64)]),
                        Frame::Array(vec![Frame::Integer(b0 as i64), Frame::Integer(b1 as i64)]),
                    ];
                    if with_len {
                        entry.push(Frame::Integer(match_len as i64));
                    }
                    matches.push(Frame::Array(entry));
                }
            }
        }
    }
    if idx {
        return Ok(Frame::Map(vec![
            (Frame::bulk_static("matches"), Frame::Array(matches)),
            (Frame::bulk_static("len"), Frame::Integer(total as i64)),
        ]));
    }
    Ok(Frame::Bulk(Bytes::from(result)))
}
