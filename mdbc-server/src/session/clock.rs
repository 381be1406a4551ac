//! The times a session's statements see, as PostgreSQL defines them: `now()`,
//! `current_timestamp`, `transaction_timestamp()` and `current_date` are the start of the
//! transaction (the same value for every call inside it), `statement_timestamp()` the start
//! of the statement, `clock_timestamp()` the wall clock at each call. SQLite functions on
//! the session's connection read them (the store registers wall-clock versions for
//! connections without a session).

use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::datetime::{self, sql::SessionZone, Moment};
use crate::values;

#[derive(Clone, Copy)]
struct Times {
    // Microseconds from 2000-01-01 UTC.
    transaction: i64,
    statement: i64,
    // The transaction's id, given at its first `txid_current()`.
    txid: Option<i64>,
}

/// Transaction ids of this server: increasing, and seeded from the clock so that they keep
/// increasing across restarts (applications compare them to order changes).
static NEXT_TXID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn next_txid() -> i64 {
    use std::sync::atomic::Ordering;
    let seed = datetime::now().max(1);
    let _ = NEXT_TXID.compare_exchange(0, seed, Ordering::SeqCst, Ordering::SeqCst);
    NEXT_TXID.fetch_add(1, Ordering::SeqCst)
}

/// A session's transaction and statement start times (the transaction's also in the
/// session's date/time settings, where `'now'` input reads it).
#[derive(Clone)]
pub(super) struct Clock(Arc<Mutex<Times>>, SessionZone);

impl Clock {
    pub(super) fn new(dates: SessionZone) -> Clock {
        let now = datetime::now();
        dates.update(|c| c.now = Some(now));
        Clock(
            Arc::new(Mutex::new(Times {
                transaction: now,
                statement: now,
                txid: None,
            })),
            dates,
        )
    }

    fn times(&self) -> Times {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A statement starts; outside a transaction block it starts a transaction too.
    pub(super) fn statement_starts(&self, new_transaction: bool) {
        let now = datetime::now();
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.statement = now;
        if new_transaction {
            t.transaction = now;
            t.txid = None;
            self.1.update(|c| c.now = Some(now));
        }
    }

    /// Registers `pg_now`, `pg_current_date`, `pg_statement_timestamp` and
    /// `pg_clock_timestamp` on the session's connection, reading this clock.
    pub(super) fn register(&self, conn: &Connection, zone: SessionZone) -> rusqlite::Result<()> {
        let flags = FunctionFlags::SQLITE_UTF8;
        let c = self.clone();
        conn.create_scalar_function("pg_now", 0, flags, move |_| {
            Ok(datetime::stored_timestamptz(c.times().transaction))
        })?;
        let c = self.clone();
        conn.create_scalar_function("pg_current_date", 0, flags, move |_| {
            // Today in the session's zone.
            let local = zone.get().to_local(c.times().transaction);
            Ok(datetime::format_date(Moment::At(
                local.div_euclid(datetime::USECS_PER_DAY) as i32,
            )))
        })?;
        let c = self.clone();
        conn.create_scalar_function("pg_statement_timestamp", 0, flags, move |_| {
            Ok(datetime::stored_timestamptz(c.times().statement))
        })?;
        // txid_current(): the same id for every call inside one transaction.
        let c = self.clone();
        conn.create_scalar_function("pg_txid_current", 0, flags, move |_| {
            let mut t = c.0.lock().unwrap_or_else(|e| e.into_inner());
            Ok(*t.txid.get_or_insert_with(next_txid))
        })?;
        conn.create_scalar_function("pg_clock_timestamp", 0, flags, |_| Ok(values::now_text()))
    }
}
