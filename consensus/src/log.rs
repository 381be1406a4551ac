//! The replicated log as a replica holds it: entries from `offset` on, the ones before
//! compacted into a snapshot. Positions are absolute slots throughout.
//!
//! The log also indexes its membership entries, because the core asks "which membership
//! governs this slot" on every acknowledgement and must not scan the log to answer.

use crate::types::{Entry, Membership, Slot};

/// Entries from slot `offset` on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    offset: Slot,
    entries: Vec<Entry>,
    // Slots of the `Entry::Config` entries held, ascending.
    configs: Vec<Slot>,
}

impl Log {
    /// A log holding `entries` from slot `offset`.
    pub fn new(offset: Slot, entries: Vec<Entry>) -> Log {
        let mut l = Log {
            offset,
            entries: Vec::new(),
            configs: Vec::new(),
        };
        l.extend(entries);
        l
    }

    fn membership(&self, slot: Slot) -> Option<&Membership> {
        match self.get(slot) {
            Some(Entry::Config(m)) => Some(m),
            _ => None,
        }
    }

    /// The last membership entry before `slot` (the one governing `slot`), if the log
    /// holds one.
    pub fn config_before(&self, slot: Slot) -> Option<(Slot, &Membership)> {
        let i = self.configs.partition_point(|&c| c < slot);
        let c = *self.configs.get(i.checked_sub(1)?)?;
        self.membership(c).map(|m| (c, m))
    }

    /// Membership entries at `slot` or later, in order.
    pub fn configs_from(&self, slot: Slot) -> impl Iterator<Item = (Slot, &Membership)> + '_ {
        let i = self.configs.partition_point(|&c| c < slot);
        self.configs[i..]
            .iter()
            .filter_map(|&c| self.membership(c).map(|m| (c, m)))
    }

    /// Slot of the last membership entry held.
    pub fn last_config_slot(&self) -> Option<Slot> {
        self.configs.last().copied()
    }

    /// First slot still held (everything before is in the snapshot).
    pub fn offset(&self) -> Slot {
        self.offset
    }

    /// One past the last slot.
    pub fn len(&self) -> Slot {
        self.offset + self.entries.len() as Slot
    }

    /// Whether no slot was ever filled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries held, from `offset()`.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry at `slot`, if held.
    pub fn get(&self, slot: Slot) -> Option<&Entry> {
        slot.checked_sub(self.offset)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Entries from `from` to the end (from the offset if `from` is below it).
    pub fn from(&self, from: Slot) -> Vec<Entry> {
        let i = from.saturating_sub(self.offset) as usize;
        self.entries
            .get(i..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default()
    }

    /// Entries in `from..to` (clamped to what is held).
    pub fn range(&self, from: Slot, to: Slot) -> Vec<Entry> {
        let a = (from.saturating_sub(self.offset) as usize).min(self.entries.len());
        let b = (to.saturating_sub(self.offset) as usize).clamp(a, self.entries.len());
        self.entries[a..b].to_vec()
    }

    /// Drops every slot from `len` on (never below the offset).
    pub fn truncate(&mut self, len: Slot) {
        let len = len.max(self.offset);
        self.entries.truncate((len - self.offset) as usize);
        let keep = self.configs.partition_point(|&c| c < len);
        self.configs.truncate(keep);
    }

    /// Appends at the end.
    pub fn push(&mut self, e: Entry) {
        if matches!(e, Entry::Config(_)) {
            self.configs.push(self.len());
        }
        self.entries.push(e);
    }

    /// Appends at the end.
    pub fn extend(&mut self, es: impl IntoIterator<Item = Entry>) {
        for e in es {
            self.push(e);
        }
    }

    /// Writes `entries` at slot `from`, cutting what followed; entries below the offset
    /// (already in the snapshot) are skipped.
    pub fn write_at(&mut self, from: Slot, entries: &[Entry]) {
        let skip = self.offset.saturating_sub(from) as usize;
        self.truncate(from.max(self.offset));
        self.extend(entries.iter().skip(skip).cloned());
    }

    /// Forgets every slot below `upto` (compacted into a snapshot); a log shorter than
    /// that becomes empty at `upto`.
    pub fn compact(&mut self, upto: Slot) {
        if upto <= self.offset {
            return;
        }
        let n = ((upto - self.offset) as usize).min(self.entries.len());
        self.entries.drain(..n);
        self.offset = upto;
        let gone = self.configs.partition_point(|&c| c < upto);
        self.configs.drain(..gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn c(s: &'static str) -> Entry {
        Entry::Command(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn positions_stay_absolute_across_compaction() {
        let mut l = Log::default();
        l.extend([c("a"), c("b"), c("c"), c("d")]);
        l.compact(2);
        assert_eq!((l.offset(), l.len()), (2, 4));
        assert_eq!(l.get(1), None);
        assert_eq!(l.get(2), Some(&c("c")));
        assert_eq!(l.from(0), vec![c("c"), c("d")]);
        assert_eq!(l.range(3, 9), vec![c("d")]);
        l.write_at(1, &[c("x"), c("y"), c("z")]);
        assert_eq!(l.entries(), &[c("y"), c("z")]);
        l.truncate(0);
        assert_eq!((l.offset(), l.len()), (2, 2));
        l.compact(10);
        assert_eq!((l.offset(), l.len()), (10, 10));
    }

    #[test]
    fn membership_entries_are_indexed_through_every_change() {
        let m = |ids: &[u64]| Entry::Config(Membership::of(ids.iter().copied()));
        let mut l = Log::new(0, vec![m(&[1, 2, 3]), c("a"), m(&[1, 2, 3, 4]), c("b")]);
        assert_eq!(l.config_before(0), None);
        assert_eq!(l.config_before(1).map(|(s, _)| s), Some(0));
        assert_eq!(l.config_before(2).map(|(s, _)| s), Some(0));
        assert_eq!(l.config_before(3).map(|(s, m)| (s, m.len())), Some((2, 4)));
        assert_eq!(
            l.configs_from(1).map(|(s, _)| s).collect::<Vec<_>>(),
            vec![2]
        );
        l.truncate(2);
        assert_eq!(l.last_config_slot(), Some(0));
        l.write_at(1, &[m(&[1, 2]), c("x")]);
        assert_eq!(l.last_config_slot(), Some(1));
        l.compact(2);
        assert_eq!(l.last_config_slot(), None, "compacted away");
        assert_eq!(l.config_before(5), None);
        l.push(m(&[7]));
        assert_eq!(l.config_before(4).map(|(s, _)| s), Some(3));
    }
}
