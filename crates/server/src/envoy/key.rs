//! The store key of a matched descriptor.
//!
//! `envoy:` + domain, then `:key=value` per entry, each part escaped (`\` → `\\`, `:` → `\:`,
//! `=` → `\=`) so the key reads back into exactly one (domain, entries) list: `a:b=c` as a
//! value cannot pose as two entries. The values are the request's own, also under a
//! wildcard rule, so each client IP (say) gets its own bucket.
//!
//! A key longer than tollgate's 1024 bytes becomes `envoy#` + the FNV-1a 128-bit hash of
//! the full key in hex + `:` + as much of the escaped domain and entries as fits. FNV is
//! written out here because std's `DefaultHasher` may change between Rust releases, and a
//! key must stay the same across builds for a shared store (Redis) to keep its buckets.
//! Unhashed keys start with `envoy:`, so a hashed key never equals one of them.

use tollgate_core::MAX_KEY_BYTES;

/// The store key of a descriptor with these entries in `domain`.
pub fn store_key<'e>(
    domain: &str,
    entries: impl IntoIterator<Item = (&'e str, &'e str)>,
) -> String {
    let mut body = String::new();
    escape_into(&mut body, domain);
    for (key, value) in entries {
        body.push(':');
        escape_into(&mut body, key);
        body.push('=');
        escape_into(&mut body, value);
    }
    const PLAIN: &str = "envoy:";
    if PLAIN.len() + body.len() <= MAX_KEY_BYTES {
        return format!("{PLAIN}{body}");
    }
    let mut full = String::with_capacity(PLAIN.len() + body.len());
    full.push_str(PLAIN);
    full.push_str(&body);
    let mut key = format!("envoy#{:032x}:", fnv1a_128(full.as_bytes()));
    let mut room = MAX_KEY_BYTES - key.len();
    while !body.is_char_boundary(room) {
        room -= 1;
    }
    key.push_str(&body[..room]);
    key
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | ':' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// FNV-1a, 128 bits (the offset basis and prime of the FNV reference).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET_BASIS;
    for &b in bytes {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_joined_with_separators_escaped() {
        assert_eq!(
            store_key("edge", [("remote_address", "10.0.0.1")]),
            "envoy:edge:remote_address=10.0.0.1"
        );
        assert_eq!(
            store_key("a:b", [("k=1", "v\\:2")]),
            r"envoy:a\:b:k\=1=v\\\:2"
        );
    }

    #[test]
    fn a_separator_in_a_value_cannot_pose_as_another_split() {
        // Each pair would read the same if `:` and `=` were not escaped.
        let pairs = [
            (
                store_key("d", [("a", "b:c=d")]),
                store_key("d", [("a", "b"), ("c", "d")]),
            ),
            (
                store_key("d", [("a=b", "c")]),
                store_key("d", [("a", "b=c")]),
            ),
            (
                store_key("d:a", [("b", "c")]),
                store_key("d", [("a:b", "c")]),
            ),
            (
                store_key("d", [("a\\", "b")]),
                store_key("d", [("a", "\\b")]),
            ),
        ];
        for (one, other) in pairs {
            assert_ne!(one, other);
        }
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn long_keys_are_hashed_deterministically_within_the_limit() {
        let long = "é".repeat(600); // 1200 bytes, 2 per char: the cut must land on a boundary
        let key = store_key("edge", [("user", long.as_str())]);
        assert!(key.len() <= MAX_KEY_BYTES, "{}", key.len());
        assert!(key.starts_with("envoy#"), "{key}");
        assert!(key.contains(":edge:user="), "{key}");
        assert_eq!(key, store_key("edge", [("user", long.as_str())]));
        let other = format!("{long}x");
        assert_ne!(key, store_key("edge", [("user", other.as_str())]));
        // Exactly at the limit: kept as is.
        let fits = "v".repeat(MAX_KEY_BYTES - "envoy:edge:k=".len());
        assert_eq!(
            store_key("edge", [("k", fits.as_str())]).len(),
            MAX_KEY_BYTES
        );
        assert!(store_key("edge", [("k", fits.as_str())]).starts_with("envoy:"));
    }
}
