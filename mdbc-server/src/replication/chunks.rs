//! Log entries as MUSIC values: a transaction's entry may be larger than one value may be
//! (a COPY of many rows), so a large entry is stored as parts under its key.
//!
//! The value at an entry's key starts with a tag: `WHOLE` and the entry's bytes, or `SPLIT`
//! and a manifest (part count, total length, FNV-1a hash) whose parts are at `key/0`,
//! `key/1`, …. Parts are written before the manifest, so a manifest seen means every part
//! was written; a reader that does not have a part yet waits for it like for an entry it
//! does not have. The transaction stays one entry, applied atomically: splitting it into
//! several entries would let another site see half of it.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest part: half a MUSIC value, leaving room for the key space's own framing.
pub const PART: usize = music_core::store::MAX_VALUE / 2;

const WHOLE: u8 = 0;
const SPLIT: u8 = 1;
const MANIFEST_LEN: usize = 1 + 4 + 8 + 8;

/// What a reader found at an entry's key.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// The entry, complete.
    Whole(Bytes),
    /// A manifest: the entry is in `parts` parts under the key.
    Split(Manifest),
}

/// A split entry's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// Number of parts.
    pub parts: u32,
    len: u64,
    hash: u64,
}

/// Why a stored value is not an entry.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Not a value this module wrote.
    #[error("malformed log value ({0})")]
    Malformed(&'static str),
    /// Parts that do not add up to what the manifest says.
    #[error("the parts of a split log entry do not match its manifest")]
    Mismatch,
}

fn fnv1a(parts: &[Bytes]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Key of part `i` of the entry at `key`.
pub fn part_key(key: &str, i: u32) -> String {
    format!("{key}/{i}")
}

/// The keys of the parts [`split`] makes of `entry` stored under `key` (none when it is
/// stored whole).
pub fn part_keys(key: &str, entry: &[u8]) -> Vec<String> {
    if entry.len() < PART {
        return Vec::new();
    }
    (0..entry.len().div_ceil(PART))
        .map(|i| part_key(key, i as u32))
        .collect()
}

/// The values to write for `entry`: the parts (in order, to be written first) and the
/// value for the entry's own key (written last).
pub fn split(entry: &[u8]) -> (Vec<Bytes>, Bytes) {
    if entry.len() < PART {
        let mut v = BytesMut::with_capacity(entry.len() + 1);
        v.put_u8(WHOLE);
        v.put_slice(entry);
        return (Vec::new(), v.freeze());
    }
    let parts: Vec<Bytes> = entry.chunks(PART).map(Bytes::copy_from_slice).collect();
    let mut m = BytesMut::with_capacity(MANIFEST_LEN);
    m.put_u8(SPLIT);
    m.put_u32(parts.len() as u32);
    m.put_u64(entry.len() as u64);
    m.put_u64(fnv1a(&parts));
    (parts, m.freeze())
}

/// Reads the value at an entry's key.
pub fn parse(value: &Bytes) -> Result<Stored, ChunkError> {
    match value.first() {
        Some(&WHOLE) => Ok(Stored::Whole(value.slice(1..))),
        Some(&SPLIT) if value.len() == MANIFEST_LEN => {
            let n = |r: std::ops::Range<usize>| -> u64 {
                value[r].iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
            };
            let parts = n(1..5) as u32;
            if parts == 0 {
                return Err(ChunkError::Malformed("a manifest of no parts"));
            }
            Ok(Stored::Split(Manifest {
                parts,
                len: n(5..13),
                hash: n(13..21),
            }))
        }
        Some(&SPLIT) => Err(ChunkError::Malformed("a manifest of the wrong length")),
        Some(_) => Err(ChunkError::Malformed("unknown tag")),
        None => Err(ChunkError::Malformed("empty")),
    }
}

/// Joins a split entry's parts, checked against its manifest.
pub fn join(m: &Manifest, parts: &[Bytes]) -> Result<Vec<u8>, ChunkError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if parts.len() != m.parts as usize || len as u64 != m.len || fnv1a(parts) != m.hash {
        return Err(ChunkError::Mismatch);
    }
    let mut out = Vec::with_capacity(len);
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_entries_are_one_value_and_large_ones_round_trip_in_parts() {
        let small = vec![7u8; 100];
        let (parts, v) = split(&small);
        assert!(parts.is_empty());
        assert_eq!(parse(&v).unwrap(), Stored::Whole(Bytes::from(small)));

        let big: Vec<u8> = (0..(2 * PART + 10)).map(|i| (i % 251) as u8).collect();
        let (parts, v) = split(&big);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= PART));
        let Stored::Split(m) = parse(&v).unwrap() else {
            panic!("not split")
        };
        assert_eq!(join(&m, &parts).unwrap(), big);
        // A stale or foreign part is detected, not applied.
        let mut bad = parts.clone();
        bad[1] = Bytes::from(vec![0u8; bad[1].len()]);
        assert!(matches!(join(&m, &bad), Err(ChunkError::Mismatch)));
        assert!(matches!(join(&m, &parts[..2]), Err(ChunkError::Mismatch)));
    }

    #[test]
    fn garbage_is_refused() {
        for v in [&b""[..], &[9u8, 1, 2][..], &[SPLIT, 0, 0][..]] {
            assert!(parse(&Bytes::copy_from_slice(v)).is_err(), "{v:?}");
        }
        let mut zero = vec![SPLIT];
        zero.extend_from_slice(&[0u8; MANIFEST_LEN - 1]);
        assert!(parse(&Bytes::from(zero)).is_err());
    }
}
