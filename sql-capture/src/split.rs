//! Splitting a query string into statements and parsing each one.
//!
//! A simple-protocol Query may hold several statements. PostgreSQL checks the syntax of the
//! whole string before running any of it, so [`parse`] does too. Splitting on the
//! tokenizer's semicolons (not on raw text) keeps `';'` inside literals and comments intact
//! and lets statements sqlparser does not know (`VACUUM`, `CHECKPOINT`) be recognised on
//! their own.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::error::{Error, Result};

/// One statement of a query string.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// A statement sqlparser understood.
    Statement(Box<Statement>),
    /// A maintenance statement accepted without effect, answered with this command tag.
    Noop(&'static str),
    /// DECLARE, FETCH, MOVE or CLOSE of a cursor.
    Cursor(crate::cursor::CursorStatement),
    /// BEGIN / START TRANSACTION / SET TRANSACTION with `[NOT] DEFERRABLE` (true when
    /// DEFERRABLE), which sqlparser does not know: the statement without it.
    Deferrable(Box<Statement>, bool),
    /// UPDATE or DELETE `WHERE CURRENT OF cursor`, which sqlparser does not know.
    CurrentOf(Box<crate::current_of::CurrentOf>),
    /// CREATE or ALTER SEQUENCE (see `sequence_syntax`).
    Sequence(crate::sequence_syntax::SequenceStatement),
}

impl Parsed {
    /// The statement as text that parses back to the same statement (what the schema log
    /// ships to other sites); `None` for what is not one self-contained statement.
    pub fn statement_text(&self) -> Option<String> {
        match self {
            Parsed::Statement(s) => Some(s.to_string()),
            Parsed::Sequence(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// Maintenance statements SQLite has no use for; accepted so scripts written for PostgreSQL
/// (pgbench runs `vacuum analyze`) keep working.
fn noop_tag(first: &str, second: Option<&str>) -> Option<&'static str> {
    match (first, second) {
        ("vacuum", _) => Some("VACUUM"),
        ("analyze" | "analyse", _) => Some("ANALYZE"),
        ("checkpoint", _) => Some("CHECKPOINT"),
        ("discard", _) => Some("DISCARD ALL"),
        ("cluster", _) => Some("CLUSTER"),
        ("reindex", _) => Some("REINDEX"),
        _ => None,
    }
}

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn word_of(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// Parses a PostgreSQL query string into its statements. An empty string (or one made only
/// of semicolons and comments) yields no statements.
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Syntax(e.to_string()))?;
    let mut out = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    loop {
        let tok = iter.next();
        let at_end = tok.is_none();
        match tok {
            Some(t) if t.token == Token::SemiColon => {}
            Some(t) if t.token == Token::EOF => continue,
            Some(t) => {
                current.push(t);
                continue;
            }
            None => {}
        }
        // A chunk ended.
        let chunk = std::mem::take(&mut current);
        let significant: Vec<&TokenWithSpan> =
            chunk.iter().filter(|t| !is_trivia(&t.token)).collect();
        if !significant.is_empty() {
            let first = word_of(&significant[0].token);
            let second = significant.get(1).and_then(|t| word_of(&t.token));
            if let Some(tag) = first
                .as_deref()
                .and_then(|f| noop_tag(f, second.as_deref()))
            {
                out.push(Parsed::Noop(tag));
            } else {
                let tokens: Vec<TokenWithSpan> = chunk
                    .iter()
                    .filter(|t| !is_trivia(&t.token))
                    .cloned()
                    .collect();
                if let Some(c) = crate::cursor::parse(&tokens, sql) {
                    out.push(Parsed::Cursor(c?));
                    if at_end {
                        break;
                    }
                    continue;
                }
                if let Some(s) = crate::sequence_syntax::parse(&tokens) {
                    out.push(Parsed::Sequence(s?));
                    if at_end {
                        break;
                    }
                    continue;
                }
                let mut chunk = match first.as_deref() {
                    Some("copy") => normalize_copy_booleans(chunk),
                    Some("update") => subscript_assignments(chunk),
                    _ => chunk,
                };
                let cursor = match first.as_deref() {
                    Some("update" | "delete") => crate::current_of::mark(&mut chunk),
                    _ => None,
                };
                if let Some(cursor) = cursor {
                    let stmt = parse_one(chunk)?;
                    out.push(Parsed::CurrentOf(Box::new(crate::current_of::current_of(
                        &stmt, &cursor,
                    )?)));
                    if at_end {
                        break;
                    }
                    continue;
                }
                let transaction = matches!(
                    (first.as_deref(), second.as_deref()),
                    (Some("begin" | "start"), _) | (Some("set"), Some("transaction" | "session"))
                );
                let (chunk, deferrable) = if transaction {
                    take_deferrable(chunk)
                } else {
                    (chunk, None)
                };
                let stmt = Box::new(parse_one(chunk)?);
                out.push(match deferrable {
                    Some(d) => Parsed::Deferrable(stmt, d),
                    None => Parsed::Statement(stmt),
                });
            }
        }
        if at_end {
            break;
        }
    }
    Ok(out)
}

/// The function an `UPDATE … SET col[s1][s2] = v` becomes before parsing (sqlparser takes
/// no subscript on an assignment's target): `SET col = <this>(col, (v), (s1), (s2))`,
/// which the UPDATE's rewrite turns into the column type's subscript assignment.
pub(crate) const SUBSCRIPT_ASSIGN: &str = "__mdbc_subscript_assign";

/// Rewrites the subscripted assignments of an UPDATE's SET list (see [`SUBSCRIPT_ASSIGN`]);
/// anything it does not recognise is left for the parser to judge.
fn subscript_assignments(chunk: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    if !chunk.iter().any(|t| t.token == Token::LBracket) {
        return chunk;
    }
    let sig: Vec<usize> = (0..chunk.len())
        .filter(|&i| !is_trivia(&chunk[i].token))
        .collect();
    let tok = |k: usize| &chunk[sig[k]].token;
    let opens = |t: &Token| matches!(t, Token::LParen | Token::LBracket);
    let closes = |t: &Token| matches!(t, Token::RParen | Token::RBracket);
    // The SET keyword at depth 0.
    let mut depth = 0i32;
    let mut set = None;
    for k in 0..sig.len() {
        let t = tok(k);
        if opens(t) {
            depth += 1;
        } else if closes(t) {
            depth -= 1;
        } else if depth == 0 && word_of(t).as_deref() == Some("set") {
            set = Some(k);
            break;
        }
    }
    let Some(set) = set else {
        return chunk;
    };
    let mut out: Vec<TokenWithSpan> = chunk[..=sig[set]].to_vec();
    let mut k = set + 1;
    let wrap = TokenWithSpan::wrap;
    while k < sig.len() {
        // This assignment runs to a comma or WHERE/FROM/RETURNING at depth 0.
        let mut depth = 0i32;
        let mut end = sig.len();
        for m in k..sig.len() {
            let t = tok(m);
            if opens(t) {
                depth += 1;
            } else if closes(t) {
                depth -= 1;
            } else if depth == 0
                && (t == &Token::Comma
                    || matches!(word_of(t).as_deref(), Some("where" | "from" | "returning")))
            {
                end = m;
                break;
            }
        }
        let verbatim_end = sig.get(end).copied().unwrap_or(chunk.len());
        let rewritten = subscripted(&chunk, &sig[k..end]);
        match rewritten {
            Some(tokens) => out.extend(tokens),
            None => out.extend(chunk[sig[k]..verbatim_end].iter().cloned()),
        }
        match sig.get(end) {
            Some(&i) if chunk[i].token == Token::Comma => {
                out.push(wrap(Token::Comma));
                k = end + 1;
            }
            Some(&i) => {
                out.push(wrap(Token::Whitespace(Whitespace::Space)));
                out.extend(chunk[i..].iter().cloned());
                return out;
            }
            None => return out,
        }
    }
    out
}

/// `col [s1] [s2] = v` (significant tokens) as `col = SUBSCRIPT_ASSIGN(col, (v), (s1),
/// (s2))`; `None` when the assignment has no subscript or one this does not handle (a
/// slice).
fn subscripted(chunk: &[TokenWithSpan], at: &[usize]) -> Option<Vec<TokenWithSpan>> {
    let wrap = TokenWithSpan::wrap;
    let col = chunk.get(*at.first()?)?;
    if !matches!(col.token, Token::Word(_)) {
        return None;
    }
    let mut subs: Vec<Vec<TokenWithSpan>> = Vec::new();
    let mut m = 1;
    while at
        .get(m)
        .is_some_and(|&i| chunk[i].token == Token::LBracket)
    {
        let mut depth = 0i32;
        let mut body = Vec::new();
        loop {
            let t = &chunk[*at.get(m)?];
            match t.token {
                Token::LBracket | Token::LParen => {
                    depth += 1;
                    if depth > 1 {
                        body.push(t.clone());
                    }
                }
                Token::RBracket | Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    body.push(t.clone());
                }
                Token::Colon if depth == 1 => return None,
                _ => body.push(t.clone()),
            }
            m += 1;
        }
        subs.push(body);
        m += 1;
    }
    if subs.is_empty() || at.get(m).map(|&i| &chunk[i].token) != Some(&Token::Eq) {
        return None;
    }
    let value: Vec<TokenWithSpan> = at[m + 1..].iter().map(|&i| chunk[i].clone()).collect();
    if value.is_empty() {
        return None;
    }
    let space = || wrap(Token::Whitespace(Whitespace::Space));
    let mut out = vec![
        col.clone(),
        space(),
        wrap(Token::Eq),
        space(),
        wrap(Token::make_word(SUBSCRIPT_ASSIGN, None)),
        wrap(Token::LParen),
        col.clone(),
        wrap(Token::Comma),
        wrap(Token::LParen),
    ];
    for t in value {
        out.push(t);
        out.push(space());
    }
    out.push(wrap(Token::RParen));
    for sub in subs {
        out.push(wrap(Token::Comma));
        out.push(wrap(Token::LParen));
        for t in sub {
            out.push(t);
            out.push(space());
        }
        out.push(wrap(Token::RParen));
    }
    out.push(wrap(Token::RParen));
    Some(out)
}

/// A transaction statement's `[NOT] DEFERRABLE` mode, taken out with the comma that
/// separates it from the other modes. The last one given wins, as in PostgreSQL.
fn take_deferrable(chunk: Vec<TokenWithSpan>) -> (Vec<TokenWithSpan>, Option<bool>) {
    let mut kept: Vec<TokenWithSpan> = Vec::with_capacity(chunk.len());
    let mut deferrable = None;
    for t in chunk {
        if word_of(&t.token).as_deref() != Some("deferrable") {
            kept.push(t);
            continue;
        }
        // Drop a preceding NOT (and the trivia between).
        while kept.last().is_some_and(|p| is_trivia(&p.token)) {
            kept.pop();
        }
        let negated = kept
            .last()
            .is_some_and(|p| word_of(&p.token).as_deref() == Some("not"));
        if negated {
            kept.pop();
        }
        deferrable = Some(!negated);
        while kept.last().is_some_and(|p| is_trivia(&p.token)) {
            kept.pop();
        }
        if kept.last().is_some_and(|p| p.token == Token::Comma) {
            kept.pop();
        }
    }
    // A mode list that now starts with a comma (DEFERRABLE was first).
    let first_mode = kept
        .iter()
        .position(|t| t.token == Token::Comma)
        .filter(|&i| {
            kept[..i]
                .iter()
                .rev()
                .find(|t| !is_trivia(&t.token))
                .is_some_and(|p| {
                    matches!(
                        word_of(&p.token).as_deref(),
                        Some("transaction" | "work" | "begin" | "characteristics")
                    )
                })
        });
    if let Some(i) = first_mode {
        kept.remove(i);
    }
    (kept, deferrable)
}

/// PostgreSQL's COPY options take `on`/`off` as booleans (`freeze on`, which pgbench sends);
/// sqlparser only knows `true`/`false`. COPY's grammar has no other use of ON or OFF.
fn normalize_copy_booleans(chunk: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    chunk
        .into_iter()
        .map(|mut t| {
            if let Token::Word(w) = &t.token {
                if w.quote_style.is_none() {
                    let replacement = match w.value.to_ascii_lowercase().as_str() {
                        "on" => Some("true"),
                        "off" => Some("false"),
                        _ => None,
                    };
                    if let Some(r) = replacement {
                        t.token = Token::make_keyword(r);
                    }
                }
            }
            t
        })
        .collect()
}

/// `RESET TIME ZONE` (PostgreSQL's spelling of `RESET timezone`), which sqlparser stops
/// reading after `TIME`.
fn reset_time_zone(mut chunk: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = chunk
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
        .map(|(i, _)| i)
        .collect();
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    if let [reset, time, zone] = significant.as_slice() {
        if word(&chunk[*reset].token, "reset")
            && word(&chunk[*time].token, "time")
            && word(&chunk[*zone].token, "zone")
        {
            chunk[*time].token = Token::make_word("timezone", None);
            chunk.remove(*zone);
        }
    }
    chunk
}

/// `interval(p) 'text'`: sqlparser reads it as `interval 'text'` and drops the precision,
/// so it becomes `'text'::interval(p)` (the same value and column name in PostgreSQL).
fn interval_precision_literals(mut chunk: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = chunk
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i + 4 < significant.len() {
        let at = |k: usize| &chunk[significant[i + k]].token;
        let is_interval = matches!(at(0), Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("interval"));
        if is_interval
            && matches!(at(1), Token::LParen)
            && matches!(at(2), Token::Number(..))
            && matches!(at(3), Token::RParen)
            && matches!(at(4), Token::SingleQuotedString(_))
        {
            let idx: Vec<usize> = (0..5).map(|k| significant[i + k]).collect();
            let literal = chunk[idx[4]].token.clone();
            let number = chunk[idx[2]].token.clone();
            let tokens = [
                literal,
                Token::DoubleColon,
                Token::make_word("interval", None),
                Token::LParen,
                number,
                Token::RParen,
            ];
            // Five tokens become six: the first five in place, the sixth after them.
            for (k, t) in tokens.iter().take(5).enumerate() {
                chunk[idx[k]].token = t.clone();
            }
            let span = chunk[idx[4]].span;
            chunk.insert(idx[4] + 1, TokenWithSpan::new(tokens[5].clone(), span));
            return interval_precision_literals(chunk);
        }
        i += 1;
    }
    chunk
}

/// The type sqlparser is given for a column of `CREATE TABLE t (a, b) AS …`, which PostgreSQL
/// writes without types and sqlparser cannot read that way.
pub(crate) const UNTYPED_COLUMN: &str = "__mdbc_untyped";

/// `CREATE … TABLE name (a, b) AS …`: each bare column name gets [`UNTYPED_COLUMN`] as its
/// type, so the statement parses; `create_as` takes the names and ignores the type.
fn create_as_column_names(mut chunk: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let sig: Vec<usize> = chunk
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let word = |i: usize| word_of(&chunk[sig[i]].token).map(|w| w.to_ascii_lowercase());
    if sig.is_empty() || word(0).as_deref() != Some("create") {
        return chunk;
    }
    let Some(table) = (1..sig.len().min(5)).find(|&i| word(i).as_deref() == Some("table")) else {
        return chunk;
    };
    let Some(open) = (table + 1..sig.len()).find(|&i| matches!(chunk[sig[i]].token, Token::LParen))
    else {
        return chunk;
    };
    // name, name, …, name ) AS
    let mut names = Vec::new();
    let mut i = open + 1;
    loop {
        match sig.get(i).map(|&k| &chunk[k].token) {
            Some(Token::Word(_)) => names.push(sig[i]),
            _ => return chunk,
        }
        match sig.get(i + 1).map(|&k| &chunk[k].token) {
            Some(Token::Comma) => i += 2,
            Some(Token::RParen) => break,
            _ => return chunk,
        }
    }
    if sig.get(i + 2).and_then(|_| word(i + 2)).as_deref() != Some("as") {
        return chunk;
    }
    for &k in names.iter().rev() {
        let span = chunk[k].span;
        chunk.insert(
            k + 1,
            TokenWithSpan::new(Token::make_word(UNTYPED_COLUMN, None), span),
        );
        chunk.insert(
            k + 1,
            TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span),
        );
    }
    chunk
}

fn parse_one(chunk: Vec<TokenWithSpan>) -> Result<Statement> {
    let dialect = PostgreSqlDialect {};
    let chunk: Vec<TokenWithSpan> = chunk
        .into_iter()
        .filter(|t| {
            !matches!(
                t.token,
                Token::Whitespace(Whitespace::SingleLineComment { .. })
                    | Token::Whitespace(Whitespace::MultiLineComment(_))
            )
        })
        .collect();
    let chunk = create_as_column_names(interval_precision_literals(reset_time_zone(chunk)));
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(chunk);
    let stmt = parser
        .parse_statement()
        .map_err(|e| Error::Syntax(clean_parser_error(&e.to_string())))?;
    // Whatever follows a complete statement inside one chunk is garbage.
    if parser.peek_token().token != Token::EOF {
        let t = parser.peek_token();
        return Err(Error::Syntax(format!(
            "syntax error at or near \"{}\" ({})",
            t.token, t.span.start
        )));
    }
    Ok(stmt)
}

fn clean_parser_error(msg: &str) -> String {
    msg.trim_start_matches("sql parser error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_semicolons_in_literals() {
        let p = parse("select ';'; select 2;;").unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn recognises_maintenance_statements() {
        let p = parse("vacuum analyze pgbench_branches").unwrap();
        assert!(matches!(p[0], Parsed::Noop("VACUUM")));
    }

    #[test]
    fn copy_accepts_on_off() {
        let p = parse("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert!(matches!(&p[0], Parsed::Statement(s) if matches!(**s, Statement::Copy { .. })));
    }

    #[test]
    fn empty_and_comments_only() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" ; -- nothing\n;").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_are_reported() {
        let e = parse("select 1; selec 2").unwrap_err();
        assert_eq!(e.sqlstate(), "42601");
        let e = parse("select 1 1").unwrap_err();
        assert_eq!(e.sqlstate(), "42601");
    }

    #[test]
    fn where_current_of_becomes_a_placeholder_then_a_row() {
        let parsed =
            crate::split::parse("UPDATE uctest u SET f1 = 8 WHERE CURRENT OF \"C1\"").unwrap();
        let [crate::split::Parsed::CurrentOf(c)] = parsed.as_slice() else {
            panic!("{parsed:?}")
        };
        assert_eq!(c.cursor, "C1");
        assert_eq!(c.table, "uctest");
        assert_eq!(
            c.at_row(7).to_string(),
            "UPDATE uctest u SET f1 = 8 WHERE \"u\".rowid = 7"
        );
        let parsed =
            crate::split::parse("delete from uctest where current of c1 returning *").unwrap();
        let [crate::split::Parsed::CurrentOf(c)] = parsed.as_slice() else {
            panic!("{parsed:?}")
        };
        assert_eq!(c.cursor, "c1");
        assert_eq!(
            c.at_row(3).to_string(),
            "DELETE FROM uctest WHERE \"uctest\".rowid = 3 RETURNING *"
        );
    }
}

#[cfg(test)]
mod fuzz {
    //! Seeded random statements built from SQL fragments: parsing and planning must answer
    //! every one with a plan or an error, never a panic. `SEED=n` replays one seed.
    use crate::{plan, Catalog};

    const FRAGMENTS: &[&str] = &[
        "select",
        "insert",
        "into",
        "update",
        "delete",
        "from",
        "where",
        "values",
        "(",
        ")",
        ",",
        "*",
        "1",
        "'x'",
        "$1",
        "::int",
        "::text",
        "and",
        "or",
        "not",
        "null",
        "t",
        "a",
        "=",
        "<>",
        "+",
        "-",
        "order by",
        "limit",
        "group by",
        "having",
        "join",
        "on",
        "as",
        "create table",
        "drop table",
        "alter table",
        "add",
        "primary key",
        "begin",
        "commit",
        "rollback",
        "copy",
        "stdin",
        ";",
        "array[",
        "]",
        "any(",
        "ilike",
        "~",
        "generate_series(",
        "returning",
        "on conflict",
        "do nothing",
        "set",
        "show",
        "vacuum",
        "E'\\n'",
        "$$d$$",
        "case when",
        "then",
        "else",
        "end",
        "exists",
        "in",
        "between",
        "is",
        "distinct",
        "true",
        "false",
        "1.5e3",
        "-",
        "/*",
        "*/",
        "--",
        "\"Q\"",
        "count(*)",
        "now()",
    ];

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_sql_never_panics() {
        let seeds: Vec<u64> = match std::env::var("SEED") {
            Ok(s) => vec![s.parse().expect("SEED is a number")],
            Err(_) => (1..=3000).collect(),
        };
        let catalog = Catalog::default();
        for seed in seeds {
            let mut st = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let len = 1 + next(&mut st) % 14;
            let sql: Vec<&str> = (0..len)
                .map(|_| FRAGMENTS[(next(&mut st) % FRAGMENTS.len() as u64) as usize])
                .collect();
            let sql = sql.join(" ");
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(stmts) = super::parse(&sql) {
                    for s in &stmts {
                        let _ = plan(s, &catalog);
                    }
                }
            });
            assert!(
                outcome.is_ok(),
                "panic on seed {seed} (replay: SEED={seed}): {sql}"
            );
        }
    }
}
