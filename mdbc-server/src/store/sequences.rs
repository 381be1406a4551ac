//! Sequences: those of serial columns (the last value each gave, or the column's maximum
//! at start-up) and those of CREATE SEQUENCE (their state kept across restarts by a
//! reservation file beside the database).

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::Connection;
use sql_capture::{quote_ident, Catalog, PgType, SequenceDef};

/// How many values a reservation covers ahead of the last one handed out: one file write
/// per this many nextvals, and at most this many values skipped after a crash (as
/// PostgreSQL logs 32 values ahead).
const RESERVE_AHEAD: i64 = 32;

/// A sequence of CREATE SEQUENCE at this site.
#[derive(Debug)]
struct Own {
    def: SequenceDef,
    /// The last value handed out, or (not `called`) the value the next nextval gives.
    last: i64,
    called: bool,
    /// Values up to here (in the sequence's direction) are covered by the reservation
    /// file: a restart resumes after it, so no value is handed out twice.
    reserved: Option<i64>,
}

/// Serial sequences: the last value each gave (or the column's maximum at start-up).
///
/// Sites of a cluster draw from disjoint stripes, so two sites inserting at once never
/// pick the same key: with stride `s` and slot `k` a site gives only values `≡ k + 1
/// (mod s)`. A single site uses stride 1.
#[derive(Debug, Default)]
pub struct Sequences {
    last: HashMap<String, i64>,
    /// Each sequence's largest value (its column type's maximum; absent: bigint's).
    max: HashMap<String, i64>,
    /// The sequences of CREATE SEQUENCE.
    own: HashMap<String, Own>,
    /// Where reservations are kept (none: in memory only, for tests).
    file: Option<PathBuf>,
    /// Reservations read at start-up, for sequences not loaded yet.
    recovered: HashMap<String, i64>,
    stride: i64,
    slot: i64,
}

impl Sequences {
    /// Values from now on come from stripe `slot` of `stride`.
    pub fn set_stripe(&mut self, stride: i64, slot: i64) {
        self.stride = stride;
        self.slot = slot;
    }

    /// A new serial column's sequence, starting at 1, for a column of type `ty`.
    pub fn start(&mut self, name: String, ty: PgType) {
        self.max.insert(name.clone(), type_max(ty));
        self.last.insert(name, 0);
    }

    /// setval: the sequence's last value becomes `value` (`is_called`) or the value
    /// before it (not called: the next nextval gives `value` itself, or the first value
    /// after it in this site's stripe). PostgreSQL's 22003 for a value outside 1..max, and
    /// `None` when there is no such sequence.
    pub fn set(&mut self, name: &str, value: i64, is_called: bool) -> Option<Result<(), String>> {
        if let Some(own) = self.own.get_mut(name) {
            let (min, max) = (own.def.min, own.def.max);
            if !(min..=max).contains(&value) {
                return Some(Err(format!(
                    "setval: value {value} is out of bounds for sequence \"{name}\" ({min}..{max})"
                )));
            }
            own.last = value;
            own.called = is_called;
            // What setval sets is handed out next: a restart must not go back before it.
            own.reserved = None;
            if let Err(e) = self.save_after_set(name, value) {
                return Some(Err(format!("could not keep sequence state: {e}")));
            }
            return Some(Ok(()));
        }
        let max = self.max.get(name).copied().unwrap_or(i64::MAX);
        let last = self.last.get_mut(name)?;
        if !(1..=max).contains(&value) {
            return Some(Err(format!(
                "setval: value {value} is out of bounds for sequence \"{name}\" (1..{max})"
            )));
        }
        *last = if is_called { value } else { value - 1 };
        Some(Ok(()))
    }

    /// ALTER SEQUENCE … RESTART: the next nextval gives `value` (a sequence created in
    /// the same transaction is not loaded yet: it starts at its START anyway).
    pub fn restart(&mut self, name: &str, value: i64) -> std::io::Result<()> {
        let Some(own) = self.own.get_mut(name) else {
            return Ok(());
        };
        own.last = value;
        own.called = false;
        // Reserved from the value before it, so a restart resumes at or after it.
        let before = value.saturating_sub(own.def.increment);
        self.save_after_set(name, before)
    }

    /// After setval of a sequence of CREATE SEQUENCE: reserves from the new value on.
    fn save_after_set(&mut self, name: &str, value: i64) -> std::io::Result<()> {
        if let Some(own) = self.own.get_mut(name) {
            let inc = own.def.increment;
            let ahead =
                value.saturating_add(inc.saturating_mul(RESERVE_AHEAD * self.stride.max(1)));
            own.reserved = Some(ahead.clamp(own.def.min, own.def.max));
        }
        self.save()
    }

    /// Whether sequence `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.last.contains_key(name) || self.own.contains_key(name)
    }

    /// Brings the sequences of CREATE SEQUENCE in line with `cat`: new ones start (after
    /// their reservation, if the file has one), redefined ones keep their position,
    /// dropped ones go.
    fn sync_own(&mut self, cat: &Catalog) {
        let mut seen = std::collections::HashSet::new();
        for def in cat.sequences() {
            seen.insert(def.name.clone());
            match self.own.get_mut(&def.name) {
                Some(own) => own.def = (**def).clone(),
                None => {
                    let recovered = self.recovered.remove(&def.name);
                    self.own.insert(
                        def.name.clone(),
                        Own {
                            def: (**def).clone(),
                            last: recovered.unwrap_or(def.start),
                            called: recovered.is_some(),
                            reserved: recovered,
                        },
                    );
                }
            }
        }
        self.own.retain(|name, _| seen.contains(name));
    }

    /// The next value of sequence `name`; `None` when there is no such sequence, an error
    /// (SQLSTATE, message) when a sequence without CYCLE is exhausted or its reservation
    /// cannot be written.
    pub fn next(&mut self, name: &str) -> Option<Result<i64, (&'static str, String)>> {
        let (stride, slot) = (self.stride.max(1), self.slot);
        if let Some(v) = self.last.get_mut(name) {
            *v = next_in_stripe(*v, stride, slot);
            return Some(Ok(*v));
        }
        let own = self.own.get_mut(name)?;
        let v = match own_next(own, stride, slot) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let inc = own.def.increment;
        let beyond = own
            .reserved
            .is_none_or(|r| if inc > 0 { v > r } else { v < r });
        if beyond {
            let ahead = v.saturating_add(inc.saturating_mul(RESERVE_AHEAD * stride));
            let (min, max) = (own.def.min, own.def.max);
            own.reserved = Some(ahead.clamp(min, max));
            if let Err(e) = self.save() {
                return Some(Err((
                    "58030",
                    format!("could not keep sequence state: {e}"),
                )));
            }
        }
        let own = self.own.get_mut(name)?;
        own.last = v;
        own.called = true;
        Some(Ok(v))
    }

    /// Keeps every sequence's reservation on disk (written aside, synced, renamed over).
    fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut marks: HashMap<&str, i64> = self
            .recovered
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        for (name, own) in &self.own {
            if let Some(r) = own.reserved {
                marks.insert(name, r);
            }
        }
        let text = serde_json::to_string(&marks).map_err(std::io::Error::other)?;
        let tmp = file.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, file)
    }

    /// Keeps reservations in `file` from now on, resuming the sequences it names after
    /// what it reserved (a damaged file is reported and its sequences start over at
    /// their START).
    pub fn persist_to(&mut self, file: PathBuf) {
        if let Ok(text) = std::fs::read_to_string(&file) {
            match serde_json::from_str::<HashMap<String, i64>>(&text) {
                Ok(marks) => self.recovered = marks,
                Err(e) => {
                    tracing::warn!(file = %file.display(), "ignoring sequence reservations: {e}")
                }
            }
        }
        self.file = Some(file);
    }

    /// The value `pg_sequences.last_value` shows: the last one handed out, NULL before the
    /// first.
    pub fn last_value(&self, name: &str) -> Option<i64> {
        if let Some(own) = self.own.get(name) {
            return own.called.then_some(own.last);
        }
        self.last.get(name).copied().filter(|v| *v > 0)
    }

    /// Starts every serial column's sequence of `cat` not started yet after the largest
    /// value present.
    pub fn init(&mut self, conn: &Connection, cat: &Catalog) -> rusqlite::Result<()> {
        self.sync_own(cat);
        for t in cat.tables() {
            for c in t.columns.iter().filter(|c| c.serial) {
                let name = format!("{}_{}_seq", t.name, c.name);
                if self.last.contains_key(&name) {
                    continue;
                }
                self.max.insert(name.clone(), type_max(c.ty));
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

/// The next value of a sequence of CREATE SEQUENCE, as PostgreSQL's nextval gives it
/// (the START first, then by INCREMENT, wrapping with CYCLE, 2200H at the end without),
/// skipping to this site's stripe in a cluster: the values whose step count from START
/// is `slot` modulo `stride`.
fn own_next(own: &Own, stride: i64, slot: i64) -> Result<i64, (&'static str, String)> {
    let d = &own.def;
    let exhausted = || {
        let (which, bound) = if d.increment > 0 {
            ("maximum", d.max)
        } else {
            ("minimum", d.min)
        };
        (
            "2200H",
            format!(
                "nextval: reached {which} value of sequence \"{}\" ({bound})",
                d.name
            ),
        )
    };
    let step = |v: i64| -> Result<i64, (&'static str, String)> {
        match v.checked_add(d.increment) {
            Some(n) if (d.min..=d.max).contains(&n) => Ok(n),
            _ if d.cycle => Ok(if d.increment > 0 { d.min } else { d.max }),
            _ => Err(exhausted()),
        }
    };
    let mut v = if own.called {
        step(own.last)?
    } else {
        own.last
    };
    // At most one lap of the stripes (and one wrap) to land in this site's.
    for _ in 0..=(2 * stride) {
        let index = (v - d.start) / d.increment;
        if stride <= 1 || index.rem_euclid(stride) == slot {
            return Ok(v);
        }
        v = step(v)?;
    }
    Err(exhausted())
}

/// The largest value a serial column of type `ty` takes (its sequence's MAXVALUE).
fn type_max(ty: PgType) -> i64 {
    match ty {
        PgType::Int2 => i16::MAX.into(),
        PgType::Int4 => i32::MAX.into(),
        _ => i64::MAX,
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
