//! The one byte encoding of MUSIC's commands, answers and node calls: postcard (compact,
//! serde-driven). Decoding never panics; garbage is an `Err` naming what is wrong.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Encodes a value for the log or the wire.
pub fn encode<T: Serialize>(v: &T) -> Bytes {
    // These are plain enums and structs: serialising into a Vec cannot fail.
    Bytes::from(postcard::to_stdvec(v).unwrap_or_default())
}

/// Decodes what [`encode`] produced.
pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(b).map_err(|e| e.to_string())
}
