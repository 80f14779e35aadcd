//! The node count of the radix tree Redis keeps a stream's nodes in, which XINFO STREAM
//! reports as `radix-tree-nodes`.
//!
//! Redis's `rax` is a compressed trie over the 16-byte big-endian master IDs. Its shape, for
//! keys of equal length, is: a common prefix of two or more bytes is one compressed node and
//! a single byte one plain node; where keys diverge, one branching node holds every next
//! byte; each key ends in an empty leaf node; an empty tree is one node. We count that shape
//! without building it.

use super::StreamId;

/// The number of rax nodes holding `keys` (sorted, distinct).
pub fn node_count<'a>(keys: impl Iterator<Item = &'a StreamId>) -> u64 {
    let keys: Vec<[u8; 16]> = keys.map(|k| k.to_be_bytes()).collect();
    if keys.is_empty() {
        return 1;
    }
    let all: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    count(&all)
}

/// Nodes for the sorted, distinct, equally long, non-empty suffixes `keys`, starting with
/// the node that holds their first byte.
fn count(keys: &[&[u8]]) -> u64 {
    let first = keys[0];
    let last = keys[keys.len() - 1];
    // Sorted keys: the common prefix of all is that of the first and the last.
    let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
    if common > 0 {
        if common == first.len() {
            // One key: its remaining bytes in one node, then its leaf.
            return 2;
        }
        let rest: Vec<&[u8]> = keys.iter().map(|k| &k[common..]).collect();
        return 1 + count(&rest);
    }
    // A branching node, then each group of keys sharing a first byte.
    let mut total = 1;
    let mut i = 0;
    while i < keys.len() {
        let byte = keys[i][0];
        let j = i + keys[i..].iter().take_while(|k| k[0] == byte).count();
        let rest: Vec<&[u8]> = keys[i..j].iter().map(|k| &k[1..]).collect();
        total += if rest[0].is_empty() { 1 } else { count(&rest) };
        i = j;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_trees() {
        assert_eq!(node_count([].iter()), 1);
        assert_eq!(node_count([StreamId::new(1, 0)].iter()), 2);
        // Shared 15-byte prefix (one node), a branch on the last byte, two leaves.
        assert_eq!(node_count([StreamId::new(0, 1), StreamId::new(0, 2)].iter()), 4);
    }
}
