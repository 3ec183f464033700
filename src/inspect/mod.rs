//! Inspecting the servers and the table before anything is created.
//!
//! In: connections to the inspected server (whose binlog is read) and the primary (where the
//! ghost table is written), and the [`Config`]. Out: [`Facts`], read once; the preflight
//! [`checks`] judge them. After the ghost table exists, [`plan::build`] compares it with the
//! original and yields the [`Plan`]. Invariant: nothing here writes to a server.

pub mod alter;
pub mod checks;
pub mod plan;
pub mod schema;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use plan::Plan;
pub use schema::TableSchema;

use crate::config::Config;
use crate::mysql::names::NameCase;
use crate::mysql::{self, sql, Endpoint, Flavor};
use checks::Grants;

/// The settings of one server that decide whether wraith can work with it.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub endpoint: Endpoint,
    pub flavor: Flavor,
    pub server_id: u32,
    pub log_bin: bool,
    pub binlog_format: String,
    pub binlog_row_image: String,
    pub log_replica_updates: bool,
    /// The server compresses its binlog in a form wraith does not read
    /// ([`Flavor::binlog_compression_variable`] is on).
    pub binlog_compression: bool,
    pub binlog_row_value_options: String,
    /// How it compares schema and table names (`lower_case_table_names`).
    pub name_case: NameCase,
    pub grants: Grants,
}

impl ServerFacts {
    pub async fn read(
        conn: &mut Conn,
        endpoint: &Endpoint,
        database: &str,
    ) -> Result<ServerFacts, mysql_async::Error> {
        let flavor = Flavor::detect(conn).await?;
        let var = |v: Option<String>| v.unwrap_or_default();
        let on = |v: &str| v.eq_ignore_ascii_case("ON") || v == "1";
        let server_id: u32 = var(mysql::variable(conn, "server_id").await?)
            .parse()
            .unwrap_or(0);
        let log_bin = on(&var(mysql::variable(conn, "log_bin").await?));
        let binlog_format = var(mysql::variable(conn, "binlog_format").await?);
        let binlog_row_image = var(mysql::variable(conn, "binlog_row_image").await?);
        let log_replica_updates = on(&var(mysql::variable(
            conn,
            flavor.log_replica_updates_variable(),
        )
        .await?));
        let binlog_compression = match flavor.binlog_compression_variable() {
            Some(name) => on(&var(mysql::variable(conn, name).await?)),
            None => false,
        };
        let binlog_row_value_options = if flavor.has_partial_json() {
            var(mysql::variable(conn, "binlog_row_value_options").await?)
        } else {
            String::new()
        };
        let name_case =
            NameCase::from_setting(&var(mysql::variable(conn, "lower_case_table_names").await?));
        let grant_lines: Vec<String> = conn
            .query::<Vec<u8>, _>("SHOW GRANTS FOR CURRENT_USER()")
            .await?
            .iter()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect();
        Ok(ServerFacts {
            endpoint: endpoint.clone(),
            flavor,
            server_id,
            log_bin,
            binlog_format,
            binlog_row_image,
            log_replica_updates,
            binlog_compression,
            binlog_row_value_options,
            name_case,
            grants: Grants::parse(&grant_lines, database),
        })
    }
}

/// Everything the preflight checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The server whose binlog is read (`--host`).
    pub inspected: ServerFacts,
    /// The server the ghost table is written on (the same one with `--allow-on-master`).
    pub primary: ServerFacts,
    /// The original table, as the inspected server has it (`None` unless a base table).
    pub table: Option<TableSchema>,
    /// `TABLE_TYPE` of whatever `--table` names (`BASE TABLE`, `VIEW`, `SEQUENCE`, `SYSTEM
    /// VERSIONED` ...); `None` when nothing has that name.
    pub table_type: Option<String>,
    pub child_foreign_keys: Vec<String>,
    pub parent_foreign_keys: Vec<String>,
    pub triggers: Vec<String>,
    /// Ghost, changelog and old tables that already exist on the primary.
    pub existing_helper_tables: Vec<String>,
    /// Tables of the atomic swap's gate names ([`crate::cutover::gate_names`]) on the primary
    /// that wraith did not create (they lack its comment).
    pub foreign_gate_tables: Vec<String>,
    /// Server ids of replicas registered with the inspected server.
    pub registered_replica_ids: Vec<u32>,
    /// The primary shows metadata locks (what the atomic cut-over's proof reads).
    pub primary_lock_instrument: bool,
    /// Bytes the original table takes (data and indexes): about what its copy will need.
    pub table_bytes: u64,
    /// The original table's average row length (`AVG_ROW_LENGTH`, the server's estimate; 0:
    /// unknown): what sizes a chunk within `--chunk-max-bytes`.
    pub avg_row_bytes: u64,
    /// Free bytes where the primary keeps its data, when that can be known from here.
    pub primary_free_bytes: Option<u64>,
}

impl Facts {
    pub fn same_server(&self) -> bool {
        self.inspected.endpoint == self.primary.endpoint
    }

    /// True when the binlog is read from a replica rather than the primary itself.
    pub fn reading_replica(&self) -> bool {
        !self.same_server()
    }
}

/// Reads every fact the checks need.
pub async fn gather(
    cfg: &Config,
    inspected: (&mut Conn, &Endpoint),
    primary: Option<(&mut Conn, &Endpoint)>,
) -> Result<Facts, mysql_async::Error> {
    let (iconn, iendpoint) = inspected;
    let inspected_facts = ServerFacts::read(iconn, iendpoint, &cfg.database).await?;
    let (primary_facts, pconn) = match primary {
        Some((pconn, pendpoint)) => (
            ServerFacts::read(pconn, pendpoint, &cfg.database).await?,
            Some(pconn),
        ),
        None => (inspected_facts.clone(), None),
    };
    let db = cfg.database.as_str();
    let table = TableSchema::read(iconn, db, &cfg.table).await?;
    let child_foreign_keys: Vec<String> = iconn
        .exec(
            "SELECT DISTINCT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY 1",
            (db, &cfg.table),
        )
        .await?;
    let parent_foreign_keys: Vec<String> = iconn
        .exec(
            "SELECT DISTINCT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME) FROM information_schema.KEY_COLUMN_USAGE \
             WHERE REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? \
             AND NOT (TABLE_SCHEMA = REFERENCED_TABLE_SCHEMA AND TABLE_NAME = REFERENCED_TABLE_NAME) ORDER BY 1",
            (db, &cfg.table),
        )
        .await?;
    let triggers: Vec<String> = iconn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY 1",
            (db, &cfg.table),
        )
        .await?;
    let helpers = [
        cfg.ghost_table(),
        cfg.changelog_table(),
        cfg.checkpoint_table(),
        cfg.old_table(),
    ];
    let mut pconn = pconn;
    let existing_helper_tables = {
        let conn = match pconn.as_deref_mut() {
            Some(c) => c,
            None => &mut *iconn,
        };
        let mut found = Vec::new();
        for name in helpers {
            let exists: Option<String> = conn
                .exec_first(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (db, &name),
                )
                .await?;
            if exists.is_some() {
                found.push(name);
            }
        }
        found
    };
    let foreign_gate_tables = {
        let conn = match pconn.as_deref_mut() {
            Some(c) => c,
            None => &mut *iconn,
        };
        match crate::cutover::gate_names(&cfg.table) {
            Some(gate) => crate::cutover::gate_tables(conn, db, &gate)
                .await?
                .into_iter()
                .filter_map(|(name, ours)| (!ours).then_some(name))
                .collect(),
            None => Vec::new(),
        }
    };
    // DATA_LENGTH and INDEX_LENGTH are NULL for a view.
    let (table_type, table_bytes, avg_row_bytes) = match iconn
        .exec_first::<(String, Option<u64>, Option<u64>), _, _>(
            "SELECT TABLE_TYPE, DATA_LENGTH + INDEX_LENGTH, AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, &cfg.table),
        )
        .await?
    {
        Some((kind, bytes, avg)) => (Some(kind), bytes, avg),
        None => (None, None, None),
    };
    let primary_free_bytes = match pconn.as_deref_mut() {
        Some(c) => free_bytes(c, &primary_facts.endpoint).await,
        None => free_bytes(iconn, &primary_facts.endpoint).await,
    };
    if primary_free_bytes.is_none() {
        tracing::info!(
            "free disk space on {} cannot be checked from here (neither the DISKS plugin nor a local data directory)",
            primary_facts.endpoint
        );
    }
    let primary_lock_instrument = {
        let conn = match pconn {
            Some(c) => c,
            None => &mut *iconn,
        };
        let row: Option<u8> = conn
            .query_first(primary_facts.flavor.metadata_lock_instrument_sql())
            .await?;
        row.is_some()
    };
    let replica_rows: Vec<mysql_async::Row> = iconn
        .query(inspected_facts.flavor.replica_hosts_sql())
        .await?;
    let registered_replica_ids = replica_rows
        .iter()
        .filter_map(|r| r.get_opt::<u32, _>("Server_id").and_then(|v| v.ok()))
        .collect();
    Ok(Facts {
        inspected: inspected_facts,
        primary: primary_facts,
        table,
        table_type,
        child_foreign_keys,
        parent_foreign_keys,
        triggers,
        existing_helper_tables,
        foreign_gate_tables,
        registered_replica_ids,
        primary_lock_instrument,
        table_bytes: table_bytes.unwrap_or(0),
        avg_row_bytes: avg_row_bytes.unwrap_or(0),
        primary_free_bytes,
    })
}

/// Free bytes under the server's data directory: from MariaDB's `information_schema.DISKS` when
/// that plugin is active, else from `statvfs` when the server runs on this host.
async fn free_bytes(conn: &mut Conn, endpoint: &Endpoint) -> Option<u64> {
    // Paths are bytes: a directory name need not be UTF-8.
    let datadir: Vec<u8> = conn
        .query_first::<Option<Vec<u8>>, _>("SELECT @@datadir")
        .await
        .ok()
        .flatten()
        .flatten()?;
    // DISKS: (Disk, Path, Total, Used, Available) in KiB; the longest mount path holding datadir.
    if let Ok(rows) = conn
        .query::<(Vec<u8>, Option<u64>), _>("SELECT Path, Available FROM information_schema.DISKS")
        .await
    {
        if let Some((_, Some(kib))) = rows
            .into_iter()
            .filter(|(path, _)| datadir.starts_with(path))
            .max_by_key(|(path, _)| path.len())
        {
            return Some(kib * 1024);
        }
    }
    let local = matches!(endpoint.host.as_str(), "127.0.0.1" | "localhost" | "::1");
    if !local {
        return None;
    }
    let path = std::ffi::CString::new(datadir).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut st) == 0)
            .then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The number of rows in the table: exact (`COUNT(*)`) or the optimizer's estimate.
pub async fn row_count(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    exact: bool,
) -> Result<u64, mysql_async::Error> {
    if exact {
        let n: Option<u64> = conn.query_first(sql::count_rows(schema, table)).await?;
        return Ok(n.unwrap_or(0));
    }
    let rows: Vec<mysql_async::Row> = conn.query(sql::explain_select_all(schema, table)).await?;
    Ok(rows
        .first()
        .and_then(|r| {
            r.get_opt::<Option<u64>, _>("rows")
                .and_then(|v| v.ok())
                .flatten()
        })
        .unwrap_or(0))
}
