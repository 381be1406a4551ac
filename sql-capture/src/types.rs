//! PostgreSQL types that mdbc stores, with their real OIDs.
//!
//! A column keeps the PostgreSQL type it was declared with (mdbc's catalog table
//! `__mdbc_columns`), while SQLite only sees an affinity. Results are typed from this, so a
//! column declared `INTEGER` is reported as `int4` and one declared `BIGINT` as `int8`, which
//! strict drivers such as tokio-postgres rely on.

use std::fmt;

/// A PostgreSQL built-in type that mdbc can store and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    /// `boolean`, stored as 0/1.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric`, stored as an SQLite integer or real; printed with the declared scale.
    Numeric,
    /// `text`.
    Text,
    /// `character varying`.
    Varchar,
    /// `character(n)`, blank-padded.
    Bpchar,
    /// `name` (what `current_database()` returns).
    Name,
    /// `bytea`, stored as a blob.
    Bytea,
    /// `date`, stored as `YYYY-MM-DD`.
    Date,
    /// `time`, stored as `HH:MM:SS[.ffffff]`.
    Time,
    /// `timestamp`, stored as `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    Timestamp,
    /// `timestamptz`, stored in UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]+00`.
    Timestamptz,
    /// `interval`, stored as PostgreSQL's text output.
    Interval,
    /// `uuid`, stored as lower-case text.
    Uuid,
    /// `json`, stored as text.
    Json,
    /// `jsonb`, stored as text.
    Jsonb,
    /// `oid`.
    Oid,
    /// `"char"`: the one-byte type the system catalogs use for kinds and flags.
    Char,
    /// `boolean[]`. Arrays are kept as JSON arrays in SQLite (so `json_each` can unnest
    /// them) and printed in PostgreSQL's `{a,b}` form; the catalogs and `array_agg` make
    /// them, tables cannot store them.
    BoolArray,
    /// `"char"[]`.
    CharArray,
    /// `name[]`.
    NameArray,
    /// `smallint[]`.
    Int2Array,
    /// `integer[]`.
    Int4Array,
    /// `text[]`.
    TextArray,
    /// `oid[]`.
    OidArray,
    /// `bigint[]`.
    Int8Array,
    /// `double precision[]`.
    Float8Array,
    /// `numeric[]` (elements kept as their exact text).
    NumericArray,
    /// `character varying[]`.
    VarcharArray,
    /// `int2vector` (the catalogs' column lists), printed space-separated.
    Int2Vector,
    /// `oidvector`, printed space-separated.
    OidVector,
}

impl PgType {
    /// The type's OID in `pg_type`.
    pub fn oid(self) -> u32 {
        match self {
            PgType::Bool => 16,
            PgType::Bytea => 17,
            PgType::Name => 19,
            PgType::Int8 => 20,
            PgType::Int2 => 21,
            PgType::Int4 => 23,
            PgType::Text => 25,
            PgType::Oid => 26,
            PgType::Char => 18,
            PgType::BoolArray => 1000,
            PgType::CharArray => 1002,
            PgType::NameArray => 1003,
            PgType::Int2Array => 1005,
            PgType::Int4Array => 1007,
            PgType::TextArray => 1009,
            PgType::OidArray => 1028,
            PgType::Int8Array => 1016,
            PgType::Float8Array => 1022,
            PgType::NumericArray => 1231,
            PgType::VarcharArray => 1015,
            PgType::Int2Vector => 22,
            PgType::OidVector => 30,
            PgType::Json => 114,
            PgType::Float4 => 700,
            PgType::Float8 => 701,
            PgType::Bpchar => 1042,
            PgType::Varchar => 1043,
            PgType::Date => 1082,
            PgType::Time => 1083,
            PgType::Timestamp => 1114,
            PgType::Timestamptz => 1184,
            PgType::Interval => 1186,
            PgType::Numeric => 1700,
            PgType::Uuid => 2950,
            PgType::Jsonb => 3802,
        }
    }

    /// The type for an OID sent by a client, if mdbc supports it.
    pub fn from_oid(oid: u32) -> Option<PgType> {
        Some(match oid {
            16 => PgType::Bool,
            17 => PgType::Bytea,
            19 => PgType::Name,
            20 => PgType::Int8,
            21 => PgType::Int2,
            23 => PgType::Int4,
            25 => PgType::Text,
            26 => PgType::Oid,
            18 => PgType::Char,
            1000 => PgType::BoolArray,
            1002 => PgType::CharArray,
            1003 => PgType::NameArray,
            1005 => PgType::Int2Array,
            1007 => PgType::Int4Array,
            1009 => PgType::TextArray,
            1028 => PgType::OidArray,
            1016 => PgType::Int8Array,
            1022 => PgType::Float8Array,
            1231 => PgType::NumericArray,
            1015 => PgType::VarcharArray,
            22 => PgType::Int2Vector,
            30 => PgType::OidVector,
            114 => PgType::Json,
            700 => PgType::Float4,
            701 => PgType::Float8,
            1042 => PgType::Bpchar,
            1043 => PgType::Varchar,
            1082 => PgType::Date,
            1083 => PgType::Time,
            1114 => PgType::Timestamp,
            1184 => PgType::Timestamptz,
            1186 => PgType::Interval,
            1700 => PgType::Numeric,
            2950 => PgType::Uuid,
            3802 => PgType::Jsonb,
            _ => return None,
        })
    }

    /// The canonical name, as `format_type` prints it and as stored in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            PgType::Bool => "boolean",
            PgType::Int2 => "smallint",
            PgType::Int4 => "integer",
            PgType::Int8 => "bigint",
            PgType::Float4 => "real",
            PgType::Float8 => "double precision",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Varchar => "character varying",
            PgType::Bpchar => "character",
            PgType::Name => "name",
            PgType::Bytea => "bytea",
            PgType::Date => "date",
            PgType::Time => "time without time zone",
            PgType::Timestamp => "timestamp without time zone",
            PgType::Timestamptz => "timestamp with time zone",
            PgType::Interval => "interval",
            PgType::Uuid => "uuid",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
            PgType::Oid => "oid",
            PgType::Char => "\"char\"",
            PgType::BoolArray => "boolean[]",
            PgType::CharArray => "\"char\"[]",
            PgType::NameArray => "name[]",
            PgType::Int2Array => "smallint[]",
            PgType::Int4Array => "integer[]",
            PgType::TextArray => "text[]",
            PgType::OidArray => "oid[]",
            PgType::Int8Array => "bigint[]",
            PgType::Float8Array => "double precision[]",
            PgType::NumericArray => "numeric[]",
            PgType::VarcharArray => "character varying[]",
            PgType::Int2Vector => "int2vector",
            PgType::OidVector => "oidvector",
        }
    }

    /// The declared type SQLite gets, chosen for its affinity. `INTEGER` matters: a single
    /// `INTEGER PRIMARY KEY` column becomes SQLite's rowid, the fastest lookup it has.
    pub fn sqlite_decl(self) -> &'static str {
        match self {
            PgType::Bool | PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => "INTEGER",
            PgType::Float4 | PgType::Float8 => "REAL",
            // Exact text, ordered by value (numeric/mod.rs in mdbc-server).
            PgType::Numeric => "TEXT COLLATE pg_numeric",
            // PostgreSQL's text, ordered by span (datetime module in mdbc-server).
            PgType::Interval => "TEXT COLLATE pg_interval",
            // PostgreSQL's text, ordered by the instant (BC dates included).
            PgType::Date | PgType::Timestamp | PgType::Timestamptz => "TEXT COLLATE pg_datetime",
            PgType::Bytea => "BLOB",
            // Stored as its text, ordered and compared as jsonb (json/order.rs).
            PgType::Jsonb => "TEXT COLLATE pg_jsonb",
            _ => "TEXT",
        }
    }

    /// The element type of an array (or vector) type.
    pub fn element(self) -> Option<PgType> {
        Some(match self {
            PgType::BoolArray => PgType::Bool,
            PgType::CharArray => PgType::Char,
            PgType::NameArray => PgType::Name,
            PgType::Int2Array | PgType::Int2Vector => PgType::Int2,
            PgType::Int4Array => PgType::Int4,
            PgType::TextArray => PgType::Text,
            PgType::OidArray | PgType::OidVector => PgType::Oid,
            PgType::Int8Array => PgType::Int8,
            PgType::Float8Array => PgType::Float8,
            PgType::NumericArray => PgType::Numeric,
            PgType::VarcharArray => PgType::Varchar,
            _ => return None,
        })
    }

    /// The array type whose elements are `self`, where mdbc has one.
    pub fn array(self) -> Option<PgType> {
        Some(match self {
            PgType::Bool => PgType::BoolArray,
            PgType::Char => PgType::CharArray,
            PgType::Name => PgType::NameArray,
            PgType::Int2 => PgType::Int2Array,
            PgType::Int4 => PgType::Int4Array,
            PgType::Text | PgType::Bpchar => PgType::TextArray,
            PgType::Varchar => PgType::VarcharArray,
            PgType::Numeric => PgType::NumericArray,
            PgType::Oid => PgType::OidArray,
            PgType::Int8 => PgType::Int8Array,
            PgType::Float8 | PgType::Float4 => PgType::Float8Array,
            _ => return None,
        })
    }

    /// Whether values are integers in SQLite.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid
        )
    }

    /// Whether the type is a string type (text, varchar, char, name).
    pub fn is_string(self) -> bool {
        matches!(
            self,
            PgType::Text | PgType::Varchar | PgType::Bpchar | PgType::Name | PgType::Char
        )
    }

    /// Parses a type name as written in SQL (`int`, `VARCHAR(20)`, `numeric(10,2)`,
    /// `timestamp with time zone`, `serial`, …). Returns the type, its type modifier
    /// (PostgreSQL's `atttypmod`, -1 when none) and whether it is a serial pseudo-type.
    pub fn parse_sql_name(name: &str) -> Option<TypeSpec> {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(elem) = lower.strip_suffix("[]") {
            let spec = PgType::parse_sql_name(elem)?;
            return Some(TypeSpec {
                ty: spec.ty.array()?,
                typmod: -1,
                serial: false,
            });
        }
        let (base, args) = match lower.find('(') {
            Some(open) => {
                let close = lower.rfind(')')?;
                if close < open {
                    return None;
                }
                let inner = &lower[open + 1..close];
                let rest = lower[close + 1..].trim();
                let base = format!("{} {}", lower[..open].trim(), rest);
                let args: Vec<i32> = inner
                    .split(',')
                    .map(|a| a.trim().parse::<i32>().ok())
                    .collect::<Option<Vec<_>>>()?;
                (base.trim().to_string(), args)
            }
            None => (lower.clone(), Vec::new()),
        };
        let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
        let base = base
            .strip_prefix("pg_catalog.")
            .unwrap_or(&base)
            .to_string();
        let mut serial = false;
        let ty = match base.as_str() {
            "bool" | "boolean" => PgType::Bool,
            "smallint" | "int2" => PgType::Int2,
            "int" | "integer" | "int4" => PgType::Int4,
            "bigint" | "int8" => PgType::Int8,
            "smallserial" | "serial2" => {
                serial = true;
                PgType::Int2
            }
            "serial" | "serial4" => {
                serial = true;
                PgType::Int4
            }
            "bigserial" | "serial8" => {
                serial = true;
                PgType::Int8
            }
            "real" | "float4" => PgType::Float4,
            "double precision" | "float8" | "double" => PgType::Float8,
            "float" => match args.first() {
                Some(p) if *p <= 24 => PgType::Float4,
                _ => PgType::Float8,
            },
            "numeric" | "decimal" | "dec" => PgType::Numeric,
            "text" | "string" => PgType::Text,
            "varchar" | "character varying" | "char varying" => PgType::Varchar,
            "char" | "character" | "bpchar" => PgType::Bpchar,
            "name" => PgType::Name,
            "\"char\"" => PgType::Char,
            "int2vector" => PgType::Int2Vector,
            "oidvector" => PgType::OidVector,
            "bytea" => PgType::Bytea,
            "date" => PgType::Date,
            "time" | "time without time zone" => PgType::Time,
            "timestamp" | "timestamp without time zone" => PgType::Timestamp,
            "timestamptz" | "timestamp with time zone" => PgType::Timestamptz,
            "interval" => PgType::Interval,
            "uuid" => PgType::Uuid,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "oid" | "regclass" | "regtype" | "regnamespace" | "regproc" => PgType::Oid,
            _ => return None,
        };
        // PostgreSQL's limit on a declared length (10485760) keeps padding bounded.
        if matches!(ty, PgType::Varchar | PgType::Bpchar)
            && args.first().is_some_and(|n| !(1..=10_485_760).contains(n))
        {
            return None;
        }
        let typmod = match ty {
            PgType::Varchar => args.first().map(|n| n + 4).unwrap_or(-1),
            // char without a length means char(1), as in PostgreSQL; bpchar is unlimited.
            PgType::Bpchar if base == "bpchar" => args.first().map(|n| n + 4).unwrap_or(-1),
            PgType::Bpchar => args.first().map(|n| n + 4).unwrap_or(5),
            PgType::Numeric => match args.as_slice() {
                [p] => (p << 16) + 4,
                // PostgreSQL 15 keeps the scale in 11 bits, signed (-1000..1000).
                [p, s] => ((p << 16) | (s & 0x7ff)) + 4,
                _ => -1,
            },
            PgType::Timestamp | PgType::Timestamptz | PgType::Time => {
                args.first().copied().unwrap_or(-1)
            }
            // interval(p): the full field range with a seconds precision.
            PgType::Interval => args.first().map(|p| 0x7fff << 16 | p).unwrap_or(-1),
            _ => -1,
        };
        Some(TypeSpec { ty, typmod, serial })
    }

    /// `format_type(oid, typmod)` output, e.g. `character varying(20)` or `numeric(10,2)`.
    pub fn format_with_typmod(self, typmod: i32) -> String {
        match self {
            PgType::Varchar | PgType::Bpchar if typmod >= 4 => {
                format!("{}({})", self.name(), typmod - 4)
            }
            PgType::Numeric => match numeric_typmod(typmod) {
                Some((p, s)) => format!("numeric({p},{s})"),
                None => self.name().to_string(),
            },
            _ => self.name().to_string(),
        }
    }
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed type name: the type, PostgreSQL's type modifier, and whether it was `serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSpec {
    /// The type.
    pub ty: PgType,
    /// `atttypmod`: -1 when none.
    pub typmod: i32,
    /// Declared as `serial`, `bigserial` or `smallserial`.
    pub serial: bool,
}

impl TypeSpec {
    /// The scale of a `numeric(p,s)`, if declared.
    pub fn numeric_scale(&self) -> Option<u32> {
        numeric_scale(self.ty, self.typmod)
    }
}

/// The scale a `numeric(p,s)` column shows its values with, given its typmod (0 for a
/// negative scale, which rounds to tens, hundreds… left of the point).
pub fn numeric_scale(ty: PgType, typmod: i32) -> Option<u32> {
    if ty == PgType::Numeric {
        numeric_typmod(typmod).map(|(_, s)| s.max(0) as u32)
    } else {
        None
    }
}

/// A `numeric(p,s)` typmod's precision and scale (the scale may be negative, or larger
/// than the precision, since PostgreSQL 15).
pub fn numeric_typmod(typmod: i32) -> Option<(u32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    Some((((t >> 16) & 0xffff) as u32, ((t & 0x7ff) ^ 1024) - 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_names() {
        let s = PgType::parse_sql_name("VARCHAR(20)").unwrap();
        assert_eq!((s.ty, s.typmod), (PgType::Varchar, 24));
        let s = PgType::parse_sql_name("numeric(10, 2)").unwrap();
        assert_eq!(s.ty, PgType::Numeric);
        assert_eq!(s.numeric_scale(), Some(2));
        assert_eq!(
            PgType::Numeric.format_with_typmod(s.typmod),
            "numeric(10,2)"
        );
        assert!(PgType::parse_sql_name("bigserial").unwrap().serial);
        assert_eq!(
            PgType::parse_sql_name("timestamp(3) with time zone")
                .unwrap()
                .ty,
            PgType::Timestamptz
        );
        assert_eq!(
            PgType::parse_sql_name("DOUBLE PRECISION").unwrap().ty,
            PgType::Float8
        );
        assert!(PgType::parse_sql_name("geometry").is_none());
        assert!(PgType::parse_sql_name("varchar(x)").is_none());
    }

    #[test]
    fn oids_round_trip() {
        for t in [
            PgType::Bool,
            PgType::Int2,
            PgType::Int4,
            PgType::Int8,
            PgType::Float4,
            PgType::Float8,
            PgType::Numeric,
            PgType::Text,
            PgType::Varchar,
            PgType::Bpchar,
            PgType::Name,
            PgType::Bytea,
            PgType::Date,
            PgType::Time,
            PgType::Timestamp,
            PgType::Timestamptz,
            PgType::Interval,
            PgType::Uuid,
            PgType::Json,
            PgType::Jsonb,
            PgType::Oid,
            PgType::Char,
            PgType::BoolArray,
            PgType::CharArray,
            PgType::NameArray,
            PgType::Int2Array,
            PgType::Int4Array,
            PgType::TextArray,
            PgType::OidArray,
            PgType::Int8Array,
            PgType::Float8Array,
            PgType::NumericArray,
            PgType::VarcharArray,
            PgType::Int2Vector,
            PgType::OidVector,
        ] {
            assert_eq!(PgType::from_oid(t.oid()), Some(t));
        }
    }
}
