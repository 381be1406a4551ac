//! What a session reports: its transaction status, result columns, and what each
//! statement produced.

use std::sync::Arc;

use bytes::Bytes;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::DataRow;
use sql_capture::PgType;

/// Transaction state as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// 'I'
    Idle,
    /// 'T'
    InBlock,
    /// 'E'
    Failed,
}

/// A result column: name, PostgreSQL type, typmod.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: PgType,
    /// Type modifier.
    pub typmod: i32,
}

impl Column {
    /// pgwire's field description in `format`.
    pub fn field(&self, format: FieldFormat) -> FieldInfo {
        let ty = Type::from_oid(self.ty.oid()).unwrap_or(Type::TEXT);
        FieldInfo::new(self.name.clone(), None, None, ty, format).with_type_modifier(self.typmod)
    }
}

/// What one statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows, already encoded, with their description and completion tag.
    Rows {
        /// Columns.
        columns: Arc<Vec<Column>>,
        /// Encoded rows.
        rows: Vec<DataRow>,
        /// Completion tag ("SELECT 3", "INSERT 0 1", …).
        tag: String,
    },
    /// A statement without rows.
    Done {
        /// Completion tag.
        tag: String,
        /// A notice to send before the tag (e.g. "there is already a transaction in
        /// progress").
        notice: Option<(&'static str, String)>,
    },
    /// COPY FROM STDIN started: the client sends data next.
    CopyIn {
        /// Number of columns.
        columns: usize,
        /// Text (0) format.
        csv: bool,
    },
    /// COPY TO STDOUT: the data rows.
    CopyOut {
        /// Number of columns.
        columns: usize,
        /// One message per row.
        data: Vec<Bytes>,
    },
}

impl Outcome {
    /// A statement without rows, completing with `tag`.
    pub fn done(tag: impl Into<String>) -> Self {
        Outcome::Done {
            tag: tag.into(),
            notice: None,
        }
    }
}
