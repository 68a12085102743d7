//! Percent-decoding, with one implementation and two documented rule sets.
//!
//! Both rule sets decode `%XX` (two hex digits, either case) to the byte it stands for and
//! leave an invalid escape (`%zz`, `%4` at the end, `%+A`) as it is. They differ in two ways:
//!
//! - **`+`**: in a query string (`application/x-www-form-urlencoded`) it is a space; in a path
//!   it is a plus.
//! - **bytes that are not UTF-8**: replaced by U+FFFD by the lossy functions
//!   ([`query_component`], [`path_segment_lossy`]); refused by [`path_segment`], for names
//!   that must round-trip exactly (Yjs document names).

/// How `+` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plus {
    /// `+` is a space (query strings).
    Space,
    /// `+` stays a plus (paths).
    Keep,
}

/// The one decoder: `%XX` escapes, `+` as `plus` says; invalid escapes stay as they are.
fn decode(s: &str, plus: Plus) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus == Plus::Space => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Decodes a query-string key or value: `%XX` escapes and `+` as a space; invalid escapes
/// stay; bytes that are not UTF-8 become U+FFFD.
pub fn query_component(s: &str) -> String {
    String::from_utf8_lossy(&decode(s, Plus::Space)).into_owned()
}

/// Decodes a path segment: `%XX` escapes (`+` stays a plus); invalid escapes stay; bytes
/// that are not UTF-8 become U+FFFD.
pub fn path_segment_lossy(s: &str) -> String {
    String::from_utf8_lossy(&decode(s, Plus::Keep)).into_owned()
}

/// Decodes a path segment like [`path_segment_lossy`], but `None` when the result is not
/// UTF-8 (for names that must round-trip exactly).
pub fn path_segment(s: &str) -> Option<String> {
    String::from_utf8(decode(s, Plus::Keep)).ok()
}

/// The first value of query parameter `name` in a raw query string, decoded with
/// `query_component` (the key is decoded before it is compared).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (query_component(k) == name).then(|| query_component(v))
    })
}

/// The byte two hex digits stand for. Only digits: `u8::from_str_radix` alone would also
/// take a sign (`%+A` would decode as a newline).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match pair {
        [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = "EIO=4&transport=polling&t=N8hyd6w&token=a%2Bb%3D&name=x+y";
        assert_eq!(query_param(q, "EIO").as_deref(), Some("4"));
        assert_eq!(query_param(q, "token").as_deref(), Some("a+b="));
        assert_eq!(query_param(q, "name").as_deref(), Some("x y"));
        assert_eq!(query_param(q, "sid"), None);
        assert_eq!(query_param("a=%zz&b=%4", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("b=%4", "b").as_deref(), Some("%4"));
        // Found by the property tests: a sign is no hex digit.
        assert_eq!(query_param("c=%+A%-1", "c").as_deref(), Some("% A%-1"));
        assert_eq!(query_param("d=%c3%A9", "d").as_deref(), Some("\u{e9}"));
    }

    #[test]
    fn paths_keep_plus_and_differ_only_on_invalid_utf8() {
        assert_eq!(path_segment_lossy("a+b%20c"), "a+b c");
        assert_eq!(path_segment("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(path_segment("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(path_segment("%ff"), None);
        assert_eq!(path_segment_lossy("%ff"), "\u{fffd}");
        assert_eq!(path_segment("%+1").as_deref(), Some("%+1"));
    }
}
