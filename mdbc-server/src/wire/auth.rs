//! Who may connect: trust for loopback clients when no users are configured, otherwise
//! SCRAM-SHA-256 (with channel binding under TLS); and the parameters every client is
//! told at startup.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::sink::Sink;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    LoginInfo, Password, ServerParameterProvider, StartupHandler,
};
use pgwire::api::{
    ClientInfo, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, METADATA_APPLICATION_NAME,
    METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::config::Config;
use crate::store;

const SCRAM_ITERATIONS: usize = 4096;

/// Parameters reported at startup.
#[derive(Debug)]
pub struct ServerParams;

impl ServerParameterProvider for ServerParams {
    fn server_parameters<C>(&self, client: &C) -> Option<std::collections::HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let meta = client.metadata();
        let user = meta.get(METADATA_USER).cloned().unwrap_or_default();
        let mut p = std::collections::HashMap::new();
        for (k, v) in [
            ("server_version", store::SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("IntervalStyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "on"),
            ("in_hot_standby", "off"),
            ("default_transaction_read_only", "off"),
            ("search_path", "\"$user\", public"),
            ("scram_iterations", "4096"),
        ] {
            p.insert(k.to_string(), v.to_string());
        }
        // A TimeZone asked for at startup is reported as the session will use it.
        for (k, v) in startup_settings(meta) {
            if k == "timezone" {
                if let Some(z) = crate::datetime::Zone::parse_setting(&v) {
                    p.insert("TimeZone".into(), z.name());
                }
            }
        }
        p.insert(
            "application_name".into(),
            meta.get(METADATA_APPLICATION_NAME)
                .cloned()
                .unwrap_or_default(),
        );
        p.insert("session_authorization".into(), user);
        Some(p)
    }
}

/// Users allowed to log in, with SCRAM verifiers computed once at start-up.
#[derive(Debug)]
struct UserDb {
    users: std::collections::HashMap<String, (Vec<u8>, Vec<u8>)>,
}

#[async_trait]
impl AuthSource for UserDb {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.users.get(user) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{user}\""),
            )))),
        }
    }
}

/// Startup without passwords: loopback clients only.
pub(super) struct TrustStartup {
    pids: RandomPidSecretKeyGenerator,
}

#[async_trait]
impl StartupHandler for TrustStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            if !client.socket_addr().ip().is_loopback() {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "28000".into(),
                    format!(
                        "no users are configured, so only loopback clients are trusted; {} was refused",
                        client.socket_addr().ip()
                    ),
                ))));
            }
            let (pid, key) = self.pids.generate(client);
            client.set_pid_and_secret_key(pid, key);
            finish_authentication(client, &ServerParams).await?;
        }
        Ok(())
    }
}

/// Trust or SCRAM, chosen by the configuration.
pub(super) enum Startup {
    Trust(TrustStartup),
    Scram(Box<SASLAuthStartupHandler<ServerParams>>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(t) => t.on_startup(client, message).await,
            Startup::Scram(s) => s.on_startup(client, message).await,
        }
    }
}

impl Startup {
    /// Trust (no users configured: loopback only) or SCRAM-SHA-256 over the configured
    /// users; `tls_cert_pem` enables SCRAM channel binding.
    pub(super) fn new(cfg: &Config, tls_cert_pem: Option<&[u8]>) -> Startup {
        if cfg.users.is_empty() {
            Startup::Trust(TrustStartup {
                pids: RandomPidSecretKeyGenerator::default(),
            })
        } else {
            let users = cfg
                .users
                .iter()
                .map(|u| {
                    let salt: [u8; 16] = rand::random();
                    let salted = gen_salted_password(&u.password, &salt, SCRAM_ITERATIONS);
                    (u.name.clone(), (salt.to_vec(), salted))
                })
                .collect();
            let mut scram = ScramAuth::new(Arc::new(UserDb { users }));
            scram.set_iterations(SCRAM_ITERATIONS);
            if let Some(pem) = tls_cert_pem {
                if let Err(e) = scram.configure_certificate(pem) {
                    tracing::warn!("SCRAM channel binding disabled: {e}");
                }
            }
            Startup::Scram(Box::new(
                SASLAuthStartupHandler::new(Arc::new(ServerParams)).with_scram(scram),
            ))
        }
    }
}

/// Settings a client gives in its startup packet, as parameters (`TimeZone=…`) or in
/// `options` (`-c timezone=Europe/Paris`, `--timezone=…`).
pub(crate) fn startup_settings(
    meta: &std::collections::HashMap<String, String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in meta {
        if k.eq_ignore_ascii_case("timezone") {
            out.push(("timezone".to_string(), v.clone()));
        }
    }
    if let Some(options) = meta.get("options") {
        let mut words = options.split_whitespace();
        while let Some(w) = words.next() {
            let assignment = if w == "-c" {
                words.next()
            } else if let Some(rest) = w.strip_prefix("-c") {
                Some(rest)
            } else {
                w.strip_prefix("--")
            };
            if let Some((k, v)) = assignment.and_then(|a| a.split_once('=')) {
                out.push((k.replace('-', "_").to_ascii_lowercase(), v.to_string()));
            }
        }
    }
    out
}
