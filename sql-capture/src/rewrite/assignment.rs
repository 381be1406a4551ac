//! PostgreSQL's assignment casts: what a value of one type becomes when it is written into
//! a column of another (INSERT, UPDATE, ALTER COLUMN … TYPE), and which pairs it refuses.
//! The table follows `pg_cast` of PostgreSQL 15 for the types mdbc stores, plus its rule
//! that any type is written into a string column through its text output.

use crate::types::PgType;

/// What writing a value of type `from` into a column of type `to` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assignment {
    /// Stored as it is (the same type, or one stored the same way).
    AsIs,
    /// Converted with the cast `from::to` (PostgreSQL's implicit or assignment cast).
    Cast,
    /// No assignment cast: PostgreSQL refuses the statement (42804).
    Refused,
}

/// The assignment of a `from` value into a `to` column.
pub(crate) fn assignment(from: PgType, to: PgType) -> Assignment {
    use PgType::*;
    if from == to {
        return Assignment::AsIs;
    }
    let numeric = |t: PgType| matches!(t, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric);
    match (from, to) {
        // Strings among themselves keep their text (the column's length still applies).
        (f, t) if f.is_string() && t.is_string() => Assignment::AsIs,
        // Any value goes into a string column as its text output.
        (_, t) if t.is_string() => Assignment::Cast,
        // An integer widening keeps its value.
        (Int2, Int4 | Int8) | (Int4, Int8) => Assignment::AsIs,
        (f, t) if numeric(f) && numeric(t) => Assignment::Cast,
        (Int2 | Int4 | Int8, Oid) | (Oid, Int4 | Int8) => Assignment::AsIs,
        (Date, Timestamp | Timestamptz)
        | (Timestamp, Date | Time | Timestamptz)
        | (Timestamptz, Date | Time | Timestamp)
        | (Interval, Time)
        | (Time, Interval)
        | (Json, Jsonb) => Assignment::Cast,
        (Jsonb, Json) => Assignment::AsIs,
        _ => Assignment::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PgType::*;

    #[test]
    fn follows_pg_cast() {
        // Contexts as PostgreSQL 15's pg_cast lists them ('e' pairs are refused).
        assert_eq!(assignment(Bool, Int4), Assignment::Refused);
        assert_eq!(assignment(Int4, Bool), Assignment::Refused);
        assert_eq!(assignment(Text, Int4), Assignment::Refused);
        assert_eq!(assignment(Bool, Text), Assignment::Cast);
        assert_eq!(assignment(Float8, Int4), Assignment::Cast);
        assert_eq!(assignment(Int4, Int8), Assignment::AsIs);
        assert_eq!(assignment(Varchar, Text), Assignment::AsIs);
        assert_eq!(assignment(Date, Timestamptz), Assignment::Cast);
        assert_eq!(assignment(Uuid, Text), Assignment::Cast);
        assert_eq!(assignment(Text, Uuid), Assignment::Refused);
        assert_eq!(assignment(Jsonb, Int4), Assignment::Refused);
    }
}
