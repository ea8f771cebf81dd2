//! JSON written straight into a byte buffer, for the answers whose size scales with the data
//! (listings, transaction results): byte for byte what serde_json prints for the same
//! `Value` (its fields sorted by name), without building the `Value`.
//!
//! Must not decide what an answer holds (the endpoint files do); only how it is spelled.

use base64::Engine as _;

use crate::state::KvEntry;

/// Appends `e` as Consul's JSON: byte for byte what `entry_json(e, with_value)` prints
/// (serde_json orders the fields by name), written straight into `buf`. A listing of a large
/// prefix is then one buffer, never a tree of maps and strings beside it.
pub fn write_entry(buf: &mut Vec<u8>, e: &KvEntry, with_value: bool) {
    buf.extend_from_slice(b"{\"CreateIndex\":");
    write_u64(buf, e.create_index);
    buf.extend_from_slice(b",\"Flags\":");
    write_u64(buf, e.flags);
    buf.extend_from_slice(b",\"Key\":");
    write_str(buf, &e.key);
    buf.extend_from_slice(b",\"LockIndex\":");
    write_u64(buf, e.lock_index);
    buf.extend_from_slice(b",\"ModifyIndex\":");
    write_u64(buf, e.modify_index);
    if let Some(session) = &e.session {
        buf.extend_from_slice(b",\"Session\":");
        write_str(buf, session);
    }
    buf.extend_from_slice(b",\"Value\":");
    if !with_value || e.value.is_empty() {
        buf.extend_from_slice(b"null");
    } else {
        buf.push(b'"');
        let start = buf.len();
        let len = base64::encoded_len(e.value.len(), true).unwrap_or(0);
        buf.resize(start + len, 0);
        // The slice is exactly the encoded length, so this cannot fail.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(&e.value, &mut buf[start..]);
        buf.push(b'"');
    }
    buf.push(b'}');
}

/// Appends `n` in decimal (what `write!` does, without the formatting machinery).
fn write_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it (only quotes, backslashes
/// and control characters need it; keys rarely have any).
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::kv::entry_json;

    #[test]
    fn written_entries_match_serde_json() {
        let mut e = KvEntry {
            key: String::new(),
            value: b"hello, world".to_vec(),
            flags: 42,
            lock_index: 3,
            session: None,
            create_index: 7,
            modify_index: 1 << 40,
        };
        for (key, value, session) in [
            ("cronnode/jobs/0a/j-1", b"x".to_vec(), None),
            ("a/\"b\u{7}é\u{7f}", Vec::new(), Some("s-1".to_string())),
            ("k", (0..=255).collect(), Some("s\\2".to_string())),
        ] {
            e.key = key.to_string();
            e.value = value;
            e.session = session;
            for with_value in [true, false] {
                let mut buf = Vec::new();
                write_entry(&mut buf, &e, with_value);
                assert_eq!(
                    String::from_utf8(buf).ok(),
                    Some(entry_json(&e, with_value).to_string())
                );
            }
        }
    }
}
