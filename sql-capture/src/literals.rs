//! Query shapes: a simple-protocol query with its literals taken out.
//!
//! Clients that interpolate values into SQL text (pgbench `-M simple`, psycopg2, most
//! scripts) send a different string for every execution of the same statement, so a cache
//! keyed by text never hits and every execution pays for parsing, rewriting and SQLite's
//! compilation. [`scan`] reduces such a string to its *shape* (the text with each number or
//! string literal replaced by a marker of its class) and the literal values in order; the
//! server plans a shape once, with each literal turned into a SQLite parameter, and binds
//! the values of later executions.
//!
//! Safety rests on three rules:
//! - the scanner is deliberately narrow: anything it is not sure to read exactly as
//!   sqlparser does (comments, dollar quotes, `E'…'` and other prefixed strings, `$n`,
//!   several statements, numbers glued to letters or dots) makes it give up, and the query
//!   takes the ordinary path;
//! - on the first execution of a shape, [`locate`] checks the scanner's literals against
//!   sqlparser's own tokens, and planning turns a literal into a parameter only where a
//!   bound value means the same as the literal to SQLite (not a positional `ORDER BY 1`,
//!   not inside text the rewriter re-parses); if any literal stays inline the shape is not
//!   reused;
//! - a literal's class (small, 32-bit, 64-bit integer, decimal, string) is part of the shape,
//!   because translation decides types by it (`2147483648` is int8, `1.5` numeric).

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, GroupByExpr, OrderByExpr, Value, ValueWithSpan, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

/// A literal's value as SQLite reads the same literal in SQL text.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralValue {
    /// An integer literal.
    Int(i64),
    /// A decimal or exponent literal: a numeric, which translation writes as its text
    /// (numerics are exact text in SQLite).
    Decimal(String),
    /// A single-quoted string, quotes undoubled.
    Text(String),
}

/// A query string reduced to its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The text with every literal replaced by `\u{1}` and a class letter.
    pub key: String,
    /// The literals in order of appearance.
    pub values: Vec<LiteralValue>,
    // The literals as written (numbers) or unquoted (strings), for `locate`.
    texts: Vec<String>,
}

/// Class letters: the translation of a statement may depend on them, never on the value.
fn number_class(text: &str) -> Option<(char, LiteralValue)> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = text.parse().ok()?;
        let class = if v <= i64::from(i16::MAX) {
            'h'
        } else if v <= i64::from(i32::MAX) {
            'i'
        } else if v <= i64::from(u32::MAX) {
            'u'
        } else {
            'l'
        };
        return Some((class, LiteralValue::Int(v)));
    }
    Some(('n', LiteralValue::Decimal(text.to_string())))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Reduces a single-statement query to its shape; `None` where the query has no literals or
/// anything the scanner does not read with certainty.
pub fn scan(sql: &str) -> Option<Shape> {
    let b = sql.as_bytes();
    let mut key = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut texts = Vec::new();
    let mut i = 0;
    let mut copied = 0; // b[copied..i] is still to be copied into the key
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // A quote right after a word or `&` is a prefixed string (E'', B'', U&'').
                if i > 0 && (is_ident_byte(b[i - 1]) || b[i - 1] == b'&') {
                    return None;
                }
                let mut j = i + 1;
                let mut text = String::new();
                let mut start = j;
                loop {
                    let q = j + sql.get(j..)?.find('\'')?;
                    text.push_str(&sql[start..q]);
                    if b.get(q + 1) == Some(&b'\'') {
                        text.push('\'');
                        j = q + 2;
                        start = j;
                    } else {
                        j = q + 1;
                        break;
                    }
                }
                // A string directly followed by a quote or a word is something else
                // (PostgreSQL joins literals only across a newline, which we leave alone).
                if b.get(j).is_some_and(|&n| is_ident_byte(n) || n == b'\'') {
                    return None;
                }
                key.push_str(&sql[copied..i]);
                key.push_str("\u{1}s");
                values.push(LiteralValue::Text(text.clone()));
                texts.push(text);
                i = j;
                copied = j;
            }
            b'"' => {
                // Quoted identifier, copied as is; `""` inside is two quotes in a row.
                let mut j = i + 1;
                loop {
                    let q = j + sql.get(j..)?.find('"')?;
                    if b.get(q + 1) == Some(&b'"') {
                        j = q + 2;
                    } else {
                        j = q + 1;
                        break;
                    }
                }
                i = j;
            }
            b'0'..=b'9' => {
                let mut j = i;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if matches!(b.get(j), Some(b'e' | b'E')) {
                    let mut k = j + 1;
                    if matches!(b.get(k), Some(b'+' | b'-')) {
                        k += 1;
                    }
                    if b.get(k).is_some_and(u8::is_ascii_digit) {
                        j = k;
                        while j < b.len() && b[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                }
                // `1abc`, `1.`, `1.2.3`, `0x1F`, `1_000`: not ours to read.
                if b.get(j).is_some_and(|&n| is_ident_byte(n) || n == b'.') {
                    return None;
                }
                let text = &sql[i..j];
                let (class, value) = number_class(text)?;
                key.push_str(&sql[copied..i]);
                key.push('\u{1}');
                key.push(class);
                values.push(value);
                texts.push(text.to_string());
                i = j;
                copied = j;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
            b'$' | 1 => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b';' => {
                if !sql[i + 1..].trim().is_empty() {
                    return None;
                }
                i += 1;
            }
            c if is_ident_byte(c) => {
                // A word: digits inside it belong to it.
                while i < b.len() && is_ident_byte(b[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    if values.is_empty() {
        return None;
    }
    key.push_str(&sql[copied..]);
    Some(Shape { key, values, texts })
}

/// Where sqlparser's tokenizer puts each of the shape's literals in `sql`, checking that it
/// reads the same literals (same count, kind and text) and no other kind of literal.
pub fn locate(sql: &str, shape: &Shape) -> Option<Vec<Location>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut out = Vec::with_capacity(shape.values.len());
    for t in &tokens {
        let (text, is_string) = match &t.token {
            Token::Number(n, false) => (n, false),
            Token::SingleQuotedString(s) => (s, true),
            Token::Number(_, true)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DoubleQuotedString(_)
            | Token::Placeholder(_) => return None,
            _ => continue,
        };
        let k = out.len();
        let expected = shape.texts.get(k)?;
        let expected_string = matches!(shape.values[k], LiteralValue::Text(_));
        if expected != text || expected_string != is_string {
            return None;
        }
        out.push(t.span.start);
    }
    (out.len() == shape.values.len()).then_some(out)
}

/// The client's literals by position, as [`locate`] found them, with their texts.
#[derive(Debug, Clone)]
pub struct Literals {
    locations: Vec<Location>,
    texts: Vec<String>,
}

impl Literals {
    /// Locates the shape's literals in `sql` (see [`locate`]).
    pub fn find(sql: &str, shape: &Shape) -> Option<Literals> {
        Some(Literals {
            locations: locate(sql, shape)?,
            texts: shape.texts.clone(),
        })
    }

    /// How many literals the client wrote.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }
}

/// Replaces every client literal in `node` by the SQLite parameter `?k` (k = its position
/// in the client's text, from 1), provided each one can be: all or nothing. Returns whether
/// it did. A literal is left alone (and the statement is then not reusable by shape) where
/// the rewriter changed it, or where SQLite gives a constant a meaning a parameter lacks:
/// `ORDER BY 1` and `GROUP BY 1` name a column by position.
pub(crate) fn parameterize<T: VisitMut>(node: &mut T, literals: &Literals) -> bool {
    struct Pass<'a> {
        literals: &'a Literals,
        positional: usize,
        // Literals replaceable where found, and literals some copy of which must stay
        // inline (a copy under ORDER BY, changed by the rewriter, or not an expression).
        found: Vec<bool>,
        blocked: Vec<bool>,
        claimed: Option<usize>,
        replace: bool,
    }
    impl Pass<'_> {
        fn index_at(&self, v: &ValueWithSpan) -> Option<usize> {
            self.literals
                .locations
                .iter()
                .position(|l| *l == v.span.start)
        }
    }
    impl VisitorMut for Pass<'_> {
        type Break = ();
        fn pre_visit_order_by_expr(&mut self, _: &mut OrderByExpr) -> ControlFlow<()> {
            self.positional += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_order_by_expr(&mut self, _: &mut OrderByExpr) -> ControlFlow<()> {
            self.positional -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_group_by(&mut self, _: &mut GroupByExpr) -> ControlFlow<()> {
            self.positional += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_group_by(&mut self, _: &mut GroupByExpr) -> ControlFlow<()> {
            self.positional -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let Expr::Value(v) = e else {
                return ControlFlow::Continue(());
            };
            let Some(k) = self.index_at(v) else {
                return ControlFlow::Continue(());
            };
            if self.replace {
                v.value = Value::Placeholder(format!("?{}", k + 1));
                return ControlFlow::Continue(());
            }
            let text = &self.literals.texts[k];
            let unchanged = match &v.value {
                Value::Number(n, false) => n == text,
                Value::SingleQuotedString(s) => s == text,
                _ => false,
            };
            if unchanged && self.positional == 0 {
                self.found[k] = true;
                self.claimed = Some(k);
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            if self.replace {
                return ControlFlow::Continue(());
            }
            if let Some(k) = self.index_at(v) {
                if self.claimed.take() != Some(k) {
                    self.blocked[k] = true;
                }
            }
            ControlFlow::Continue(())
        }
    }
    if literals.is_empty() {
        return false;
    }
    let mut pass = Pass {
        literals,
        positional: 0,
        found: vec![false; literals.len()],
        blocked: vec![false; literals.len()],
        claimed: None,
        replace: false,
    };
    let _ = node.visit(&mut pass);
    if pass.found.iter().any(|f| !f) || pass.blocked.iter().any(|b| *b) {
        return false;
    }
    pass.replace = true;
    let _ = node.visit(&mut pass);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_statements() {
        let s = scan("SELECT abalance FROM pgbench_accounts WHERE aid = 81234;").unwrap();
        assert_eq!(
            s.key,
            "SELECT abalance FROM pgbench_accounts WHERE aid = \u{1}i;"
        );
        assert_eq!(s.values, vec![LiteralValue::Int(81234)]);
        let s =
            scan("UPDATE pgbench_tellers SET tbalance = tbalance + -4123 WHERE tid = 7;").unwrap();
        assert_eq!(
            s.key,
            "UPDATE pgbench_tellers SET tbalance = tbalance + -\u{1}h WHERE tid = \u{1}h;"
        );
        assert_eq!(
            s.values,
            vec![LiteralValue::Int(4123), LiteralValue::Int(7)]
        );
    }

    #[test]
    fn classes_and_values() {
        let s = scan("select 1, 40000, 3000000000, 9000000000, 1.5, 2e3, 'it''s', t1.c2").unwrap();
        assert_eq!(
            s.key,
            "select \u{1}h, \u{1}i, \u{1}u, \u{1}l, \u{1}n, \u{1}n, \u{1}s, t1.c2"
        );
        assert_eq!(s.values[4], LiteralValue::Decimal("1.5".into()));
        assert_eq!(s.values[5], LiteralValue::Decimal("2e3".into()));
        assert_eq!(s.values[6], LiteralValue::Text("it's".into()));
    }

    #[test]
    fn gives_up_on_what_it_cannot_read_exactly() {
        for sql in [
            "select E'a\\n'",
            "select U&'x'",
            "select x'1f'",
            "select $1",
            "select $$a$$",
            "select 1 -- c",
            "select /* c */ 1",
            "select 1; select 2",
            "select 1abc",
            "select 0x1f",
            "select 1_000",
            "select .5",
            "select 1.",
            "select 'a''",
            "select \"a",
            "select 123456789012345678901234567890",
            "select a from t",
            "select \u{1}s",
        ] {
            assert!(scan(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn quoted_identifiers_are_not_literals() {
        let s = scan("select \"a'1\" from \"t\"\"2\" where x = '\"'").unwrap();
        assert_eq!(s.values, vec![LiteralValue::Text("\"".into())]);
        assert!(s.key.starts_with("select \"a'1\" from \"t\"\"2\""));
    }

    #[test]
    fn locate_agrees_with_the_tokenizer() {
        let sql = "select 'é''x', 12\n  from t where a = 3.5 and b = 'q\\'";
        let s = scan(sql).unwrap();
        let locs = locate(sql, &s).unwrap();
        assert_eq!(locs.len(), 4);
        assert_eq!((locs[2].line, locs[3].line), (2, 2));
    }

    /// Every number and string the scanner accepts, the tokenizer reads as one literal with
    /// the same text, whatever its content.
    #[test]
    fn random_literals_round_trip() {
        let seed: u64 = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7);
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "ab'\"\\ \n\t;$-/*é0123456789.eE+".chars().collect();
        for _ in 0..3000 {
            let lit = match next() % 3 {
                0 => {
                    let len = next() % 8;
                    let body: String = (0..len)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect();
                    format!("'{}'", body.replace('\'', "''"))
                }
                1 => format!("{}", next() % 100_000),
                _ => format!("{}.{}e{}", next() % 1000, next() % 1000, next() % 20),
            };
            let sql = format!("select {lit} from t where c = {lit}");
            if let Some(s) = scan(&sql) {
                assert!(locate(&sql, &s).is_some(), "seed {seed}: {sql}");
            } else {
                panic!("seed {seed}: scanner gave up on {sql}");
            }
        }
    }

    fn shaped(sql: &str, cat: &crate::Catalog) -> (String, usize) {
        let shape = scan(sql).expect("scans");
        let lits = Literals::find(sql, &shape).expect("locates");
        let parsed = crate::parse(sql).unwrap().pop().unwrap();
        match crate::plan_shape(&parsed, cat, &lits).unwrap() {
            crate::Command::Sql(p) => (p.sql.join("; "), p.literals),
            other => panic!("{other:?}"),
        }
    }

    fn catalog() -> crate::Catalog {
        use crate::types::PgType;
        let mut cat = crate::Catalog::default();
        let col = crate::ColumnInfo::plain;
        cat.insert(crate::TableDef {
            name: "t".into(),
            columns: vec![
                col("id", PgType::Int4),
                col("s", PgType::Int2),
                col("b", PgType::Int8),
                col("name", PgType::Text),
                col("ts", PgType::Timestamp),
            ],
        });
        cat
    }

    #[test]
    fn literals_become_parameters() {
        let cat = catalog();
        let (sql, n) = shaped(
            "select name from t where id = 5 and name like 'a%' limit 3",
            &cat,
        );
        assert_eq!(n, 3);
        assert_eq!(
            sql,
            "SELECT name FROM t WHERE id = ?1 AND name LIKE ?2 ESCAPE '\\' LIMIT ?3"
        );
        let (sql, n) = shaped("update t set b = b + -7 where id = 9", &cat);
        assert_eq!(
            (sql.as_str(), n),
            ("UPDATE t SET b = pg_int8('+', b, -?1) WHERE id = ?2", 2)
        );
        // A reg* literal is an oid or a name: the plan is for this text only.
        for sql in [
            "select '16385'::regclass::oid",
            "select '_int4'::regtype::oid",
            "select 'public'::regnamespace::oid",
            "select to_regnamespace('public')",
        ] {
            assert_eq!(shaped(sql, &cat).1, 0, "{sql}");
        }
        let (sql, n) = shaped("select '12'::int, 2", &cat);
        assert_eq!(n, 2);
        assert!(sql.contains("pg_coerce(?1, 23, -1)"), "{sql}");
        let (sql, n) = shaped(
            "insert into t (id, s, ts) values (1, 2, '2024-01-01 00:00:00')",
            &cat,
        );
        assert_eq!(n, 3);
        assert!(sql.contains("VALUES (?1, ?2, pg_coerce(?3, 1114"), "{sql}");
        // The value decides whether a smallint takes it, so its class does: one out of
        // range is refused while planning, as PostgreSQL folds the constant.
        let sql = "insert into t (id, s) values (1, 40000)";
        let shape = scan(sql).expect("scans");
        let lits = Literals::find(sql, &shape).expect("locates");
        let parsed = crate::parse(sql).unwrap().pop().unwrap();
        let err = crate::plan_shape(&parsed, &cat, &lits).unwrap_err();
        assert_eq!(err.sqlstate(), "22003");
        let (sql, n) = shaped("select x from generate_series(1, 3) as x", &cat);
        assert_eq!(n, 2, "{sql}");
        let (sql, n) = shaped("select a from (values (1, 'x')) as v(a, b)", &cat);
        assert_eq!(n, 2, "{sql}");
        let (sql, n) = shaped("select date '2024-01-01'", &cat);
        assert_eq!(
            (sql.as_str(), n),
            ("SELECT pg_coerce(?1, 1082, -1) AS \"date\"", 1)
        );
    }

    #[test]
    fn literals_with_a_meaning_of_their_own_stay() {
        let cat = catalog();
        for sql in [
            "select id, name from t order by 2",
            "select s, count(*) from t where id > 0 group by 1",
        ] {
            let (out, n) = shaped(sql, &cat);
            assert_eq!(n, 0, "{sql} -> {out}");
            assert!(!out.contains('?'), "{sql} -> {out}");
        }
    }
}
