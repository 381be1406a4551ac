//! JSON text read as PostgreSQL reads it, keeping what serde_json's `Value` drops: each
//! number's own text (jsonb keeps numbers as exact numeric), object members in their
//! order with duplicates (json keeps them; jsonb then sorts and keeps the last), and each
//! value's span in the input (json's `->` returns the input's own text, spaces included).

use super::error::JsonError;

/// A parsed JSON value and where it lies in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Byte range in the input.
    pub span: (usize, usize),
}

/// The kinds of JSON values.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object: members in input order, duplicates kept.
    Object(Vec<(String, Node)>),
}

/// Parses one JSON value (surrounding whitespace allowed), as PostgreSQL's json input does.
pub fn parse(text: &str) -> Result<Node, JsonError> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.bad());
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

// PostgreSQL's stack-depth limit stops deep nesting with an error; so does this.
const MAX_DEPTH: usize = 6400;

impl Parser<'_> {
    fn bad(&self) -> JsonError {
        JsonError::syntax("invalid input syntax for type json")
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Node, JsonError> {
        let start = self.i;
        let kind = match self.b.get(self.i) {
            Some(b'{') => self.object()?,
            Some(b'[') => self.array()?,
            Some(b'"') => Kind::String(self.string()?),
            Some(b't') => self.word("true", Kind::Bool(true))?,
            Some(b'f') => self.word("false", Kind::Bool(false))?,
            Some(b'n') => self.word("null", Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.bad()),
        };
        Ok(Node {
            kind,
            span: (start, self.i),
        })
    }

    fn word(&mut self, w: &str, k: Kind) -> Result<Kind, JsonError> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            // `truex` is not `true` followed by garbage PostgreSQL would name separately.
            if self
                .b
                .get(self.i)
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                return Err(self.bad());
            }
            Ok(k)
        } else {
            Err(self.bad())
        }
    }

    fn number(&mut self) -> Result<Kind, JsonError> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.i < p.b.len() && p.b[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - s
        };
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.bad()),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.bad());
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.bad());
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.bad())?;
        Ok(Kind::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.b.get(self.i..self.i + 4).ok_or_else(|| self.bad())?;
        let s = std::str::from_utf8(h).map_err(|_| self.bad())?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.bad())?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or_else(|| self.bad())?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or_else(|| self.bad())?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(JsonError::unicode(
                                        "Unicode low surrogate must follow a high surrogate.",
                                    ));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::unicode(
                                        "Unicode low surrogate must follow a high surrogate.",
                                    ));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(JsonError::unicode(
                                    "Unicode low surrogate must follow a high surrogate.",
                                ));
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or_else(|| self.bad())?
                        }
                        _ => return Err(self.bad()),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.bad()),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.bad())
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JsonError::new("54001", "stack depth limit exceeded"));
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Kind, JsonError> {
        self.enter()?;
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                items.push(self.value()?);
                self.ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b']') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.bad()),
                }
            }
        }
        self.depth -= 1;
        Ok(Kind::Array(items))
    }

    fn object(&mut self) -> Result<Kind, JsonError> {
        self.enter()?;
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.b.get(self.i) != Some(&b'"') {
                    return Err(self.bad());
                }
                let k = self.string()?;
                self.ws();
                if self.b.get(self.i) != Some(&b':') {
                    return Err(self.bad());
                }
                self.i += 1;
                self.ws();
                let v = self.value()?;
                members.push((k, v));
                self.ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.bad()),
                }
            }
        }
        self.depth -= 1;
        Ok(Kind::Object(members))
    }
}
