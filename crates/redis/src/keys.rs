//! Every Redis key name tollgate uses, and nothing else: one key per (key, algorithm family).
//!
//! | user key `K` | Redis keys | cluster slot decided by |
//! |---|---|---|
//! | no hash tag (the usual case) | `tollgate:{K}:g`, `tollgate:{K}:s`, `tollgate:{K}:f` | `K` |
//! | with a hash tag, e.g. `{user:1}:search` | `tollgate:t:K:g`, `…:s`, `…:f` | the user's tag (`user:1`) |
//! | no hash tag and starting with `}` | `tollgate:c:{c}K:g`, `…:s`, `…:f` | `c` |
//!
//! The suffix names the family: `g` for `gcra`/`strict` (which share a bucket), `s` for
//! `sliding-window`, `f` for `fixed-window`. In each form the three keys of one user key share
//! a hash tag, so they live in one cluster slot, and [`reset`](crate::RedisStore) deletes them
//! in one command. A user key that already carries a hash tag keeps it, so that keys the user
//! tags alike (`{user:1}:search`, `{user:1}:upload`) share a slot and can be checked together
//! in one batch on a cluster.
//!
//! The three forms begin differently (`tollgate:{`, `tollgate:t:`, `tollgate:c:`), so no two
//! user keys ever map to the same Redis key: `abc` and `{abc}` stay apart. Hash tags follow
//! Redis's rule exactly: the text between the first `{` and the first `}` after it, when that
//! text is not empty.

use tollgate_core::Family;

/// The prefix of every Redis key tollgate writes.
pub const PREFIX: &str = "tollgate:";

/// Whether Redis Cluster would hash `key` by a tag: it has a `{`, a `}` after it, and at
/// least one byte between them.
pub fn has_hash_tag(key: &str) -> bool {
    let Some(open) = key.find('{') else {
        return false;
    };
    matches!(key[open + 1..].find('}'), Some(len) if len > 0)
}

/// The one-letter suffix of a family's key.
fn suffix(family: Family) -> &'static str {
    match family {
        Family::Gcra => "g",
        Family::SlidingWindow => "s",
        Family::FixedWindow => "f",
    }
}

/// The Redis key holding `key`'s state under `family`.
pub fn state_key(key: &str, family: Family) -> String {
    let suffix = suffix(family);
    let mut out = String::with_capacity(PREFIX.len() + key.len() + 8);
    out.push_str(PREFIX);
    if has_hash_tag(key) {
        // The prefix has no `{`, so the user's first tag stays the first tag.
        out.push_str("t:");
        out.push_str(key);
        out.push(':');
    } else if key.starts_with('}') {
        // `{}K}` would be an empty tag (no tag at all), which would spread the families over
        // different slots; a fixed tag keeps them together.
        out.push_str("c:{c}");
        out.push_str(key);
        out.push(':');
    } else {
        out.push('{');
        out.push_str(key);
        out.push_str("}:");
    }
    out.push_str(suffix);
    out
}

/// The Redis keys of `key` under every family, in [`Family::ALL`] order.
pub fn all_state_keys(key: &str) -> [String; 3] {
    Family::ALL.map(|family| state_key(key, family))
}

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The Redis Cluster hash slot of a Redis key: CRC16 (XMODEM) of its hash tag, or of the whole
/// key when it has none, modulo [`SLOTS`].
pub fn redis_key_slot(redis_key: &str) -> u16 {
    let bytes = redis_key.as_bytes();
    let tagged = redis_key.find('{').and_then(|open| {
        let len = redis_key[open + 1..].find('}')?;
        (len > 0).then(|| &bytes[open + 1..open + 1 + len])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS
}

/// The Redis Cluster hash slot that holds all of user key `key`'s state (every family's).
pub fn slot(key: &str) -> u16 {
    redis_key_slot(&state_key(key, Family::Gcra))
}

/// CRC16-CCITT as Redis Cluster computes it (XMODEM: polynomial 0x1021, initial value 0, no
/// reflection). Bitwise rather than by table: a batch hashes a handful of short keys.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would use for a key (the whole key when there is none).
    fn slot_text(redis_key: &str) -> &str {
        if let Some(open) = redis_key.find('{')
            && let Some(len) = redis_key[open + 1..].find('}')
            && len > 0
        {
            return &redis_key[open + 1..open + 1 + len];
        }
        redis_key
    }

    #[test]
    fn plain_keys_are_wrapped_in_a_tag() {
        assert_eq!(state_key("user:1", Family::Gcra), "tollgate:{user:1}:g");
        assert_eq!(
            state_key("user:1", Family::SlidingWindow),
            "tollgate:{user:1}:s"
        );
        assert_eq!(
            state_key("user:1", Family::FixedWindow),
            "tollgate:{user:1}:f"
        );
    }

    #[test]
    fn a_users_tag_is_kept() {
        assert_eq!(
            state_key("{user:1}:search", Family::Gcra),
            "tollgate:t:{user:1}:search:g"
        );
        let a = state_key("{user:1}:search", Family::Gcra);
        let b = state_key("{user:1}:upload", Family::FixedWindow);
        assert_eq!(slot_text(&a), "user:1");
        assert_eq!(slot_text(&b), "user:1");
    }

    #[test]
    fn the_families_of_a_key_share_a_slot_and_keys_never_collide() {
        let keys = [
            "abc",
            "{abc}",
            "a{b}c",
            "a{}b",
            "{}",
            "}",
            "}x",
            "}{y}",
            "x}",
            "a{",
            "{",
            "}{",
            "{{}}",
            "t:abc",
            "c:{c}x",
            "{c}x",
            "tollgate:{x}:g",
        ];
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let [g, s, f] = all_state_keys(key);
            assert_eq!(slot_text(&g), slot_text(&s), "{key}");
            assert_eq!(slot_text(&g), slot_text(&f), "{key}");
            assert!(!slot_text(&g).is_empty(), "{key}");
            for k in [g, s, f] {
                assert!(seen.insert(k.clone()), "{key} collides at {k}");
            }
        }
    }

    #[test]
    fn slots_match_redis_cluster() {
        // The reference check value of CRC16/XMODEM, and slots Redis's CLUSTER KEYSLOT gives.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(redis_key_slot("123456789"), 12739);
        assert_eq!(redis_key_slot("foo"), 12182);
        assert_eq!(redis_key_slot("bar"), 5061);
        assert_eq!(redis_key_slot(""), 0);
        assert_eq!(
            redis_key_slot("{user1000}.following"),
            redis_key_slot("user1000")
        );
        assert_eq!(redis_key_slot("foo{}{bar}"), redis_key_slot("foo{}{bar}"));
        assert_ne!(
            redis_key_slot("foo{}{bar}"),
            redis_key_slot("bar"),
            "empty tag: no tag"
        );
        assert_eq!(redis_key_slot("foo{{bar}}zap"), redis_key_slot("{bar"));
        assert_eq!(slot("user:1"), redis_key_slot("user:1"));
        assert_eq!(slot("{user:1}:search"), slot("{user:1}:upload"));
        for key in ["abc", "{abc}", "}x", "a{}b"] {
            for k in all_state_keys(key) {
                assert_eq!(redis_key_slot(&k), slot(key), "{key}");
            }
        }
    }

    #[test]
    fn hash_tags_follow_redis() {
        assert!(has_hash_tag("{a}"));
        assert!(has_hash_tag("x{a}y{b}"));
        assert!(has_hash_tag("}{a}"));
        assert!(!has_hash_tag("{}a{b}"), "the first tag is empty: no tag");
        assert!(!has_hash_tag("a}b{"));
        assert!(!has_hash_tag("plain"));
    }
}
