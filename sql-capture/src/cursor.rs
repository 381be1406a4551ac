//! SQL-level cursors: `DECLARE … CURSOR FOR query`, `FETCH`, `MOVE`, `CLOSE`. sqlparser
//! reads only part of PostgreSQL's FETCH grammar and none of MOVE, so these statements are
//! read here from their tokens; the query of a DECLARE is parsed as any other. The motion
//! rules (where a cursor stands after each direction, which rows it returns) are here too,
//! as pure functions over a position and a row count, so the session only keeps rows.

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use crate::error::{Error, Result};

/// A cursor statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorStatement {
    /// `DECLARE name … CURSOR … FOR query`.
    Declare {
        /// Cursor name.
        name: String,
        /// The query, as the client wrote it.
        query: String,
        /// `SCROLL` (true), `NO SCROLL` (false) or neither.
        scroll: Option<bool>,
        /// `WITH HOLD`: the cursor outlives its transaction.
        hold: bool,
    },
    /// `FETCH` (rows returned) or `MOVE` (only the position changes).
    Fetch {
        /// Cursor name.
        name: String,
        /// Direction and count.
        motion: Motion,
        /// MOVE.
        move_only: bool,
    },
    /// `CLOSE name` (`None`: `CLOSE ALL`).
    Close(Option<String>),
}

/// A FETCH/MOVE direction. Counts are PostgreSQL's: `FORWARD -2` is `BACKWARD 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// `ABSOLUTE n` (FIRST is 1, LAST is -1).
    Absolute(i64),
    /// `RELATIVE n` (NEXT is 1, PRIOR is -1).
    Relative(i64),
    /// `FORWARD n` / `n` (`None`: ALL).
    Forward(Option<i64>),
    /// `BACKWARD n` (`None`: ALL).
    Backward(Option<i64>),
}

impl Motion {
    /// Whether the motion goes backwards (refused on a NO SCROLL cursor).
    pub fn is_backward(self) -> bool {
        match self {
            // ABSOLUTE may go back; PostgreSQL refuses it on NO SCROLL cursors unless it
            // stays ahead, which `step` cannot know without the position: callers check
            // the resulting rows instead.
            Motion::Absolute(_) => false,
            Motion::Relative(n) => n < 0,
            Motion::Forward(n) => n.is_some_and(|n| n < 0),
            Motion::Backward(n) => n.is_none_or(|n| n > 0),
        }
    }

    /// Applies the motion to a cursor at `pos` (0 before the first row, 1..=count on a
    /// row, count+1 after the last) over `count` rows: the rows it passes over, in the
    /// order returned (1-based), and the new position.
    pub fn step(self, pos: u64, count: u64) -> (Vec<u64>, u64) {
        let after = count + 1;
        match self {
            Motion::Absolute(n) => {
                let target = if n >= 0 {
                    (n as u64).min(after)
                } else {
                    // -1 is the last row; beyond the first is before it.
                    let back = n.unsigned_abs();
                    if back > count {
                        0
                    } else {
                        after - back
                    }
                };
                (on_row(target, count), target)
            }
            Motion::Relative(0) => (on_row(pos, count), pos),
            Motion::Relative(n) => {
                let target = if n > 0 {
                    pos.saturating_add(n as u64).min(after)
                } else {
                    pos.saturating_sub(n.unsigned_abs())
                };
                (on_row(target, count), target)
            }
            Motion::Forward(Some(n)) if n < 0 => Motion::Backward(Some(-n)).step(pos, count),
            Motion::Backward(Some(n)) if n < 0 => Motion::Forward(Some(-n)).step(pos, count),
            Motion::Forward(Some(0)) | Motion::Backward(Some(0)) => (on_row(pos, count), pos),
            Motion::Forward(n) => {
                let want = n.map_or(u64::MAX, |n| n as u64);
                let first = pos + 1;
                let last = pos.saturating_add(want).min(count);
                let rows: Vec<u64> = (first..=last).collect();
                // Past the end when fewer rows were left than asked for.
                let end = if (rows.len() as u64) < want {
                    after
                } else {
                    last
                };
                (rows, end)
            }
            Motion::Backward(n) => {
                let want = n.map_or(u64::MAX, |n| n as u64);
                let start = pos.min(after);
                let rows: Vec<u64> = (1..start).rev().take(want.min(count) as usize).collect();
                let end = if (rows.len() as u64) < want {
                    0
                } else {
                    rows.last().copied().unwrap_or(0)
                };
                (rows, end)
            }
        }
    }
}

fn on_row(pos: u64, count: u64) -> Vec<u64> {
    if (1..=count).contains(&pos) {
        vec![pos]
    } else {
        Vec::new()
    }
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn name_of(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// Reads a DECLARE, FETCH, MOVE or CLOSE from its tokens (no whitespace, no comments).
/// `None`: the statement is not one of them. `sql` is the statement's text, from which
/// DECLARE's query is cut.
pub(crate) fn parse(tokens: &[TokenWithSpan], sql: &str) -> Option<Result<CursorStatement>> {
    let first = word(&tokens.first()?.token)?;
    match first.as_str() {
        "declare" => Some(declare(tokens, sql)),
        "fetch" | "move" => Some(fetch(&tokens[1..], first == "move")),
        "close" => Some(close(&tokens[1..])),
        _ => None,
    }
}

fn syntax(near: Option<&TokenWithSpan>) -> Error {
    match near {
        Some(t) => Error::Syntax(format!("syntax error at or near \"{}\"", t.token)),
        None => Error::Syntax("syntax error at end of input".into()),
    }
}

fn declare(tokens: &[TokenWithSpan], sql: &str) -> Result<CursorStatement> {
    let name = tokens
        .get(1)
        .and_then(|t| name_of(&t.token))
        .ok_or_else(|| syntax(tokens.get(1)))?;
    let mut scroll = None;
    let mut hold = false;
    let mut i = 2;
    loop {
        let t = tokens.get(i);
        match t.and_then(|t| word(&t.token)).as_deref() {
            Some("binary") => {
                return Err(Error::Unsupported(
                    "DECLARE … BINARY CURSOR (fetch in text)".into(),
                ))
            }
            Some("insensitive" | "asensitive") => i += 1,
            Some("scroll") => {
                scroll = Some(true);
                i += 1;
            }
            Some("no")
                if tokens.get(i + 1).and_then(|t| word(&t.token)).as_deref() == Some("scroll") =>
            {
                scroll = Some(false);
                i += 2;
            }
            Some("cursor") => {
                i += 1;
                break;
            }
            _ => return Err(syntax(t)),
        }
    }
    loop {
        let t = tokens.get(i);
        match t.and_then(|t| word(&t.token)).as_deref() {
            Some("with" | "without") => {
                let w = word(&tokens[i].token);
                if tokens.get(i + 1).and_then(|t| word(&t.token)).as_deref() != Some("hold") {
                    return Err(syntax(tokens.get(i + 1)));
                }
                hold = w.as_deref() == Some("with");
                i += 2;
            }
            Some("for") => {
                i += 1;
                break;
            }
            _ => return Err(syntax(t)),
        }
    }
    let start = tokens.get(i).ok_or_else(|| syntax(None))?;
    let end = tokens.last().unwrap_or(start);
    let query = cut(sql, start.span.start, end.span.end).ok_or_else(|| syntax(Some(start)))?;
    Ok(CursorStatement::Declare {
        name,
        query,
        scroll,
        hold,
    })
}

/// The text between two token locations (line and column, 1-based; `to` exclusive).
fn cut(sql: &str, from: Location, to: Location) -> Option<String> {
    let offset = |at: Location| {
        let mut line = 1u64;
        let mut col = 1u64;
        for (i, c) in sql.char_indices() {
            if line == at.line && col == at.column {
                return Some(i);
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        (line == at.line && col == at.column).then_some(sql.len())
    };
    let (a, b) = (offset(from)?, offset(to)?);
    sql.get(a..b).map(str::to_string)
}

fn count_at(tokens: &[TokenWithSpan], i: usize) -> Option<i64> {
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::Number(n, _)) => n.parse().ok(),
        Some(Token::Minus) => match tokens.get(i + 1).map(|t| &t.token) {
            Some(Token::Number(n, _)) => n.parse::<i64>().ok().map(|n| -n),
            _ => None,
        },
        Some(Token::Plus) => count_at(tokens, i + 1),
        _ => None,
    }
}

fn count_len(tokens: &[TokenWithSpan], i: usize) -> usize {
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::Minus | Token::Plus) => 2,
        _ => 1,
    }
}

fn fetch(tokens: &[TokenWithSpan], move_only: bool) -> Result<CursorStatement> {
    let mut i = 0;
    let w = |i: usize| tokens.get(i).and_then(|t| word(&t.token));
    let motion = match w(0).as_deref() {
        Some("next") => {
            i = 1;
            Motion::Relative(1)
        }
        Some("prior") => {
            i = 1;
            Motion::Relative(-1)
        }
        Some("first") => {
            i = 1;
            Motion::Absolute(1)
        }
        Some("last") => {
            i = 1;
            Motion::Absolute(-1)
        }
        Some(d @ ("absolute" | "relative")) => {
            let n = count_at(tokens, 1).ok_or_else(|| syntax(tokens.get(1)))?;
            i = 1 + count_len(tokens, 1);
            if d == "absolute" {
                Motion::Absolute(n)
            } else {
                Motion::Relative(n)
            }
        }
        Some("all") => {
            i = 1;
            Motion::Forward(None)
        }
        Some(d @ ("forward" | "backward")) => {
            let (n, used) = if w(1).as_deref() == Some("all") {
                (None, 1)
            } else if let Some(n) = count_at(tokens, 1) {
                (Some(n), count_len(tokens, 1))
            } else {
                (Some(1), 0)
            };
            i = 1 + used;
            if d == "forward" {
                Motion::Forward(n)
            } else {
                Motion::Backward(n)
            }
        }
        _ => match count_at(tokens, 0) {
            Some(n) => {
                i = count_len(tokens, 0);
                Motion::Forward(Some(n))
            }
            None => Motion::Relative(1),
        },
    };
    if matches!(w(i).as_deref(), Some("from" | "in")) {
        i += 1;
    }
    let name = tokens
        .get(i)
        .and_then(|t| name_of(&t.token))
        .ok_or_else(|| syntax(tokens.get(i)))?;
    if let Some(extra) = tokens.get(i + 1) {
        return Err(syntax(Some(extra)));
    }
    Ok(CursorStatement::Fetch {
        name,
        motion,
        move_only,
    })
}

fn close(tokens: &[TokenWithSpan]) -> Result<CursorStatement> {
    match tokens {
        [t] if word(&t.token).as_deref() == Some("all") => Ok(CursorStatement::Close(None)),
        [t] => name_of(&t.token)
            .map(|n| CursorStatement::Close(Some(n)))
            .ok_or_else(|| syntax(Some(t))),
        [] => Err(syntax(None)),
        [_, extra, ..] => Err(syntax(Some(extra))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> CursorStatement {
        match crate::split::parse(sql).expect("parses").pop() {
            Some(crate::split::Parsed::Cursor(c)) => c,
            other => panic!("not a cursor statement: {other:?}"),
        }
    }

    #[test]
    fn reads_declare_fetch_move_close() {
        assert_eq!(
            parsed("declare c1 scroll cursor with hold for select * from t where a = ';'"),
            CursorStatement::Declare {
                name: "c1".into(),
                query: "select * from t where a = ';'".into(),
                scroll: Some(true),
                hold: true
            }
        );
        let f = |sql: &str| match parsed(sql) {
            CursorStatement::Fetch {
                motion, move_only, ..
            } => (motion, move_only),
            other => panic!("{other:?}"),
        };
        assert_eq!(f("fetch 1 in c1"), (Motion::Forward(Some(1)), false));
        assert_eq!(
            f("fetch backward 1 in c1"),
            (Motion::Backward(Some(1)), false)
        );
        assert_eq!(f("fetch all in c1"), (Motion::Forward(None), false));
        assert_eq!(
            f("fetch backward all from c1"),
            (Motion::Backward(None), false)
        );
        assert_eq!(f("fetch c1"), (Motion::Relative(1), false));
        assert_eq!(f("move absolute -2 in c1"), (Motion::Absolute(-2), true));
        assert_eq!(
            f("fetch forward from c1"),
            (Motion::Forward(Some(1)), false)
        );
        assert_eq!(f("fetch -3 from c1"), (Motion::Forward(Some(-3)), false));
        assert_eq!(parsed("close all"), CursorStatement::Close(None));
        assert_eq!(
            parsed("CLOSE \"Foo\""),
            CursorStatement::Close(Some("Foo".into()))
        );
        assert!(crate::split::parse("fetch 1 in c1 c2").is_err());
    }

    #[test]
    fn motions_follow_postgresql() {
        // Four rows; values are 1-based row numbers. Expectations from PostgreSQL 15
        // (`fetch`/`move` on a scroll cursor over generate_series(1,4)).
        let n = 4;
        assert_eq!(Motion::Forward(Some(2)).step(0, n), (vec![1, 2], 2));
        assert_eq!(Motion::Forward(Some(9)).step(2, n), (vec![3, 4], 5));
        assert_eq!(Motion::Forward(None).step(0, n), (vec![1, 2, 3, 4], 5));
        assert_eq!(Motion::Backward(Some(1)).step(5, n), (vec![4], 4));
        assert_eq!(Motion::Backward(None).step(3, n), (vec![2, 1], 0));
        assert_eq!(Motion::Relative(1).step(4, n), (vec![], 5));
        assert_eq!(Motion::Relative(-1).step(1, n), (vec![], 0));
        assert_eq!(Motion::Relative(0).step(2, n), (vec![2], 2));
        assert_eq!(Motion::Absolute(-1).step(0, n), (vec![4], 4));
        assert_eq!(Motion::Absolute(-9).step(3, n), (vec![], 0));
        assert_eq!(Motion::Absolute(7).step(0, n), (vec![], 5));
        assert_eq!(Motion::Absolute(0).step(2, n), (vec![], 0));
        assert_eq!(Motion::Forward(Some(-2)).step(4, n), (vec![3, 2], 2));
        assert_eq!(Motion::Forward(Some(0)).step(3, n), (vec![3], 3));
    }
}
