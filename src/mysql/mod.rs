//! Talking to servers.
//!
//! In: host/port and the connection part of [`Config`]. Out: dedicated `mysql_async::Conn`s (never
//! a pool: a pool resets session state such as `LOCK TABLES`), the server's [`Flavor`], and the
//! replication [`topology`]. Every difference between MySQL and MariaDB lives in [`flavor`]; every
//! piece of SQL text is built in [`sql`], with its one quoting function, and read back with the
//! one tokenizer in [`lexer`]; names are compared as the server compares them ([`names`]).

pub mod flavor;
pub mod lexer;
pub mod names;
pub mod sql;
pub mod topology;

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};

pub use flavor::Flavor;

use crate::config::{Config, Tls};

/// A server address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// Parses `host` or `host:port` (default port 3306).
    pub fn parse(text: &str, default_port: u16) -> Option<Endpoint> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some(Endpoint {
                host: h.to_string(),
                port: p.parse().ok()?,
            }),
            _ => Some(Endpoint {
                host: text.to_string(),
                port: default_port,
            }),
        }
    }
}

/// How to log in; the same for every server unless --master-user/--master-password differ.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub charset: String,
    pub tls: Option<Tls>,
    pub connect_timeout: Duration,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials for the server wraith is pointed at (`--host`).
    pub fn inspected(cfg: &Config) -> Credentials {
        Credentials {
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            charset: cfg.flags.charset.clone(),
            tls: cfg.tls.clone(),
            connect_timeout: cfg.connect_timeout,
        }
    }

    /// The credentials for the primary (`--master-user`/`--master-password` when given).
    pub fn primary(cfg: &Config) -> Credentials {
        Credentials {
            user: cfg.master_user.clone(),
            password: cfg.master_password.clone(),
            ..Credentials::inspected(cfg)
        }
    }
}

/// Why a connection could not be made, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {endpoint}: access denied for user '{user}' ({detail}); check --user and --password (or --conf, --ask-pass){}", if *.tls { "" } else { ", and add --ssl if the server requires secure connections" })]
    AccessDenied {
        endpoint: Endpoint,
        user: String,
        detail: String,
        tls: bool,
    },
    #[error("cannot connect to {endpoint}: the server's TLS certificate did not verify ({detail}); pass --ssl-ca=<the CA that signed it>, or --ssl-allow-insecure to skip verification")]
    Certificate { endpoint: Endpoint, detail: String },
    #[error("cannot connect to {endpoint}: no answer within {secs:.1}s; check --host and --port, that the server is up and reachable, or raise --mysql-timeout")]
    Timeout { endpoint: Endpoint, secs: f64 },
    #[error("cannot connect to {endpoint}: {detail}; check --host and --port and that the server is running")]
    Io { endpoint: Endpoint, detail: String },
    #[error("cannot connect to {endpoint}: {detail}")]
    Other { endpoint: Endpoint, detail: String },
}

fn ssl_opts(tls: &Tls) -> SslOpts {
    let mut opts = SslOpts::default();
    if let Some(ca) = &tls.ca {
        opts = opts.with_root_certs(vec![ca.clone().into()]);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        opts = opts.with_client_identity(Some(mysql_async::ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    if tls.allow_insecure {
        opts = opts
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true);
    }
    opts
}

/// The driver options for `endpoint`: `--charset`, UTC (TIMESTAMP values travel as UTC), TLS,
/// no default database.
pub fn opts(endpoint: &Endpoint, creds: &Credentials) -> mysql_async::Opts {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(endpoint.host.clone())
        .tcp_port(endpoint.port)
        .user(Some(creds.user.clone()))
        .pass(Some(creds.password.clone()))
        .prefer_socket(false)
        // A dead peer is noticed within seconds, not at the kernel's two hours.
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .init(vec![
            format!("SET NAMES {}", creds.charset),
            "SET SESSION time_zone = '+00:00'".to_string(),
        ]);
    if let Some(tls) = &creds.tls {
        opts = opts.ssl_opts(ssl_opts(tls));
    }
    opts.into()
}

/// Opens a dedicated connection with [`opts`].
pub async fn connect(endpoint: &Endpoint, creds: &Credentials) -> Result<Conn, ConnectError> {
    let attempt =
        tokio::time::timeout(creds.connect_timeout, Conn::new(opts(endpoint, creds))).await;
    match attempt {
        Err(_) => Err(ConnectError::Timeout {
            endpoint: endpoint.clone(),
            secs: creds.connect_timeout.as_secs_f64(),
        }),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(classify(endpoint, creds, e)),
    }
}

fn classify(endpoint: &Endpoint, creds: &Credentials, e: mysql_async::Error) -> ConnectError {
    match e {
        mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1698 => {
            ConnectError::AccessDenied {
                endpoint: endpoint.clone(),
                user: creds.user.clone(),
                detail: s.message,
                tls: creds.tls.is_some(),
            }
        }
        mysql_async::Error::Io(io) if io.to_string().contains("certificate") => {
            ConnectError::Certificate {
                endpoint: endpoint.clone(),
                detail: io.to_string(),
            }
        }
        mysql_async::Error::Io(io) => ConnectError::Io {
            endpoint: endpoint.clone(),
            detail: io.to_string(),
        },
        other => ConnectError::Other {
            endpoint: endpoint.clone(),
            detail: other.to_string(),
        },
    }
}

/// Opens a connection that writes the ghost table: [`connect`] plus the writer session
/// ([`sql::writer_session`]) and room for every warning of a chunk. It stays at repeatable read:
/// a batch's `DELETE` of a key not yet copied locks the gap, so a copy chunk cannot insert that
/// key between the batch's `DELETE` and its `INSERT` (a duplicate-key error under read committed).
pub async fn connect_writer(
    endpoint: &Endpoint,
    creds: &Credentials,
    strict: bool,
) -> Result<Conn, ConnectError> {
    let mut conn = connect(endpoint, creds).await?;
    let setup = async {
        conn.query_drop(sql::writer_session(strict)).await?;
        conn.query_drop("SET SESSION max_error_count = 65535").await
    };
    setup.await.map_err(|e| classify(endpoint, creds, e))?;
    Ok(conn)
}

/// Opens the connection that runs the user's DDL (the `--alter` on the ghost table): [`connect`],
/// with the session's sql_mode read the way `inspect::alter` reads the ALTER
/// ([`sql::ddl_session`]: no ANSI_QUOTES, no NO_BACKSLASH_ESCAPES). Run statements on it with
/// [`run_ddl`].
pub async fn connect_ddl(endpoint: &Endpoint, creds: &Credentials) -> Result<Conn, ConnectError> {
    let mut conn = connect(endpoint, creds).await?;
    let setup = async {
        let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await?;
        conn.query_drop(sql::ddl_session(&mode.unwrap_or_default()))
            .await
    };
    setup.await.map_err(|e| classify(endpoint, creds, e))?;
    Ok(conn)
}

/// Runs one statement built around the user's text as a prepared statement. `mysql_async` always
/// negotiates CLIENT_MULTI_STATEMENTS and cannot send COM_SET_OPTION to turn it off, so a plain
/// query would run a second statement hidden in the text; COM_STMT_PREPARE parses exactly one
/// statement, and text holding a second is a syntax error, with nothing run. (`inspect::alter`
/// refuses such text before this; this is the second lock.)
pub async fn run_ddl(conn: &mut Conn, statement: &str) -> Result<(), mysql_async::Error> {
    conn.exec_drop(statement, ()).await
}

/// What to do about a failed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A deadlock or lock wait timeout: roll back and run it again.
    Transient,
    /// The connection is gone (killed, network, server restart): reconnect and run it again.
    ConnectionLost,
    /// Anything else: give up and say why.
    Fatal,
}

/// Classifies an error of a statement that is safe to repeat (idempotent writes).
pub fn failure(e: &mysql_async::Error) -> Failure {
    match e {
        mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205 => Failure::Transient,
        // Server gone away, lost connection, connection killed, server shutdown in progress,
        // and MySQL 8.0.24+'s idle disconnect (4031, sent just before it closes the connection).
        mysql_async::Error::Server(s) if matches!(s.code, 2006 | 2013 | 1927 | 1053 | 4031) => {
            Failure::ConnectionLost
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Failure::ConnectionLost,
        _ => Failure::Fatal,
    }
}

/// Reads one global/session variable as text (`None` when the server has no such variable).
pub async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>, mysql_async::Error> {
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = conn
        .exec("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|(_, v)| v)
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}
