//! Feeds arbitrary bytes to the ACL file parser (ACL LOAD, `aclfile` at startup): it may
//! refuse them, but never panics, and whatever it accepts describes itself as rules that parse
//! back to the same users (what ACL SAVE then ACL LOAD does).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use node::acl::file;

fuzz_target!(|data: &[u8]| {
    let Ok(users) = file::parse(data, "fuzz.acl", false) else { return };
    let mut text = Vec::new();
    for user in &users {
        text.extend_from_slice(&user.line());
        text.push(b'\n');
    }
    let again = file::parse(&text, "fuzz.acl", false).expect("a described user parses back");
    assert_eq!(users.len(), again.len());
    for (a, b) in users.iter().zip(&again) {
        assert_eq!(a.describe(), b.describe(), "user {:?}", Bytes::copy_from_slice(&a.name));
    }
});
