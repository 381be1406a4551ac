//! Serial sequences: the last value each gave (or the column's maximum at start-up).

use std::collections::HashMap;

use rusqlite::Connection;
use sql_capture::{quote_ident, Catalog};

/// Serial sequences: the last value each gave (or the column's maximum at start-up).
///
/// Sites of a cluster draw from disjoint stripes, so two sites inserting at once never
/// pick the same key: with stride `s` and slot `k` a site gives only values `≡ k + 1
/// (mod s)`. A single site uses stride 1.
#[derive(Debug, Default)]
pub struct Sequences {
    last: HashMap<String, i64>,
    stride: i64,
    slot: i64,
}

impl Sequences {
    /// Values from now on come from stripe `slot` of `stride`.
    pub fn set_stripe(&mut self, stride: i64, slot: i64) {
        self.stride = stride;
        self.slot = slot;
    }

    /// A new serial column's sequence, starting at 1.
    pub fn start(&mut self, name: String) {
        self.last.insert(name, 0);
    }

    /// The next value of sequence `name`; `None` when there is no such sequence.
    pub fn next(&mut self, name: &str) -> Option<i64> {
        let (stride, slot) = (self.stride.max(1), self.slot);
        let v = self.last.get_mut(name)?;
        *v = next_in_stripe(*v, stride, slot);
        Some(*v)
    }

    /// Starts every serial column's sequence of `cat` not started yet after the largest
    /// value present.
    pub fn init(&mut self, conn: &Connection, cat: &Catalog) -> rusqlite::Result<()> {
        for t in cat.tables() {
            for c in t.columns.iter().filter(|c| c.serial) {
                let name = format!("{}_{}_seq", t.name, c.name);
                if self.last.contains_key(&name) {
                    continue;
                }
                let max: i64 = conn.query_row(
                    &format!(
                        "SELECT coalesce(max({}), 0) FROM {}",
                        quote_ident(&c.name),
                        quote_ident(&t.name)
                    ),
                    [],
                    |r| r.get(0),
                )?;
                self.last.insert(name, max);
            }
        }
        Ok(())
    }
}

/// The next value after `last` in the stripe `slot` of `stride`.
fn next_in_stripe(last: i64, stride: i64, slot: i64) -> i64 {
    let want = (slot + 1).rem_euclid(stride);
    let v = last.saturating_add(1);
    v.saturating_add((want - v.rem_euclid(stride)).rem_euclid(stride))
}

#[cfg(test)]
mod tests {
    use super::next_in_stripe;

    #[test]
    fn sites_draw_disjoint_increasing_stripes() {
        assert_eq!(next_in_stripe(0, 1, 0), 1);
        assert_eq!(next_in_stripe(41, 1, 0), 42);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..3 {
            let mut v = 0;
            for _ in 0..100 {
                let n = next_in_stripe(v, 64, slot);
                assert!(n > v && n % 64 == slot + 1, "{v} -> {n} in slot {slot}");
                assert!(seen.insert(n));
                v = n;
            }
        }
        // After another site's larger value was seen (start-up takes the column maximum).
        assert_eq!(next_in_stripe(130, 64, 0), 193);
        assert_eq!(next_in_stripe(i64::MAX - 1, 64, 5), i64::MAX);
    }
}
