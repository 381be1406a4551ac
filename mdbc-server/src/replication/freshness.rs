//! Bounded staleness (`bounded` tables): how recently this site *knew* it had applied
//! everything each other site had committed.
//!
//! A site's log position alone says nothing about time: a site cut off from the others
//! applies nothing and cannot tell. So each other site is asked for its log head (see
//! [`super::calls`]); an answer to a question sent at instant `t` covers every commit
//! that site acknowledged before `t`, and once this site has applied up to that head it
//! is *fresh as of `t`* for that site. A read with bound `B` is served when every other
//! site is fresh as of `now - B`. Sans-IO: the caller asks and applies; this keeps the
//! bookkeeping.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
struct PeerState {
    // The latest instant this site is known fresh as of.
    fresh_as_of: Option<Instant>,
    // Answers not yet covered by what is applied here: (asked at, head), oldest first.
    pending: Vec<(Instant, u64)>,
}

/// Per other site, the instant this site is fresh as of.
#[derive(Debug, Default)]
pub struct Freshness {
    peers: HashMap<u64, PeerState>,
}

impl Freshness {
    /// Site `site`, asked at `asked`, answered that its log ends at `head`; this site has
    /// applied its log up to `applied`.
    pub fn answered(&mut self, site: u64, asked: Instant, head: u64, applied: u64) {
        let p = self.peers.entry(site).or_default();
        if head <= applied {
            p.fresh_as_of = p.fresh_as_of.max(Some(asked));
            p.pending.retain(|(at, _)| *at > asked);
        } else {
            match p.pending.last_mut() {
                // Asked again while the same entries are still on their way: the newer
                // question counts for as much once they are applied (and the list stays
                // as short as the heads are many).
                Some((at, h)) if *h == head && *at < asked => *at = asked,
                Some((at, _)) if *at >= asked => {}
                _ => p.pending.push((asked, head)),
            }
        }
    }

    /// This site has now applied `site`'s log up to `applied`.
    pub fn applied(&mut self, site: u64, applied: u64) {
        let Some(p) = self.peers.get_mut(&site) else {
            return;
        };
        // Heads grow with the instant they were asked at, so the covered ones lead.
        let covered = p.pending.iter().take_while(|(_, h)| *h <= applied).count();
        if covered > 0 {
            let (at, _) = p.pending[covered - 1];
            p.fresh_as_of = p.fresh_as_of.max(Some(at));
            p.pending.drain(..covered);
        }
    }

    /// The instant this site is known fresh as of for `site`, if any.
    pub fn fresh_as_of(&self, site: u64) -> Option<Instant> {
        self.peers.get(&site).and_then(|p| p.fresh_as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_answer_counts_once_its_head_is_applied() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let t2 = t0 + Duration::from_millis(20);
        let mut f = Freshness::default();
        assert_eq!(f.fresh_as_of(7), None);
        // Caught up already: fresh as of the question.
        f.answered(7, t0, 5, 5);
        assert_eq!(f.fresh_as_of(7), Some(t0));
        // Behind: not yet.
        f.answered(7, t1, 9, 5);
        f.answered(7, t2, 12, 5);
        assert_eq!(f.fresh_as_of(7), Some(t0));
        f.applied(7, 8);
        assert_eq!(f.fresh_as_of(7), Some(t0));
        f.applied(7, 10);
        assert_eq!(f.fresh_as_of(7), Some(t1));
        f.applied(7, 12);
        assert_eq!(f.fresh_as_of(7), Some(t2));
        // Repeated answers with the same head keep one entry, at the newest question.
        let t3 = t0 + Duration::from_millis(30);
        let t4 = t0 + Duration::from_millis(40);
        f.answered(7, t3, 20, 12);
        f.answered(7, t4, 20, 12);
        assert_eq!(f.peers[&7].pending, vec![(t4, 20)]);
        f.applied(7, 20);
        assert_eq!(f.fresh_as_of(7), Some(t4));
        // Another site is unaffected, and an older answer never moves it back.
        assert_eq!(f.fresh_as_of(8), None);
        f.answered(7, t0, 1, 12);
        assert_eq!(f.fresh_as_of(7), Some(t4));
    }
}
