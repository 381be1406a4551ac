//! The byte encodings shared by the on-disk log ([`crate::storage`]) and the network
//! ([`crate::wire`]): integers big-endian, byte strings as `[len u32][bytes]`, entries,
//! memberships and snapshots. One encoding for both, so a batch read from disk and one
//! received from a peer are checked by the same code.
//!
//! [`Reader`] never panics and never trusts a length: a count larger than the bytes left
//! is refused before anything is allocated for it.

use bytes::{Buf, BufMut, Bytes};

use crate::types::{Ballot, Entry, Membership, Snapshot};

/// Longest member address accepted (a host name and port fit many times over).
const MAX_ADDR: usize = 1024;

pub(crate) fn put_ballot(out: &mut impl BufMut, b: Ballot) {
    out.put_u64(b.round);
    out.put_u64(b.node);
}

pub(crate) fn put_bytes(out: &mut impl BufMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

pub(crate) fn put_membership(out: &mut impl BufMut, m: &Membership) {
    out.put_u32(m.len() as u32);
    for (id, addr) in m.iter() {
        out.put_u64(id);
        put_bytes(out, addr.as_bytes());
    }
}

pub(crate) fn put_entry(out: &mut impl BufMut, e: &Entry) {
    match e {
        Entry::Noop => out.put_u8(0),
        Entry::Command(c) => {
            out.put_u8(1);
            put_bytes(out, c);
        }
        Entry::Config(m) => {
            out.put_u8(2);
            put_membership(out, m);
        }
    }
}

pub(crate) fn put_entries(out: &mut impl BufMut, entries: &[Entry]) {
    out.put_u32(entries.len() as u32);
    for e in entries {
        put_entry(out, e);
    }
}

pub(crate) fn put_snapshot(out: &mut impl BufMut, s: &Snapshot) {
    out.put_u64(s.upto);
    put_membership(out, &s.members);
    put_bytes(out, &s.data);
}

/// Reads the encodings above off a buffer; byte strings are slices of it, not copies.
pub(crate) struct Reader {
    b: Bytes,
    total: usize,
}

impl Reader {
    pub(crate) fn new(b: Bytes) -> Reader {
        let total = b.len();
        Reader { b, total }
    }

    pub(crate) fn need(&self, n: usize) -> Result<(), String> {
        if self.b.remaining() < n {
            Err(format!(
                "ends early at byte {} ({} of {n} bytes left)",
                self.total - self.b.remaining(),
                self.b.remaining()
            ))
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        self.need(1)?;
        Ok(self.b.get_u8())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        self.need(4)?;
        Ok(self.b.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        self.need(8)?;
        Ok(self.b.get_u64())
    }

    pub(crate) fn ballot(&mut self) -> Result<Ballot, String> {
        Ok(Ballot::new(self.u64()?, self.u64()?))
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, String> {
        let n = self.u32()? as usize;
        self.need(n)?;
        Ok(self.b.split_to(n))
    }

    pub(crate) fn membership(&mut self) -> Result<Membership, String> {
        let n = self.u32()? as usize;
        // Each member takes at least 12 bytes: a count beyond that is a lie.
        self.need(n.saturating_mul(12))?;
        let mut m = Membership::default();
        for _ in 0..n {
            let id = self.u64()?;
            let addr = self.bytes()?;
            if addr.len() > MAX_ADDR {
                return Err(format!(
                    "member {id} has an address of {} bytes",
                    addr.len()
                ));
            }
            let addr = std::str::from_utf8(&addr)
                .map_err(|_| format!("member {id} has an address that is not UTF-8"))?;
            if !m.insert(id, addr.to_owned()) {
                return Err(format!("member {id} is listed twice"));
            }
        }
        Ok(m)
    }

    pub(crate) fn entries(&mut self) -> Result<Vec<Entry>, String> {
        let n = self.u32()? as usize;
        // Each entry takes at least one byte: a count beyond that is a lie.
        self.need(n)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(match self.u8()? {
                0 => Entry::Noop,
                1 => Entry::Command(self.bytes()?),
                2 => Entry::Config(self.membership()?),
                t => return Err(format!("unknown entry tag {t}")),
            });
        }
        Ok(v)
    }

    pub(crate) fn snapshot(&mut self) -> Result<Snapshot, String> {
        Ok(Snapshot {
            upto: self.u64()?,
            members: self.membership()?,
            data: self.bytes()?,
        })
    }

    pub(crate) fn done(&self) -> Result<(), String> {
        if self.b.has_remaining() {
            Err(format!("{} stray bytes at the end", self.b.remaining()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_and_entries_round_trip() {
        let m = Membership::of([1, 2]).with(9, "10.0.0.9:7000");
        let entries = vec![
            Entry::Noop,
            Entry::Command(Bytes::from_static(b"x")),
            Entry::Config(m.clone()),
        ];
        let snap = Snapshot {
            upto: 7,
            data: Bytes::from_static(b"state"),
            members: m,
        };
        let mut out = Vec::new();
        put_entries(&mut out, &entries);
        put_snapshot(&mut out, &snap);
        let mut r = Reader::new(Bytes::from(out));
        assert_eq!(r.entries().unwrap(), entries);
        assert_eq!(r.snapshot().unwrap(), snap);
        r.done().unwrap();
    }

    #[test]
    fn lying_counts_and_bad_addresses_are_refused() {
        let mut out = Vec::new();
        out.put_u32(u32::MAX);
        assert!(Reader::new(Bytes::from(out)).membership().is_err());
        let mut out = Vec::new();
        out.put_u32(2);
        for _ in 0..2 {
            out.put_u64(4);
            put_bytes(&mut out, b"a:1");
        }
        let e = Reader::new(Bytes::from(out)).membership().unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let mut out = Vec::new();
        out.put_u32(1);
        out.put_u64(4);
        put_bytes(&mut out, &[0xff, 0xfe]);
        assert!(Reader::new(Bytes::from(out)).membership().is_err());
    }
}
