//! COPY: its text and CSV formats (splitting lines into fields, writing rows out), the
//! rows of a COPY FROM STDIN inserted as their lines arrive, and COPY TO STDOUT.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use sql_capture::{quote_ident, Catalog, ColumnInfo, CopyFormat, CopyPlan, PgType, TableDef};

use super::outcome::Outcome;
use crate::datetime::DateCtx;
use crate::errors::SqlError;
use crate::values;

/// Position of the newline ending the first complete line of `buf`, if there is one.
/// In CSV a newline inside quotes belongs to the field.
pub fn find_line_end(buf: &[u8], plan: &CopyPlan) -> Option<usize> {
    match plan.format {
        CopyFormat::Text => buf.iter().position(|&b| b == b'\n'),
        CopyFormat::Csv => {
            let quote = plan.quote as u8;
            let mut in_quotes = false;
            for (i, &b) in buf.iter().enumerate() {
                if b == quote {
                    in_quotes = !in_quotes;
                } else if b == b'\n' && !in_quotes {
                    return Some(i);
                }
            }
            None
        }
    }
}

/// Splits one line into fields; `None` is SQL NULL.
pub fn split_fields(
    line: &[u8],
    plan: &CopyPlan,
    columns: &[ColumnInfo],
) -> Result<Vec<Option<String>>, SqlError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| SqlError::coded("22021", "invalid byte sequence for encoding \"UTF8\""))?;
    match plan.format {
        CopyFormat::Text => Ok(text
            .split(plan.delimiter)
            .map(|f| {
                if f == plan.null {
                    Ok(None)
                } else {
                    unescape_text(f).map(Some)
                }
            })
            .collect::<Result<_, _>>()?),
        CopyFormat::Csv => split_csv(text, plan, columns),
    }
}

fn unescape_text(f: &str) -> Result<String, SqlError> {
    if !f.contains('\\') {
        return Ok(f.to_string());
    }
    let mut out = String::with_capacity(f.len());
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(n) => {
                            v = v * 8 + n;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {
                return Err(SqlError::coded(
                    "22P04",
                    "end-of-copy marker corrupt: line ends with a backslash",
                ))
            }
        }
    }
    Ok(out)
}

fn split_csv(
    text: &str,
    plan: &CopyPlan,
    columns: &[ColumnInfo],
) -> Result<Vec<Option<String>>, SqlError> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    let field = |s: String, q: bool, fields: &mut Vec<Option<String>>| {
        let name = columns.get(fields.len()).map(|c| c.name.as_str());
        fields.push(csv_field(s, q, name, plan));
    };
    while let Some(c) = chars.next() {
        if quoted {
            // Inside quotes the escape character makes the next quote or escape literal
            // (with the default escape, the quote itself, that is a doubled quote).
            if c == plan.escape
                && chars
                    .peek()
                    .is_some_and(|&n| n == plan.quote || n == plan.escape)
            {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else if c == plan.quote {
                quoted = false;
            } else {
                cur.push(c);
            }
        } else if c == plan.quote {
            quoted = true;
            was_quoted = true;
        } else if c == plan.delimiter {
            field(std::mem::take(&mut cur), was_quoted, &mut fields);
            was_quoted = false;
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err(SqlError::coded("22P04", "unterminated CSV quoted field"));
    }
    field(cur, was_quoted, &mut fields);
    Ok(fields)
}

/// An unquoted field equal to the NULL string is NULL unless its column is FORCE_NOT_NULL;
/// a quoted one is a value unless its column is FORCE_NULL (a column may be both: each
/// rule then applies to its own kind of field, as in PostgreSQL).
fn csv_field(s: String, quoted: bool, column: Option<&str>, plan: &CopyPlan) -> Option<String> {
    let named = |list: &[String]| column.is_some_and(|c| list.iter().any(|n| n == c));
    let null = s == plan.null
        && if quoted {
            named(&plan.force_null)
        } else {
            !named(&plan.force_not_null)
        };
    if null {
        None
    } else {
        Some(s)
    }
}

/// Writes one field of a COPY TO row.
pub fn encode_field(
    v: ValueRef<'_>,
    col: &ColumnInfo,
    sole_column: bool,
    plan: &CopyPlan,
    zone: &DateCtx,
    out: &mut BytesMut,
) {
    if v == ValueRef::Null {
        out.put_slice(plan.null.as_bytes());
        return;
    }
    let mut raw = BytesMut::new();
    values::encode_text_in(v, col.ty, col.typmod, zone, &mut raw);
    let s = String::from_utf8_lossy(&raw);
    match plan.format {
        CopyFormat::Text => {
            for c in s.chars() {
                match c {
                    '\\' => out.put_slice(b"\\\\"),
                    '\n' => out.put_slice(b"\\n"),
                    '\r' => out.put_slice(b"\\r"),
                    '\t' => out.put_slice(b"\\t"),
                    c if c == plan.delimiter => {
                        out.put_u8(b'\\');
                        let mut b = [0u8; 4];
                        out.put_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                    c => {
                        let mut b = [0u8; 4];
                        out.put_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
        }
        CopyFormat::Csv => {
            let forced = plan
                .force_quote
                .as_ref()
                .is_some_and(|cols| cols.is_empty() || cols.contains(&col.name));
            // PostgreSQL also quotes `\.` as a row's only field, which a reader would take
            // for the end of the data.
            let needs_quotes = forced
                || s.contains(plan.delimiter)
                || s.contains(plan.quote)
                || s.contains('\n')
                || s.contains('\r')
                || s == plan.null
                || (sole_column && s == "\\.");
            if needs_quotes {
                let mut b = [0u8; 4];
                out.put_slice(plan.quote.encode_utf8(&mut b).as_bytes());
                for c in s.chars() {
                    if c == plan.quote || c == plan.escape {
                        out.put_slice(plan.escape.encode_utf8(&mut b).as_bytes());
                    }
                    out.put_slice(c.encode_utf8(&mut b).as_bytes());
                }
                out.put_slice(plan.quote.encode_utf8(&mut b).as_bytes());
            } else {
                out.put_slice(s.as_bytes());
            }
        }
    }
}

/// COPY FROM STDIN in progress: the rows are inserted as their lines arrive; an error is
/// kept until CopyDone, as the client is still sending.
pub struct CopyIn {
    plan: CopyPlan,
    columns: Vec<ColumnInfo>,
    insert_sql: String,
    buf: Vec<u8>,
    rows: u64,
    error: Option<SqlError>,
    /// Outside a transaction block: COPY is a transaction of its own.
    pub own_transaction: bool,
    header_pending: bool,
    ended: bool,
    // The session's TimeZone: a timestamptz without an offset is read there.
    zone: DateCtx,
}

/// The columns `plan` names (all of the table's when it names none), and their list
/// quoted for SQLite.
fn columns_of(
    plan: &CopyPlan,
    catalog: &Catalog,
) -> Result<(Arc<TableDef>, Vec<ColumnInfo>), SqlError> {
    let def = catalog
        .table(&plan.table)
        .cloned()
        .ok_or_else(|| SqlError::from(sql_capture::Error::UndefinedTable(plan.table.clone())))?;
    let columns: Vec<ColumnInfo> = if plan.columns.is_empty() {
        def.columns.clone()
    } else {
        plan.columns
            .iter()
            .filter_map(|c| def.column(c).cloned())
            .collect()
    };
    Ok((def, columns))
}

fn column_list(columns: &[ColumnInfo]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl CopyIn {
    /// Prepares COPY `plan` FROM STDIN into a table of `catalog`.
    pub fn start(
        plan: &CopyPlan,
        catalog: &Catalog,
        own_transaction: bool,
        zone: DateCtx,
    ) -> Result<CopyIn, SqlError> {
        let (def, columns) = columns_of(plan, catalog)?;
        let mut col_list = column_list(&columns);
        let mut placeholders = (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Serial columns COPY leaves out come from their sequences (SQLite would allocate
        // an INTEGER PRIMARY KEY itself; see sql_capture's INSERT rewrite).
        for c in def.columns.iter().filter(|c| c.serial) {
            if !columns.iter().any(|k| k.name == c.name) {
                col_list.push_str(&format!(", {}", quote_ident(&c.name)));
                placeholders.push_str(&format!(
                    ", pg_nextval('{}')",
                    format!("{}_{}_seq", def.name, c.name).replace('\'', "''")
                ));
            }
        }
        let insert_sql = format!(
            "INSERT INTO {} ({col_list}) VALUES ({placeholders})",
            quote_ident(&plan.table)
        );
        Ok(CopyIn {
            plan: plan.clone(),
            columns,
            insert_sql,
            buf: Vec::new(),
            rows: 0,
            error: None,
            own_transaction,
            header_pending: plan.header,
            ended: false,
            zone,
        })
    }

    /// What the client is told to send: the number of columns, and whether as CSV.
    pub fn response(&self) -> (usize, bool) {
        (self.columns.len(), self.plan.format == CopyFormat::Csv)
    }

    /// Feeds COPY data, inserting every complete line on `conn`.
    pub fn feed(&mut self, conn: &Connection, data: &[u8]) {
        if self.error.is_none() && !self.ended {
            self.buf.extend_from_slice(data);
            if let Err(e) = self.insert_lines(conn, false) {
                self.error = Some(e);
            }
        }
    }

    /// CopyDone: inserts what is left and reports the row count, or the first error.
    pub fn finish(&mut self, conn: &Connection) -> Result<String, SqlError> {
        if self.error.is_none() {
            if let Err(e) = self.insert_lines(conn, true) {
                self.error = Some(e);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(format!("COPY {}", self.rows)),
        }
    }

    fn insert_lines(&mut self, conn: &Connection, at_end: bool) -> Result<(), SqlError> {
        let mut stmt = conn.prepare_cached(&self.insert_sql)?;
        let mut start = 0;
        let buf = std::mem::take(&mut self.buf);
        let mut result = Ok(());
        while let Some(end) = find_line_end(&buf[start..], &self.plan) {
            let line = &buf[start..start + end];
            start += end + 1;
            match self.insert_row(&mut stmt, line) {
                Ok(true) => {
                    self.ended = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.buf = buf;
        self.buf.drain(..start);
        result?;
        if at_end && !self.ended && !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.insert_row(&mut stmt, &line)?;
        }
        Ok(())
    }

    /// Inserts one line; true at the end-of-data marker.
    fn insert_row(
        &mut self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        line: &[u8],
    ) -> Result<bool, SqlError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // `\.` alone on a line ends the data, in CSV too (where a quoted `"\."` is data).
        if line == b"\\." {
            return Ok(true);
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(false);
        }
        let fields = split_fields(line, &self.plan, &self.columns)?;
        if fields.len() < self.columns.len() {
            return Err(SqlError::coded(
                "22P04",
                format!(
                    "missing data for column \"{}\" (line {})",
                    self.columns[fields.len()].name,
                    self.rows + 1
                ),
            ));
        }
        if fields.len() > self.columns.len() {
            return Err(SqlError::coded(
                "22P04",
                format!(
                    "extra data after last expected column (line {})",
                    self.rows + 1
                ),
            ));
        }
        for (i, (f, col)) in fields.iter().zip(&self.columns).enumerate() {
            let v = match f {
                None => Value::Null,
                Some(text) => values::from_text_in(text, col.ty, col.typmod, &self.zone).map_err(
                    |mut e| {
                        e.message = format!(
                            "{} (COPY {}, line {}, column {})",
                            e.message,
                            self.plan.table,
                            self.rows + 1,
                            col.name
                        );
                        e
                    },
                )?,
            };
            stmt.raw_bind_parameter(i + 1, v)?;
        }
        stmt.raw_execute()?;
        self.rows += 1;
        Ok(false)
    }
}

/// COPY `plan` TO STDOUT: every row of the table, one message each.
pub fn copy_out(
    conn: &Connection,
    plan: &CopyPlan,
    catalog: &Catalog,
    zone: &DateCtx,
) -> Result<Outcome, SqlError> {
    let (columns, sql) = match &plan.query {
        // COPY (query): its columns typed as translation inferred them (text otherwise).
        Some(q) => (
            q.columns
                .iter()
                .map(|(name, c)| ColumnInfo {
                    typmod: c.typmod,
                    ..ColumnInfo::plain(name, c.ty.unwrap_or(PgType::Text))
                })
                .collect(),
            q.sql.clone(),
        ),
        None => {
            let (_, columns) = columns_of(plan, catalog)?;
            let sql = format!(
                "SELECT {} FROM {}",
                column_list(&columns),
                quote_ident(&plan.table)
            );
            (columns, sql)
        }
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.raw_query();
    let mut data = Vec::new();
    if plan.header && plan.format == CopyFormat::Csv {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        data.push(Bytes::from(format!(
            "{}\n",
            names.join(&plan.delimiter.to_string())
        )));
    }
    while let Some(row) = rows.next()? {
        let mut line = BytesMut::new();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                line.put_slice(plan.delimiter.to_string().as_bytes());
            }
            let v = row.get_ref(i)?;
            encode_field(v, c, columns.len() == 1, plan, zone, &mut line);
        }
        line.put_u8(b'\n');
        data.push(line.freeze());
    }
    Ok(Outcome::CopyOut {
        columns: columns.len(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(format: CopyFormat) -> CopyPlan {
        CopyPlan {
            table: "t".into(),
            columns: vec![],
            from_stdin: true,
            format,
            delimiter: if format == CopyFormat::Csv { ',' } else { '\t' },
            null: if format == CopyFormat::Csv {
                String::new()
            } else {
                "\\N".into()
            },
            header: false,
            quote: '"',
            escape: '"',
            force_quote: None,
            force_not_null: Vec::new(),
            force_null: Vec::new(),
            query: None,
        }
    }

    #[test]
    fn text_fields() {
        let p = plan(CopyFormat::Text);
        let f = split_fields(b"1\ta\\tb\t\\N", &p, &[]).unwrap();
        assert_eq!(f, vec![Some("1".into()), Some("a\tb".into()), None]);
    }

    #[test]
    fn csv_fields_and_lines() {
        let p = plan(CopyFormat::Csv);
        let f = split_fields(b"1,\"a,\"\"b\"\"\",,\"\"", &p, &[]).unwrap();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                Some("a,\"b\"".into()),
                None,
                Some("".into())
            ]
        );
        assert_eq!(find_line_end(b"1,\"x\ny\"\n2", &p), Some(7));
        assert!(split_fields(b"\"open", &p, &[]).is_err());
    }
}
