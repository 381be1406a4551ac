//! Checkers the simulator runs (`docs/DESIGN.md`, "Invariants the tests check": one value per slot, log prefixes
//! agree, acknowledged entries never lost, one valid lease at a time, linearizable
//! histories).

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

use crate::types::{Entry, NodeId, Slot};

/// Every decided entry any replica reports, by slot: two different values for one slot
/// break agreement (and so prefix agreement, since replicas report decided prefixes).
#[derive(Debug, Default)]
pub struct Agreement {
    chosen: Vec<Entry>,
}

impl Agreement {
    /// Records that `node` decided `entries` from `from`; `Err` describes a conflict.
    pub fn observe(&mut self, node: NodeId, from: Slot, entries: &[Entry]) -> Result<(), String> {
        for (i, e) in entries.iter().enumerate() {
            let slot = from as usize + i;
            if slot < self.chosen.len() {
                if &self.chosen[slot] != e {
                    return Err(format!(
                        "slot {slot}: node {node} decided {e:?}, another replica {:?}",
                        self.chosen[slot]
                    ));
                }
            } else if slot == self.chosen.len() {
                self.chosen.push(e.clone());
            } else {
                return Err(format!(
                    "node {node} reported slot {slot} before slot {}",
                    self.chosen.len()
                ));
            }
        }
        Ok(())
    }

    /// The decided log as far as anyone knows.
    pub fn chosen(&self) -> &[Entry] {
        &self.chosen
    }
}

/// One operation on a register, as a client saw it (times are the simulator's).
#[derive(Debug, Clone)]
pub struct Op {
    /// Which client.
    pub client: u64,
    /// Register name.
    pub key: Bytes,
    /// `Some(v)`: a write of v; `None`: a read.
    pub write: Option<Bytes>,
    /// When it was invoked.
    pub invoked: u64,
    /// When it returned and what it returned (reads); `None` if it never did.
    pub returned: Option<(u64, Bytes)>,
}

/// Checks that a history of reads and writes on registers is linearizable (Wing & Gong's
/// search with memoisation of visited states, per key: registers compose). A write that
/// never returned may take effect at any point after its invocation, or never; a read that
/// never returned constrains nothing.
pub fn linearizable(history: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&Bytes, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if op.write.is_none() && op.returned.is_none() {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        check_register(&ops).map_err(|e| format!("key {key:?}: {e}"))?;
    }
    Ok(())
}

fn check_register(ops: &[&Op]) -> Result<(), String> {
    let n = ops.len();
    let end = |i: usize| ops[i].returned.as_ref().map(|r| r.0).unwrap_or(u64::MAX);
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Bytes)> = HashSet::new();
    // Depth-first search over (linearized set, register value); the stack holds the op
    // chosen at each depth so the search can backtrack.
    let mut stack: Vec<(usize, Bytes)> = Vec::new();
    let mut value = Bytes::new();
    let mut next_choice = 0usize;
    let completed: usize = (0..n).filter(|&i| ops[i].returned.is_some()).count();
    let mut completed_done = 0usize;
    loop {
        if completed_done == completed {
            return Ok(());
        }
        // The earliest return among ops not yet linearized bounds what can go next.
        let horizon = (0..n)
            .filter(|&i| done[i / 64] & (1 << (i % 64)) == 0)
            .map(end)
            .min()
            .unwrap_or(u64::MAX);
        let mut advanced = false;
        let mut i = next_choice;
        while i < n {
            let free = done[i / 64] & (1 << (i % 64)) == 0;
            if free && ops[i].invoked <= horizon {
                let op = ops[i];
                let ok = match (&op.write, &op.returned) {
                    (Some(_), _) => true,
                    (None, Some((_, v))) => *v == value,
                    (None, None) => false,
                };
                if ok {
                    let new_value = op.write.clone().unwrap_or_else(|| value.clone());
                    done[i / 64] |= 1 << (i % 64);
                    if seen.insert((done.clone(), new_value.clone())) {
                        stack.push((i, value.clone()));
                        value = new_value;
                        if op.returned.is_some() {
                            completed_done += 1;
                        }
                        next_choice = 0;
                        advanced = true;
                        break;
                    }
                    done[i / 64] &= !(1 << (i % 64));
                }
            }
            i += 1;
        }
        if advanced {
            continue;
        }
        // Backtrack.
        let Some((last, old_value)) = stack.pop() else {
            let pending: Vec<String> = ops
                .iter()
                .map(|o| {
                    format!(
                        "client {} {} [{}, {}] -> {:?}",
                        o.client,
                        match &o.write {
                            Some(v) => format!("write {v:?}"),
                            None => "read".into(),
                        },
                        o.invoked,
                        o.returned.as_ref().map(|r| r.0).unwrap_or(u64::MAX),
                        o.returned.as_ref().map(|r| r.1.clone())
                    )
                })
                .collect();
            return Err(format!("no linearization of:\n  {}", pending.join("\n  ")));
        };
        done[last / 64] &= !(1 << (last % 64));
        if ops[last].returned.is_some() {
            completed_done -= 1;
        }
        value = old_value;
        next_choice = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, write: Option<&str>, inv: u64, ret: Option<(u64, &str)>) -> Op {
        Op {
            client,
            key: Bytes::from_static(b"k"),
            write: write.map(|w| Bytes::copy_from_slice(w.as_bytes())),
            invoked: inv,
            returned: ret.map(|(t, v)| (t, Bytes::copy_from_slice(v.as_bytes()))),
        }
    }

    #[test]
    fn accepts_overlapping_operations_in_some_order() {
        let h = vec![
            op(1, Some("a"), 0, Some((10, ""))),
            op(2, None, 5, Some((6, "a"))),
            op(3, Some("b"), 7, Some((20, ""))),
            op(2, None, 8, Some((9, "a"))),
            op(2, None, 21, Some((22, "b"))),
        ];
        linearizable(&h).unwrap();
    }

    #[test]
    fn refuses_a_stale_read() {
        let h = vec![
            op(1, Some("a"), 0, Some((1, ""))),
            op(1, Some("b"), 2, Some((3, ""))),
            op(2, None, 4, Some((5, "a"))),
        ];
        assert!(linearizable(&h).is_err());
    }

    #[test]
    fn refuses_reads_that_go_back_in_time() {
        // Two reads, one after the other, see b then a, with a written before b.
        let h = vec![
            op(1, Some("a"), 0, Some((1, ""))),
            op(1, Some("b"), 2, Some((10, ""))),
            op(2, None, 3, Some((4, "b"))),
            op(3, None, 5, Some((6, "a"))),
        ];
        assert!(linearizable(&h).is_err());
    }

    #[test]
    fn a_write_that_never_returned_may_or_may_not_have_happened() {
        let h = vec![
            op(1, Some("a"), 0, Some((1, ""))),
            op(2, Some("b"), 2, None),
            op(3, None, 3, Some((4, "a"))),
            op(3, None, 5, Some((6, "b"))),
        ];
        linearizable(&h).unwrap();
        let h = vec![op(2, Some("b"), 2, None), op(3, None, 0, Some((1, "b")))];
        assert!(
            linearizable(&h).is_err(),
            "read before the write was invoked"
        );
    }

    #[test]
    fn agreement_refuses_two_values_for_one_slot() {
        let mut a = Agreement::default();
        a.observe(
            1,
            0,
            &[Entry::Noop, Entry::Command(Bytes::from_static(b"x"))],
        )
        .unwrap();
        a.observe(2, 1, &[Entry::Command(Bytes::from_static(b"x"))])
            .unwrap();
        assert!(a
            .observe(3, 1, &[Entry::Command(Bytes::from_static(b"y"))])
            .is_err());
    }
}
