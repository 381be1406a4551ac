//! A key-value state machine: the application the simulator and the TCP tests replicate,
//! and an example of [`StateMachine`].

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use bytes::{BufMut, Bytes, BytesMut};

use crate::replica::StateMachine;

// A persistent map: a snapshot takes a copy in O(1) and encodes it on another thread
// while the replica goes on applying. A fixed-key hasher: the same map iterates (and
// snapshots) in the same order in every run, which keeps simulations replayable. Keys
// come only from authenticated clients.
type Map = imbl::GenericHashMap<
    Bytes,
    Bytes,
    BuildHasherDefault<DefaultHasher>,
    imbl::shared_ptr::DefaultSharedPtr,
>;

/// A map from keys to values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kv {
    map: Map,
}

/// A decoded KV command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put(Bytes, Bytes),
}

impl Kv {
    /// Encodes `put(key, value)`.
    pub fn put(key: &[u8], value: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(3 + key.len() + value.len());
        b.put_u8(b'P');
        b.put_u16(key.len() as u16);
        b.put_slice(key);
        b.put_slice(value);
        b.freeze()
    }

    /// Encodes `get(key)`.
    pub fn get(key: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(1 + key.len());
        b.put_u8(b'G');
        b.put_slice(key);
        b.freeze()
    }

    /// Decodes a command (`None`: not a KV command).
    pub fn decode(command: &[u8]) -> Option<KvCommand> {
        match command.split_first()? {
            (b'P', rest) if rest.len() >= 2 => {
                let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let key = rest.get(2..2 + n)?;
                let value = &rest[2 + n..];
                Some(KvCommand::Put(
                    Bytes::copy_from_slice(key),
                    Bytes::copy_from_slice(value),
                ))
            }
            _ => None,
        }
    }

    /// The value of `key`.
    pub fn value(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }
}

impl StateMachine for Kv {
    fn apply(&mut self, command: &[u8]) -> Bytes {
        match Kv::decode(command) {
            Some(KvCommand::Put(k, v)) => {
                self.map.insert(k, v);
                Bytes::from_static(b"OK")
            }
            None => Bytes::from_static(b"ERR bad command"),
        }
    }

    fn query(&self, query: &[u8]) -> Bytes {
        match query.split_first() {
            Some((b'G', key)) => self.map.get(key).cloned().unwrap_or_default(),
            _ => Bytes::from_static(b"ERR bad query"),
        }
    }

    fn snapshot(&self) -> Bytes {
        encode_map(&self.map)
    }

    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        let copy = self.map.clone();
        Box::new(move || encode_map(&copy))
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let mut map = Map::default();
        let mut rest = data;
        let take = |rest: &mut &[u8]| -> Result<Bytes, String> {
            if rest.len() < 4 {
                return Err("kv snapshot ends inside a length".into());
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let body = rest
                .get(4..4 + n)
                .ok_or_else(|| "kv snapshot ends inside a value".to_string())?;
            let out = Bytes::copy_from_slice(body);
            *rest = &rest[4 + n..];
            Ok(out)
        };
        while !rest.is_empty() {
            let k = take(&mut rest)?;
            let v = take(&mut rest)?;
            map.insert(k, v);
        }
        self.map = map;
        Ok(())
    }
}

fn encode_map(map: &Map) -> Bytes {
    let size: usize = map.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut b = BytesMut::with_capacity(size);
    for (k, v) in map {
        b.put_u32(k.len() as u32);
        b.put_slice(k);
        b.put_u32(v.len() as u32);
        b.put_slice(v);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_an_error_result() {
        let c = Kv::put(b"k", b"v");
        assert_eq!(
            Kv::decode(&c),
            Some(KvCommand::Put(
                Bytes::from_static(b"k"),
                Bytes::from_static(b"v")
            ))
        );
        let mut kv = Kv::default();
        assert_eq!(kv.apply(&c), Bytes::from_static(b"OK"));
        assert_eq!(kv.query(&Kv::get(b"k")), Bytes::from_static(b"v"));
        for garbage in [&b""[..], b"P", b"P\xff\xff", b"X123"] {
            assert!(kv.apply(garbage).starts_with(b"ERR"));
        }
        let mut copy = Kv::default();
        copy.restore(&kv.snapshot()).unwrap();
        assert_eq!(copy, kv);
        assert!(copy.restore(b"\0\0\0\x09abc").is_err());
    }
}
