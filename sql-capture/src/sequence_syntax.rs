//! `CREATE SEQUENCE` and `ALTER SEQUENCE` read from their tokens. PostgreSQL takes the
//! options in any order (`START 5 INCREMENT 2 OWNED BY t.c AS integer`); sqlparser takes
//! them in one fixed order and has no ALTER SEQUENCE, so these two statements are read
//! here, as cursors are.

use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Error, Result};

/// A CREATE or ALTER SEQUENCE statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceStatement {
    /// ALTER (else CREATE).
    pub alter: bool,
    /// CREATE TEMPORARY.
    pub temporary: bool,
    /// CREATE … IF NOT EXISTS, or ALTER … IF EXISTS.
    pub if_exists: bool,
    /// The sequence's name (folded unless quoted, without a schema).
    pub name: String,
    /// The options in the order given.
    pub options: Vec<SequenceOption>,
}

/// One option of CREATE/ALTER SEQUENCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceOption {
    /// `AS type`.
    As(String),
    /// `INCREMENT [BY] n`.
    Increment(i64),
    /// `MINVALUE n` or `NO MINVALUE`.
    Min(Option<i64>),
    /// `MAXVALUE n` or `NO MAXVALUE`.
    Max(Option<i64>),
    /// `START [WITH] n`.
    Start(i64),
    /// `RESTART [[WITH] n]` (ALTER only).
    Restart(Option<i64>),
    /// `CACHE n`.
    Cache(i64),
    /// `CYCLE` or `NO CYCLE`.
    Cycle(bool),
    /// `OWNED BY table.column` or `OWNED BY NONE`.
    OwnedBy(Option<(String, String)>),
}

impl std::fmt::Display for SequenceStatement {
    /// PostgreSQL's spelling of the statement, read back by [`parse`] as the same.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = crate::ast::quote_ident;
        match (self.alter, self.temporary, self.if_exists) {
            (true, _, true) => write!(f, "ALTER SEQUENCE IF EXISTS {}", q(&self.name))?,
            (true, _, false) => write!(f, "ALTER SEQUENCE {}", q(&self.name))?,
            (false, temp, ine) => write!(
                f,
                "CREATE {}SEQUENCE {}{}",
                if temp { "TEMPORARY " } else { "" },
                if ine { "IF NOT EXISTS " } else { "" },
                q(&self.name)
            )?,
        }
        for o in &self.options {
            match o {
                SequenceOption::As(t) => write!(f, " AS {t}")?,
                SequenceOption::Increment(n) => write!(f, " INCREMENT BY {n}")?,
                SequenceOption::Min(Some(n)) => write!(f, " MINVALUE {n}")?,
                SequenceOption::Min(None) => write!(f, " NO MINVALUE")?,
                SequenceOption::Max(Some(n)) => write!(f, " MAXVALUE {n}")?,
                SequenceOption::Max(None) => write!(f, " NO MAXVALUE")?,
                SequenceOption::Start(n) => write!(f, " START WITH {n}")?,
                SequenceOption::Restart(Some(n)) => write!(f, " RESTART WITH {n}")?,
                SequenceOption::Restart(None) => write!(f, " RESTART")?,
                SequenceOption::Cache(n) => write!(f, " CACHE {n}")?,
                SequenceOption::Cycle(true) => write!(f, " CYCLE")?,
                SequenceOption::Cycle(false) => write!(f, " NO CYCLE")?,
                SequenceOption::OwnedBy(None) => write!(f, " OWNED BY NONE")?,
                SequenceOption::OwnedBy(Some((t, c))) => write!(f, " OWNED BY {}.{}", q(t), q(c))?,
            }
        }
        Ok(())
    }
}

fn word(t: Option<&TokenWithSpan>) -> Option<String> {
    match t.map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn name_of(t: Option<&TokenWithSpan>) -> Option<String> {
    match t.map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_some() => Some(w.value.clone()),
        Some(Token::Word(w)) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn syntax(near: Option<&TokenWithSpan>) -> Error {
    match near {
        Some(t) => Error::Syntax(format!("syntax error at or near \"{}\"", t.token)),
        None => Error::Syntax("syntax error at end of input".into()),
    }
}

/// Reads a CREATE [TEMPORARY] SEQUENCE or ALTER SEQUENCE from its tokens (no whitespace,
/// no comments); `None` when the statement is neither.
pub(crate) fn parse(tokens: &[TokenWithSpan]) -> Option<Result<SequenceStatement>> {
    let w = |i: usize| word(tokens.get(i));
    let (alter, temporary, at) = match (w(0)?.as_str(), w(1).as_deref(), w(2).as_deref()) {
        ("create", Some("sequence"), _) => (false, false, 2),
        ("create", Some("temp" | "temporary"), Some("sequence")) => (false, true, 3),
        ("alter", Some("sequence"), _) => (true, false, 2),
        _ => return None,
    };
    Some(Reader { tokens, i: at }.statement(alter, temporary))
}

struct Reader<'a> {
    tokens: &'a [TokenWithSpan],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<String> {
        word(self.tokens.get(self.i))
    }

    fn eat(&mut self, w: &str) -> bool {
        if self.peek().as_deref() == Some(w) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, w: &str) -> Result<()> {
        if self.eat(w) {
            Ok(())
        } else {
            Err(syntax(self.tokens.get(self.i)))
        }
    }

    /// A dotted name's parts.
    fn name(&mut self) -> Result<Vec<String>> {
        let mut parts =
            vec![name_of(self.tokens.get(self.i)).ok_or_else(|| syntax(self.tokens.get(self.i)))?];
        self.i += 1;
        while self.tokens.get(self.i).map(|t| &t.token) == Some(&Token::Period) {
            self.i += 1;
            parts.push(
                name_of(self.tokens.get(self.i)).ok_or_else(|| syntax(self.tokens.get(self.i)))?,
            );
            self.i += 1;
        }
        Ok(parts)
    }

    fn number(&mut self) -> Result<i64> {
        let negative = match self.tokens.get(self.i).map(|t| &t.token) {
            Some(Token::Minus) => {
                self.i += 1;
                true
            }
            Some(Token::Plus) => {
                self.i += 1;
                false
            }
            _ => false,
        };
        let Some(Token::Number(n, _)) = self.tokens.get(self.i).map(|t| &t.token) else {
            return Err(syntax(self.tokens.get(self.i)));
        };
        self.i += 1;
        let text = if negative { format!("-{n}") } else { n.clone() };
        text.parse::<i64>().map_err(|_| {
            Error::Coded(
                "22003",
                format!("value \"{text}\" is out of range for type bigint"),
            )
        })
    }

    fn number_follows(&self) -> bool {
        matches!(
            self.tokens.get(self.i).map(|t| &t.token),
            Some(Token::Number(..) | Token::Minus | Token::Plus)
        )
    }

    fn statement(mut self, alter: bool, temporary: bool) -> Result<SequenceStatement> {
        let if_exists = if alter {
            self.eat("if") && {
                self.expect("exists")?;
                true
            }
        } else if self.eat("if") {
            self.expect("not")?;
            self.expect("exists")?;
            true
        } else {
            false
        };
        let parts = self.name()?;
        if parts.len() > 1 && !matches!(parts[0].as_str(), "public") {
            return Err(Error::Coded(
                "3F000",
                format!("schema \"{}\" does not exist", parts[0]),
            ));
        }
        let name = parts.last().cloned().unwrap_or_default();
        let mut options = Vec::new();
        while self.i < self.tokens.len() {
            let Some(w) = self.peek() else {
                return Err(syntax(self.tokens.get(self.i)));
            };
            self.i += 1;
            let o = match w.as_str() {
                "as" => {
                    let t = self.peek().ok_or_else(|| syntax(self.tokens.get(self.i)))?;
                    self.i += 1;
                    SequenceOption::As(t)
                }
                "increment" => {
                    self.eat("by");
                    SequenceOption::Increment(self.number()?)
                }
                "minvalue" => SequenceOption::Min(Some(self.number()?)),
                "maxvalue" => SequenceOption::Max(Some(self.number()?)),
                "no" => match self.peek().as_deref() {
                    Some("minvalue") => {
                        self.i += 1;
                        SequenceOption::Min(None)
                    }
                    Some("maxvalue") => {
                        self.i += 1;
                        SequenceOption::Max(None)
                    }
                    Some("cycle") => {
                        self.i += 1;
                        SequenceOption::Cycle(false)
                    }
                    _ => return Err(syntax(self.tokens.get(self.i))),
                },
                "start" => {
                    self.eat("with");
                    SequenceOption::Start(self.number()?)
                }
                "restart" if alter => {
                    let with = self.eat("with");
                    if with || self.number_follows() {
                        SequenceOption::Restart(Some(self.number()?))
                    } else {
                        SequenceOption::Restart(None)
                    }
                }
                "cache" => SequenceOption::Cache(self.number()?),
                "cycle" => SequenceOption::Cycle(true),
                "owned" => {
                    self.expect("by")?;
                    let parts = self.name()?;
                    match parts.as_slice() {
                        [none] if none == "none" => SequenceOption::OwnedBy(None),
                        [.., table, column] => {
                            SequenceOption::OwnedBy(Some((table.clone(), column.clone())))
                        }
                        _ => {
                            return Err(Error::Syntax(
                                "invalid OWNED BY option: specify OWNED BY table.column or OWNED BY NONE".into(),
                            ))
                        }
                    }
                }
                "rename" | "owner" | "set" if alter => {
                    return Err(Error::Unsupported(format!(
                        "ALTER SEQUENCE … {}",
                        w.to_ascii_uppercase()
                    )))
                }
                _ => return Err(syntax(self.tokens.get(self.i - 1))),
            };
            options.push(o);
        }
        Ok(SequenceStatement {
            alter,
            temporary,
            if_exists,
            name,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn read(sql: &str) -> Option<Result<SequenceStatement>> {
        let tokens: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .unwrap()
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
            .collect();
        parse(&tokens)
    }

    #[test]
    fn options_come_in_any_order() {
        let s = read("CREATE SEQUENCE IF NOT EXISTS public.\"S\" START 5 INCREMENT BY -2 OWNED BY t.c AS integer NO MAXVALUE CYCLE")
            .unwrap()
            .unwrap();
        assert!(!s.alter && s.if_exists);
        assert_eq!(s.name, "S");
        assert_eq!(
            s.options,
            [
                SequenceOption::Start(5),
                SequenceOption::Increment(-2),
                SequenceOption::OwnedBy(Some(("t".into(), "c".into()))),
                SequenceOption::As("integer".into()),
                SequenceOption::Max(None),
                SequenceOption::Cycle(true),
            ]
        );
        let s = read("alter sequence s restart").unwrap().unwrap();
        assert_eq!(s.options, [SequenceOption::Restart(None)]);
        let s = read("alter sequence if exists s restart with 7 no cycle owned by none")
            .unwrap()
            .unwrap();
        assert!(s.alter && s.if_exists);
        assert_eq!(
            s.options,
            [
                SequenceOption::Restart(Some(7)),
                SequenceOption::Cycle(false),
                SequenceOption::OwnedBy(None)
            ]
        );
        // The text the schema log ships reads back as the same statement.
        for sql in [
            "CREATE SEQUENCE IF NOT EXISTS \"S q\" START 5 INCREMENT BY -2 OWNED BY t.c AS integer NO MAXVALUE CYCLE CACHE 3 MINVALUE -9",
            "alter sequence if exists s restart with -7 no cycle owned by none no minvalue maxvalue 5",
            "create temp sequence s",
        ] {
            let s = read(sql).unwrap().unwrap();
            assert_eq!(read(&s.to_string()).unwrap().unwrap(), s, "{s}");
        }
        assert!(read("create table t (a int)").is_none());
        assert!(read("create sequence s increment").unwrap().is_err());
        assert!(read("create sequence s restart 1").unwrap().is_err());
        assert!(read("alter sequence s rename to q").unwrap().is_err());
    }
}
