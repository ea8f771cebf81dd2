//! Percent-encoding of URL parts, shared by the API (decoding paths and queries) and by its
//! clients (the CLI and a node forwarding to the leader build paths with it).
//!
//! A leaf: it knows nothing of routes or commands.

/// Encodes everything outside the unreserved set (`A-Z a-z 0-9 - _ . ~`), so a job id or a
/// query value is one path segment or one parameter whatever it holds.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a path segment; `None` when a `%XX` is malformed or the result is not UTF-8.
pub fn decode_path(raw: &str) -> Option<String> {
    decode(raw, false)
}

/// Decodes a query key or value (`+` is a space).
pub fn decode_query(raw: &str) -> Option<String> {
    decode(raw, true)
}

/// `%XX` decoding (and `+` as a space when `plus` is set).
fn decode(raw: &str, plus: bool) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(decode_path(&encode("a b/c")).as_deref(), Some("a b/c"));
        assert_eq!(decode_query("%2A%2F5+*").as_deref(), Some("*/5 *"));
        assert_eq!(decode_path("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_path("%zz"), None);
        assert_eq!(decode_path("%FF"), None);
    }
}
