//! `--alter` is one ALTER, and what the server built decides what is copied (issue 9, points 1,
//! 2 and 7): a second statement is never run, in a noop run or a real one; a rename the server
//! makes keeps its column's values, or the run is refused before a row is copied; a ghost table
//! on an engine that loses rows is never filled. Each case checks the server afterwards: the
//! tables that must survive, the values, and that no helper table is left.

use mysql_async::prelude::Queryable;
use wraith::mysql::sql::{qualified, quote_ident};
use wraith::sandbox::ServerSpec;

use crate::harness::{
    self, primary_sql, run_wraith, servers, stderr, table_checksum, tables, Endpoint,
};

const ORDERS: &str = "CREATE TABLE orders (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(32) NOT NULL, amount DECIMAL(10,2), KEY (customer)) ENGINE=InnoDB";
/// 2000 rows for [`ORDERS`].
fn fill() -> String {
    format!(
        "INSERT INTO orders (customer, amount) SELECT CONCAT('c', seq), seq * 1.25 FROM {}",
        harness::seq(1, 2000)
    )
}
const VICTIM: &str = "CREATE TABLE victim (id INT PRIMARY KEY) ENGINE=InnoDB";

/// wraith flags for a migration of `schema`.orders read from `endpoint` (with `--execute` when
/// `execute`).
fn args(
    endpoint: &Endpoint,
    schema: &str,
    alter: &str,
    execute: bool,
    extra: &[&str],
) -> Vec<String> {
    let mut a = endpoint.flags();
    a.extend([
        harness::unique_server_id_flag(),
        format!("--database={schema}"),
        "--table=orders".into(),
        format!("--alter={alter}"),
        "--mysql-timeout=5".into(),
        "--chunk-size=500".into(),
        "--heartbeat-interval-millis=50".into(),
    ]);
    if execute {
        a.push("--execute".into());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A fresh schema with `orders` (2000 rows) and `victim` (one row) on the primary.
async fn orders_schema(name: &str) -> String {
    let schema = harness::fresh_schema(name).await;
    primary_sql(
        &schema,
        &[ORDERS, &fill(), VICTIM, "INSERT INTO victim VALUES (1)"],
    )
    .await;
    schema
}

/// Runs wraith on `endpoint` (whose primary is `primary`) and asserts that it refused with
/// `expected` in its error, left `orders` exactly as it was (rows, bytes and engine) and
/// created or dropped no table.
async fn assert_refused_on(primary: &Endpoint, args: &[String], schema: &str, expected: &str) {
    let before_tables = tables(primary, schema).await;
    let before = table_checksum(primary, schema, "orders").await;
    let out = run_wraith(args).await;
    let err = stderr(&out);
    // What the server holds first: a run that should have been refused shows what it did.
    assert_eq!(
        tables(primary, schema).await,
        before_tables,
        "tables changed on the primary:\n{err}"
    );
    assert_eq!(
        table_checksum(primary, schema, "orders").await,
        before,
        "the original table changed:\n{err}"
    );
    assert_eq!(
        engine(primary, schema, "orders").await,
        "InnoDB",
        "the original table changed engine:\n{err}"
    );
    assert!(
        !out.status.success(),
        "wraith should have refused; it said:\n{err}"
    );
    assert!(!err.contains("panicked"), "wraith panicked:\n{err}");
    assert!(
        err.contains(expected),
        "expected `{expected}` in the error; wraith said:\n{err}"
    );
}

/// [`assert_refused_on`] on the shared pair, reading the replica.
async fn assert_refused(schema: &str, alter: &str, execute: bool, extra: &[&str], expected: &str) {
    let a = args(&servers().replica, schema, alter, execute, extra);
    assert_refused_on(&servers().primary, &a, schema, expected).await;
}

async fn engine(endpoint: &Endpoint, schema: &str, table: &str) -> String {
    let mut c = endpoint.conn().await;
    c.exec_first(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (schema, table),
    )
    .await
    .unwrap()
    .unwrap_or_default()
}

/// `(id, value)` of every row of `schema`.`table`, by id, with `column`'s value as text.
async fn values(
    endpoint: &Endpoint,
    schema: &str,
    table: &str,
    column: &str,
) -> Vec<(i64, Option<String>)> {
    let mut c = endpoint.conn().await;
    c.query(format!(
        "SELECT id, CAST({} AS CHAR) FROM {} ORDER BY id",
        quote_ident(column),
        qualified(schema, table)
    ))
    .await
    .unwrap()
}

/// Migrates `schema`.orders with `alter` (and `--execute`), reading `read_from`, and asserts on
/// `primary` that the values that were in `amount` are now in `total`, row for row, and that
/// only the old table is left.
async fn assert_rename_keeps_values(
    read_from: &Endpoint,
    primary: &Endpoint,
    schema: &str,
    alter: &str,
    extra: &[&str],
) {
    let before = values(primary, schema, "orders", "amount").await;
    assert!(before.iter().all(|(_, v)| v.is_some()));
    let out = run_wraith(&args(read_from, schema, alter, true, extra)).await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_eq!(
        values(primary, schema, "orders", "total").await,
        before,
        "the renamed column lost its values"
    );
    assert_eq!(
        tables(primary, schema).await,
        vec!["_orders_del", "orders", "victim"]
    );
}

#[tokio::test]
async fn a_second_statement_after_a_semicolon_is_never_run() {
    let schema = orders_schema("alter_second_statement").await;
    let victim = qualified(&schema, "victim");
    for alter in [
        format!("ADD COLUMN c INT; DROP TABLE {victim}"),
        format!("ADD COLUMN c INT;DROP TABLE {victim};"),
        format!("ADD COLUMN c INT /*! ; DROP TABLE {victim} */"),
    ] {
        for execute in [false, true] {
            assert_refused(&schema, &alter, execute, &[], "one statement").await;
            let mut c = servers().primary.conn().await;
            let rows: Option<u64> = c
                .query_first(format!("SELECT COUNT(*) FROM {victim}"))
                .await
                .unwrap_or_else(|e| panic!("{alter} (execute: {execute}) dropped the victim: {e}"));
            assert_eq!(rows, Some(1));
        }
    }
}

#[tokio::test]
async fn a_grant_after_a_semicolon_is_never_run() {
    let schema = orders_schema("alter_grant").await;
    let user = "'wraith_intruder'@'%'";
    let create = [
        format!("DROP USER IF EXISTS {user}"),
        format!("CREATE USER {user}"),
    ];
    primary_sql(&schema, &[&create[0], &create[1]]).await;
    let granted = async || -> Vec<String> {
        let mut c = servers().primary.conn().await;
        c.query(format!(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {} AND PRIVILEGE_TYPE <> 'USAGE'",
            wraith::mysql::sql::quote_str(user)
        ))
        .await
        .unwrap()
    };
    let alter = format!("ADD COLUMN c INT; GRANT ALL ON *.* TO {user}");
    for execute in [false, true] {
        let out = run_wraith(&args(&servers().replica, &schema, &alter, execute, &[])).await;
        let err = stderr(&out);
        assert_eq!(
            granted().await,
            Vec::<String>::new(),
            "execute: {execute}: the GRANT ran:\n{err}"
        );
        assert!(!out.status.success(), "wraith should have refused:\n{err}");
        assert!(err.contains("one statement"), "{err}");
        assert_eq!(
            tables(&servers().primary, &schema).await,
            vec!["orders", "victim"]
        );
    }
    primary_sql(&schema, &[&format!("DROP USER {user}")]).await;
}

#[tokio::test]
async fn a_trailing_semicolon_and_whitespace_are_trimmed_and_the_alter_runs() {
    let schema = orders_schema("alter_trailing_semicolon").await;
    let primary = &servers().primary;
    let before = values(primary, &schema, "orders", "amount").await;
    let alter = "ADD COLUMN note VARCHAR(8) NOT NULL DEFAULT 'a;b';  \n";
    let out = run_wraith(&args(&servers().replica, &schema, alter, true, &[])).await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_eq!(values(primary, &schema, "orders", "amount").await, before);
    let notes = values(primary, &schema, "orders", "note").await;
    assert!(
        notes.iter().all(|(_, v)| v.as_deref() == Some("a;b")),
        "{:?}",
        &notes[..3]
    );
    assert_eq!(
        tables(primary, &schema).await,
        vec!["_orders_del", "orders", "victim"]
    );
}

#[tokio::test]
async fn a_rename_inside_an_executable_comment_keeps_its_values() {
    let schema = orders_schema("alter_exec_comment_rename").await;
    assert_rename_keeps_values(
        &servers().replica,
        &servers().primary,
        &schema,
        "ADD COLUMN note INT /*! , CHANGE amount total DECIMAL(10,2) */",
        &["--approve-renamed-columns"],
    )
    .await;
}

#[tokio::test]
async fn an_executable_comment_that_depends_on_the_server_version_is_refused() {
    // MariaDB 10.11 skips both comments' text; MySQL would run the second one.
    let schema = orders_schema("alter_versioned_comment").await;
    for alter in [
        "ADD COLUMN note INT /*M!999999 , CHANGE amount total DECIMAL(10,2) */",
        "ADD COLUMN note INT /*!80000 , CHANGE amount total DECIMAL(10,2) */",
    ] {
        assert_refused(
            &schema,
            alter,
            true,
            &["--approve-renamed-columns"],
            "executable comment",
        )
        .await;
    }
}

#[tokio::test]
async fn a_rename_with_if_exists_keeps_its_values() {
    if harness::skip_on_mysql("RENAME COLUMN IF EXISTS is MariaDB's syntax") {
        return;
    }
    let schema = orders_schema("alter_rename_if_exists").await;
    // Without --approve-renamed-columns the rename is seen, and needs approval.
    assert_refused(
        &schema,
        "RENAME COLUMN IF EXISTS amount TO total",
        true,
        &[],
        // gh-ost's words, then wraith's.
        "gh-ost believes the ALTER statement renames columns, as follows: map[amount:total]; pass --approve-renamed-columns",
    )
    .await;
    assert_rename_keeps_values(
        &servers().replica,
        &servers().primary,
        &schema,
        "RENAME COLUMN IF EXISTS amount TO total",
        &["--approve-renamed-columns"],
    )
    .await;
}

/// A server of its own whose global sql_mode has ANSI_QUOTES, with a fresh `schema`.orders (a
/// schema per test: tests run side by side); `None` against MySQL ([`harness::solo`]).
async fn ansi_quotes_server(schema: &str) -> Option<Endpoint> {
    let endpoint = harness::solo(
        ServerSpec::new("ansi-quotes", 82)
            .arg("--sql-mode=ANSI_QUOTES,STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"),
    )?;
    let q = quote_ident(schema);
    let mut c = endpoint.conn().await;
    for s in [
        format!("DROP DATABASE IF EXISTS {q}"),
        format!("CREATE DATABASE {q}"),
        format!("USE {q}"),
        ORDERS.into(),
        fill(),
        VICTIM.into(),
        "INSERT INTO victim VALUES (1)".into(),
    ] {
        c.query_drop(&s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    Some(endpoint)
}

#[tokio::test]
async fn under_a_global_ansi_quotes_sql_mode_a_double_quoted_rename_is_refused_and_a_backquoted_one_keeps_its_values(
) {
    let schema = "ansi_rename";
    let Some(server) = ansi_quotes_server(schema).await else {
        return;
    };
    // For this server's sessions "amount" is a name; wraith reads the ALTER, and has the server
    // run it, in the default dialect, where it is a string: the server refuses it, before a row
    // is copied, and the message says how to quote names.
    let alter = r#"CHANGE "amount" "total" DECIMAL(10,2)"#;
    let a = args(
        &server,
        schema,
        alter,
        true,
        &["--allow-on-master", "--approve-renamed-columns"],
    );
    assert_refused_on(&server, &a, schema, "backticks").await;
    assert_rename_keeps_values(
        &server,
        &server,
        schema,
        "CHANGE `amount` `total` DECIMAL(10,2)",
        &["--allow-on-master", "--approve-renamed-columns"],
    )
    .await;
}

#[tokio::test]
async fn an_engine_that_loses_rows_is_refused_for_the_ghost_table() {
    let schema = orders_schema("alter_engine").await;
    for (alter, expected) in [
        // Read in the ALTER: refused before anything is created.
        ("ENGINE=MEMORY", "[alter-engine]"),
        ("ADD COLUMN c INT, ENGINE = BLACKHOLE", "[alter-engine]"),
        ("ENGINE='BLACKHOLE'", "[alter-engine]"),
        // An engine option the parser does not read (not first in its clause, no `=`): the
        // ghost table's real engine is checked, and the ghost table dropped.
        (
            "ADD COLUMN c INT, COMMENT 'x' ENGINE MEMORY",
            "the ALTER made the new table a MEMORY table",
        ),
    ] {
        for execute in [false, true] {
            assert_refused(&schema, alter, execute, &[], expected).await;
        }
    }
}

/// The DDL connection wraith runs the ALTER on, opened on `endpoint`.
async fn ddl_connection(endpoint: &Endpoint) -> mysql_async::Conn {
    let creds = wraith::mysql::Credentials {
        user: endpoint.user.clone(),
        password: endpoint.password.clone(),
        charset: "utf8mb4".into(),
        tls: None,
        connect_timeout: std::time::Duration::from_secs(5),
    };
    let at = wraith::mysql::Endpoint {
        host: endpoint.host.clone(),
        port: endpoint.port,
    };
    wraith::mysql::connect_ddl(&at, &creds).await.unwrap()
}

#[tokio::test]
async fn the_ddl_connection_runs_one_statement_and_reads_quotes_in_the_default_dialect() {
    // The second lock behind the parser's refusal: text with two statements is not run at all.
    let schema = orders_schema("alter_ddl_connection").await;
    let mut ddl = ddl_connection(&servers().primary).await;
    let victim = qualified(&schema, "victim");
    let two = format!("ALTER TABLE {victim} ADD COLUMN c INT; DROP TABLE {victim}");
    let e = wraith::mysql::run_ddl(&mut ddl, &two).await.unwrap_err();
    assert!(e.to_string().contains("SQL syntax"), "{e}");
    assert_eq!(
        tables(&servers().primary, &schema).await,
        vec!["orders", "victim"]
    );
    let victim_columns = crate::compare::columns(&servers().primary, &schema, "victim").await;
    assert_eq!(
        victim_columns.len(),
        1,
        "the first statement ran: {victim_columns:?}"
    );
    // On a server whose global sql_mode reads "x" as a name, the session reads it as a string,
    // as wraith's parser does; the server's other modes stay.
    let Some(server) = ansi_quotes_server("ansi_ddl_connection").await else {
        return;
    };
    let mut ddl = ddl_connection(&server).await;
    let mode: String = ddl
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .unwrap()
        .unwrap();
    assert!(!mode.contains("ANSI_QUOTES"), "{mode}");
    assert!(mode.contains("STRICT_TRANS_TABLES"), "{mode}");
    let read: String = ddl.query_first(r#"SELECT "x""#).await.unwrap().unwrap();
    assert_eq!(read, "x");
}
