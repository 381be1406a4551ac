//! The PostgreSQL wire protocol frontend, on `pgwire`.
//!
//! pgwire does the framing, startup, SCRAM, TLS negotiation, the statement and portal stores
//! and the skip-to-Sync rule after an error. This module maps its hooks onto [`Session`]:
//! simple queries and Execute are taken over whole (their transaction status comes from the
//! session, not from pgwire's guess), Describe answers from the schema, and COPY data is
//! streamed into the session.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use futures::stream;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldFormat,
    QueryResponse, Response,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireConnectionState, PgWireServerHandlers, Type,
    DEFAULT_NAME, METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, NoticeResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::Mutex;

mod auth;

use crate::config::Config;
use crate::errors::SqlError;
use crate::replication::Replication;
use crate::session::{Outcome, Params, Prepared, Session, TxStatus};
use crate::store::{SessionIdent, Store};
pub use auth::ServerParams;
use auth::Startup;

/// The session of one connection, kept in pgwire's per-connection extensions.
#[derive(Clone)]
struct SessionSlot(Arc<Mutex<Session>>);

fn tx_status(s: TxStatus) -> TransactionStatus {
    match s {
        TxStatus::Idle => TransactionStatus::Idle,
        TxStatus::InBlock => TransactionStatus::Transaction,
        TxStatus::Failed => TransactionStatus::Error,
    }
}

/// All of mdbc's protocol handlers.
#[derive(Clone)]
pub struct Handlers {
    store: Arc<Store>,
    // This site's cluster, if it is in one.
    repl: Option<Arc<Replication>>,
    startup: Arc<Startup>,
    parser: Arc<Parser>,
}

impl Handlers {
    /// Builds the handlers; `tls_cert_pem` enables SCRAM channel binding.
    pub fn new(
        store: Arc<Store>,
        repl: Option<Arc<Replication>>,
        cfg: &Config,
        tls_cert_pem: Option<&[u8]>,
    ) -> anyhow::Result<Arc<Handlers>> {
        let startup = Startup::new(cfg, tls_cert_pem);
        let repl_for_parser = repl.clone();
        Ok(Arc::new(Handlers {
            store: store.clone(),
            repl,
            startup: Arc::new(startup),
            parser: Arc::new(Parser {
                store,
                repl: repl_for_parser,
            }),
        }))
    }
}

fn session_of<C: ClientInfo>(
    store: &Arc<Store>,
    repl: &Option<Arc<Replication>>,
    client: &C,
) -> PgWireResult<Arc<Mutex<Session>>> {
    if let Some(slot) = client.session_extensions().get::<SessionSlot>() {
        return Ok(slot.0.clone());
    }
    let (pid, key) = client.pid_and_secret_key();
    let meta = client.metadata();
    let user = meta
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_else(|| "mdbc".into());
    let database = meta
        .get(METADATA_DATABASE)
        .cloned()
        .unwrap_or_else(|| user.clone());
    let ident = SessionIdent {
        pid,
        user,
        database,
    };
    let mut session =
        Session::new(store.clone(), repl.clone(), ident).map_err(SqlError::into_pgwire)?;
    if let Some(app) = meta.get(METADATA_APPLICATION_NAME) {
        session.set_startup_setting("application_name", app);
    }
    for (name, value) in auth::startup_settings(meta) {
        session.set_startup_setting(&name, &value);
    }
    store.set_cancel_key(pid, key.to_bytes().to_vec());
    let taken = session.snapshot_signal();
    let slot = SessionSlot(Arc::new(Mutex::new(session)));
    client.session_extensions().insert(slot.clone());
    spawn_snapshot_janitor(store, Arc::downgrade(&slot.0), taken);
    Ok(slot.0)
}

/// A session may keep a read snapshot open between queries (see store.rs). An idle client
/// must not pin it after a write: SQLite could not checkpoint past it and the WAL would
/// grow. This task, on the connection's own runtime, waits while the session holds a
/// snapshot and ends it at the first write that makes it stale; it only wakes for sessions
/// that hold one.
fn spawn_snapshot_janitor(
    store: &Arc<Store>,
    session: std::sync::Weak<Mutex<Session>>,
    taken: Arc<tokio::sync::Notify>,
) {
    let mut epochs = store.watch_write_epoch();
    tokio::spawn(async move {
        loop {
            taken.notified().await;
            loop {
                if epochs.changed().await.is_err() {
                    return;
                }
                let Some(s) = session.upgrade() else { return };
                if s.lock().await.end_stale_snapshot() {
                    break;
                }
            }
        }
    });
}

/// A warning about the statement just run (see `Session::take_warning`), if any.
async fn send_warning<C>(client: &mut C, w: Option<(&'static str, String)>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some((code, msg)) = w {
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                ErrorInfo::new("WARNING".into(), code.into(), msg),
            )))
            .await?;
    }
    Ok(())
}

async fn send_outcome<C>(client: &mut C, outcome: Outcome, describe: bool) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match outcome {
        Outcome::Rows { columns, rows, tag } => {
            if describe {
                let fields = columns
                    .iter()
                    .map(|c| (&c.field(FieldFormat::Text)).into())
                    .collect();
                client
                    .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
                        fields,
                    )))
                    .await?;
            }
            for r in rows {
                client.feed(PgWireBackendMessage::DataRow(r)).await?;
            }
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )))
                .await?;
        }
        Outcome::Done { tag, notice } => {
            if let Some((code, msg)) = notice {
                client
                    .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                        ErrorInfo::new("WARNING".into(), code.into(), msg),
                    )))
                    .await?;
            }
            if tag.is_empty() {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            } else {
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )))
                    .await?;
            }
        }
        Outcome::CopyIn { columns, .. } => {
            client
                .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                    0,
                    columns as i16,
                    vec![0; columns],
                )))
                .await?;
        }
        Outcome::CopyOut { columns, data } => {
            client
                .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                    0,
                    columns as i16,
                    vec![0; columns],
                )))
                .await?;
            let n = data.len();
            for d in data {
                client
                    .feed(PgWireBackendMessage::CopyData(CopyData::new(d)))
                    .await?;
            }
            client
                .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
                .await?;
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    format!("COPY {n}"),
                )))
                .await?;
        }
    }
    Ok(())
}

fn no_params(_: usize) -> bool {
    false
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let session = session_of(&self.store, &self.repl, client)?;
        let mut s = session.lock().await;
        let stmts = s.parse_simple(&query.query);
        match stmts {
            Err(e) => {
                s.mark_failed();
                client
                    .feed(PgWireBackendMessage::ErrorResponse(
                        e.to_error_info().into(),
                    ))
                    .await?;
            }
            Ok(q) if q.stmts.is_empty() => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Ok(q) => {
                let params = q.params();
                // Several statements in one string run in one implicit transaction block,
                // as in PostgreSQL (a COPY among them keeps each on its own: its data
                // arrives after this handler returns).
                let implicit = q.stmts.len() > 1 && !q.stmts.iter().any(|p| p.is_copy());
                for p in q.stmts.iter() {
                    if implicit {
                        if let Err(e) = s.begin_implicit().await {
                            client
                                .feed(PgWireBackendMessage::ErrorResponse(
                                    e.to_error_info().into(),
                                ))
                                .await?;
                            break;
                        }
                    }
                    let result = s.execute(p, &params, &no_params).await;
                    send_warning(client, s.take_warning()).await?;
                    match result {
                        Ok(Outcome::CopyIn { columns, csv }) => {
                            send_outcome(client, Outcome::CopyIn { columns, csv }, true).await?;
                            client.set_transaction_status(tx_status(s.status()));
                            client.set_state(PgWireConnectionState::CopyInProgress(false));
                            return Ok(());
                        }
                        Ok(outcome) => send_outcome(client, outcome, true).await?,
                        Err(e) => {
                            client
                                .feed(PgWireBackendMessage::ErrorResponse(
                                    e.to_error_info().into(),
                                ))
                                .await?;
                            break;
                        }
                    }
                }
                if let Err(e) = s.end_implicit().await {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(
                            e.to_error_info().into(),
                        ))
                        .await?;
                }
            }
        }
        let status = tx_status(s.status());
        drop(s);
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // on_query is overridden and never calls this.
        Err(SqlError::Protocol("simple query dispatched twice".into()).into_pgwire())
    }
}

/// Parses statements for the extended protocol.
pub struct Parser {
    store: Arc<Store>,
    repl: Option<Arc<Replication>>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let oids = types
            .iter()
            .map(|t| t.as_ref().map(|t| t.oid()).unwrap_or(0))
            .collect();
        let prepared = Prepared::parse(sql, oids).map_err(SqlError::into_pgwire)?;
        // Plan now so errors such as unsupported syntax surface at Parse, as in PostgreSQL.
        let session = session_of(&self.store, &self.repl, client)?;
        session
            .lock()
            .await
            .plan(&prepared)
            .map_err(SqlError::into_pgwire)?;
        Ok(Some(Arc::new(prepared)))
    }

    fn get_parameter_types(&self, _stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        _stmt: &Self::Statement,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        Ok(Vec::new())
    }
}

fn to_type(t: sql_capture::PgType) -> Type {
    Type::from_oid(t.oid()).unwrap_or(Type::TEXT)
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = Arc<Prepared>;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    // Parse and Bind are answered with `feed`, not `send`: PostgreSQL flushes only at Sync
    // or Flush, and a write per message would triple the syscalls of every extended query.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        match StoredStatement::parse(client, &message, self.parser.clone()).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(SqlError::Protocol(format!(
                        "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                        message.parameters.len()
                    ))
                    .into_pgwire());
                }
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (params, fields) = if message.target_type == b'S' {
            match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let r = self.do_describe_statement(client, &stmt).await?;
                    let params: Vec<u32> = r
                        .parameters()
                        .unwrap_or_default()
                        .iter()
                        .map(|t| t.oid())
                        .collect();
                    (Some(params), (!r.is_no_data()).then(|| r.fields().to_vec()))
                }
                Some(Entry::Empty) => (Some(Vec::new()), None),
                None => return Err(PgWireError::StatementNotFound(name.to_owned())),
            }
        } else {
            match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    let r = self.do_describe_portal(client, &portal).await?;
                    (None, (!r.is_no_data()).then(|| r.fields().to_vec()))
                }
                Some(Entry::Empty) => (None, None),
                None => return Err(PgWireError::PortalNotFound(name.to_owned())),
            }
        };
        // Fed, not sent: the client's Sync or Flush decides when bytes go out.
        if let Some(oids) = params {
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(oids),
                ))
                .await?;
        }
        match fields {
            Some(f) => {
                let desc = f.iter().map(|fi| fi.into()).collect();
                client
                    .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
                        desc,
                    )))
                    .await?
            }
            None => {
                client
                    .feed(PgWireBackendMessage::NoData(NoData::new()))
                    .await?
            }
        }
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(portal_name) {
            Some(Entry::Value(p)) => p,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(portal_name.to_owned())),
        };
        let session = session_of(&self.store, &self.repl, client)?;
        let initial = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        if initial {
            client.set_state(PgWireConnectionState::QueryInProgress);
            let mut s = session.lock().await;
            let binary_param = |i: usize| portal.parameter_format.is_binary(i);
            let binary_result = |i: usize| portal.result_column_format.is_binary(i);
            let params = Params {
                values: &portal.parameters,
                binary: &binary_param,
                ..Params::none()
            };
            let result = s
                .execute(&portal.statement.statement, &params, &binary_result)
                .await;
            let warning = s.take_warning();
            let status = tx_status(s.status());
            drop(s);
            client.set_transaction_status(status);
            client.set_state(PgWireConnectionState::ReadyForQuery);
            send_warning(client, warning).await?;
            match result {
                Err(e) => return Err(e.into_pgwire()),
                Ok(Outcome::Rows { columns, rows, tag }) => {
                    let fields = Arc::new(
                        columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| c.field(portal.result_column_format.format_for(i)))
                            .collect::<Vec<_>>(),
                    );
                    // pgwire appends the count of rows sent by each Execute to this prefix.
                    let prefix = tag
                        .rsplit_once(' ')
                        .map(|(p, _)| p.to_string())
                        .unwrap_or(tag);
                    let mut resp =
                        QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)));
                    resp.set_command_tag(&prefix);
                    portal.start(resp).await;
                }
                Ok(Outcome::CopyIn { columns, csv }) => {
                    send_outcome(client, Outcome::CopyIn { columns, csv }, false).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    return Ok(());
                }
                Ok(other) => {
                    send_outcome(client, other, false).await?;
                    return Ok(());
                }
            }
        }
        let fetched = portal.fetch(message.max_rows as usize).await?;
        let mut response = fetched.response;
        let prefix = response.command_tag().to_owned();
        let mut n = 0usize;
        while let Some(row) = futures::StreamExt::next(response.data_rows()).await {
            client.feed(PgWireBackendMessage::DataRow(row?)).await?;
            n += 1;
        }
        if fetched.suspended {
            client
                .feed(PgWireBackendMessage::PortalSuspended(
                    pgwire::messages::extendedquery::PortalSuspended::new(),
                ))
                .await?;
        } else {
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    format!("{prefix} {n}"),
                )))
                .await?;
        }
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.store, &self.repl, client)?;
        let s = session.lock().await;
        let params = s
            .param_types(&target.statement)
            .map_err(SqlError::into_pgwire)?
            .into_iter()
            .map(to_type)
            .collect();
        let fields = s
            .describe(&target.statement)
            .map_err(SqlError::into_pgwire)?
            .map(|cols| cols.iter().map(|c| c.field(FieldFormat::Text)).collect())
            .unwrap_or_default();
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.store, &self.repl, client)?;
        let s = session.lock().await;
        match s
            .describe(&target.statement.statement)
            .map_err(SqlError::into_pgwire)?
        {
            Some(cols) => Ok(DescribePortalResponse::new(
                cols.iter()
                    .enumerate()
                    .map(|(i, c)| c.field(target.result_column_format.format_for(i)))
                    .collect(),
            )),
            None => Ok(DescribePortalResponse::no_data()),
        }
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // on_execute is overridden and never calls this.
        Err(SqlError::Protocol("execute dispatched twice".into()).into_pgwire())
    }
}

#[async_trait]
impl CopyHandler for Handlers {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.store, &self.repl, client)?;
        session.lock().await.copy_data(&data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.store, &self.repl, client)?;
        let mut s = session.lock().await;
        let result = s.copy_done().await;
        let warning = s.take_warning();
        client.set_transaction_status(tx_status(s.status()));
        drop(s);
        send_warning(client, warning).await?;
        let tag = result.map_err(SqlError::into_pgwire)?;
        client
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match session_of(&self.store, &self.repl, client) {
            Ok(session) => {
                let mut s = session.lock().await;
                let e = s.copy_fail(&fail.message).await;
                client.set_transaction_status(tx_status(s.status()));
                e.into_pgwire()
            }
            Err(e) => e,
        }
    }
}

#[async_trait]
impl CancelHandler for Handlers {
    async fn on_cancel_request(&self, req: CancelRequest) {
        let found = self.store.cancel(req.pid, &req.secret_key.to_bytes());
        tracing::info!(pid = req.pid, found, "cancel request");
    }
}

impl ErrorHandler for Handlers {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(peer = %client.socket_addr(), "error sent to client: {error}");
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.clone())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.clone())
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(self.clone())
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(self.clone())
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(self.clone())
    }
}
