//! Bad input never crashes and never leaves a mess: each refusal exits non-zero with a message
//! naming the problem, creates no helper table and leaves the original table as it was.

use mysql_async::prelude::Queryable;
use wraith::sandbox::ServerSpec;

use crate::harness::{
    self, primary_sql, run_wraith, servers, stderr, table_checksum, tables, Endpoint,
};

const ORDERS: &str = "CREATE TABLE orders (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(32) NOT NULL, amount DECIMAL(10,2), KEY (customer)) ENGINE=InnoDB";
const FILL: &str =
    "INSERT INTO orders (customer, amount) VALUES ('ann', 1.50), ('bob', 2.25), ('cy', NULL)";

/// wraith flags for a migration of `schema`.`table` read from `endpoint`.
fn args(
    endpoint: &Endpoint,
    schema: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut a = endpoint.flags();
    a.push(format!("--database={schema}"));
    a.push(format!("--table={table}"));
    a.push(format!("--alter={alter}"));
    a.push("--mysql-timeout=5".into());
    a.push(harness::unique_server_id_flag());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs wraith and asserts it refused with `expected` in its error, created nothing and left
/// `table` exactly as it was, on the primary (where helper tables would be written). Returns
/// what wraith wrote to stderr.
async fn assert_refused(
    read_from: &Endpoint,
    schema: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
    expected: &str,
) -> String {
    let primary = &servers().primary;
    let before_tables = tables(primary, schema).await;
    let before = if before_tables.iter().any(|t| t == table) {
        Some(table_checksum(primary, schema, table).await)
    } else {
        None
    };
    let out = run_wraith(&args(read_from, schema, table, alter, extra)).await;
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "wraith should have refused; it said:\n{err}"
    );
    assert!(!err.contains("panicked"), "wraith panicked:\n{err}");
    assert!(
        err.contains(expected),
        "expected `{expected}` in the error; wraith said:\n{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") || last.contains(expected),
        "the reason should end the output; last line: {last}"
    );
    assert_eq!(
        tables(primary, schema).await,
        before_tables,
        "tables changed on the primary"
    );
    if let Some(before) = before {
        assert_eq!(
            table_checksum(primary, schema, table).await,
            before,
            "the original table changed"
        );
    }
    err
}

/// Asserts that wraith refuses without `flag`, in gh-ost's words (`gh_ost`) and naming the flag,
/// then succeeds with it, leaving only the original table behind (a noop run).
async fn assert_refused_unless(
    read_from: &Endpoint,
    schema: &str,
    table: &str,
    alter: &str,
    flag: &str,
    gh_ost: &str,
) {
    let err = assert_refused(read_from, schema, table, alter, &[], gh_ost).await;
    assert!(err.contains(flag), "expected `{flag}` in the error:\n{err}");
    let out = run_wraith(&args(read_from, schema, table, alter, &[flag])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tables(&servers().primary, schema).await,
        vec![table.to_string()]
    );
}

async fn orders_schema(name: &str, extra: &[&str]) -> String {
    let schema = harness::fresh_schema(name).await;
    let mut stmts = vec![ORDERS, FILL];
    stmts.extend_from_slice(extra);
    primary_sql(&schema, &stmts).await;
    schema
}

#[tokio::test]
async fn a_noop_run_validates_and_leaves_nothing_behind() {
    let schema = orders_schema("noop_ok", &[]).await;
    let primary = &servers().primary;
    let before = table_checksum(primary, &schema, "orders").await;
    let out = run_wraith(&args(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN note TEXT",
        &[],
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tables(primary, &schema).await, vec!["orders"]);
    assert_eq!(table_checksum(primary, &schema, "orders").await, before);
}

#[tokio::test]
async fn an_unknown_flag_is_named() {
    let out = run_wraith(&["--database=d".into(), "--tabel=orders".into()]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--tabel"), "{}", stderr(&out));
}

#[tokio::test]
async fn an_out_of_range_chunk_size_is_named() {
    let schema = orders_schema("chunk_range", &[]).await;
    assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &["--chunk-size=5"],
        "--chunk-size=5 is out of range",
    )
    .await;
}

#[tokio::test]
async fn a_missing_table_is_named() {
    let schema = orders_schema("missing_table", &[]).await;
    assert_refused(
        &servers().replica,
        &schema,
        "no_such_table",
        "ADD COLUMN c INT",
        &[],
        &format!("Cannot find table `{schema}`.`no_such_table`!"),
    )
    .await;
}

#[tokio::test]
async fn a_table_without_a_unique_key_is_refused() {
    let schema = harness::fresh_schema("no_unique_key").await;
    primary_sql(
        &schema,
        &[
            "CREATE TABLE log (a INT, b TEXT, KEY (a))",
            "INSERT INTO log VALUES (1, 'x'), (1, 'x')",
        ],
    )
    .await;
    assert_refused(
        &servers().replica,
        &schema,
        "log",
        "ADD COLUMN c INT",
        &[],
        "No PRIMARY nor UNIQUE key found in table! Bailing out",
    )
    .await;
}

#[tokio::test]
async fn dropping_the_only_unique_key_is_refused() {
    let schema = orders_schema("drop_pk", &[]).await;
    let err = assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "MODIFY id INT NOT NULL, DROP PRIMARY KEY",
        &[],
        "No shared unique key can be found after ALTER! Bailing out",
    )
    .await;
    assert!(err.contains("removes or changes every unique key"), "{err}");
}

#[tokio::test]
async fn a_child_table_of_a_foreign_key_is_refused_without_discard_foreign_keys() {
    let schema = orders_schema(
        "fk_child",
        &["CREATE TABLE items (id INT PRIMARY KEY, order_id INT, CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES orders (id))"],
    )
    .await;
    let err = assert_refused(
        &servers().replica,
        &schema,
        "items",
        "ADD COLUMN c INT",
        &[],
        &format!("Found 1 child-side foreign keys on `{schema}`.`items`. Child-side foreign keys are not supported. Bailing out"),
    )
    .await;
    assert!(err.contains("has foreign keys (fk_order)"), "{err}");
}

#[tokio::test]
async fn a_parent_table_of_a_foreign_key_is_refused() {
    let schema = orders_schema(
        "fk_parent",
        &["CREATE TABLE items (id INT PRIMARY KEY, order_id INT, CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES orders (id))"],
    )
    .await;
    let err = assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &[],
        &format!("Found 1 parent-side foreign keys on `{schema}`.`orders`. Parent-side foreign keys are not supported. Bailing out"),
    )
    .await;
    assert!(err.contains("is referenced by foreign keys"), "{err}");
}

#[tokio::test]
async fn a_table_with_triggers_is_refused_without_include_triggers() {
    let schema = orders_schema(
        "triggers",
        &["CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.amount = IFNULL(NEW.amount, 0)"],
    )
    .await;
    let err = assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &[],
        &format!("Found triggers on `{schema}`.`orders`. Tables with triggers are supported only when using \"include-triggers\" flag. Bailing out"),
    )
    .await;
    assert!(err.contains("has triggers (orders_bi)"), "{err}");
}

#[tokio::test]
async fn renaming_the_table_is_refused() {
    let schema = orders_schema("rename_table", &[]).await;
    assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT, RENAME TO orders2",
        &[],
        "ALTER statement seems to RENAME the table.",
    )
    .await;
}

#[tokio::test]
async fn a_column_rename_needs_approval() {
    let schema = orders_schema("rename_column", &[]).await;
    let alter = "CHANGE customer client VARCHAR(32) NOT NULL";
    assert_refused_unless(
        &servers().replica,
        &schema,
        "orders",
        alter,
        "--approve-renamed-columns",
        "gh-ost believes the ALTER statement renames columns, as follows: map[customer:client];",
    )
    .await;
}

#[tokio::test]
async fn an_alter_syntax_error_shows_the_servers_message_and_drops_the_ghost_table() {
    let schema = orders_schema("syntax_error", &[]).await;
    assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT DEFAULT,",
        &[],
        "You have an error in your SQL syntax",
    )
    .await;
}

#[tokio::test]
async fn an_alter_the_server_rejects_for_a_missing_column_shows_its_message() {
    let schema = orders_schema("bad_column", &[]).await;
    assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "DROP COLUMN nope",
        &[],
        "nope",
    )
    .await;
}

#[tokio::test]
async fn a_leftover_ghost_table_is_refused_unless_initially_dropped() {
    let schema = orders_schema(
        "leftover_ghost",
        &["CREATE TABLE _orders_gho (id INT PRIMARY KEY)"],
    )
    .await;
    assert_refused_unless(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        "--initially-drop-ghost-table",
        "Table `_orders_gho` already exists. Panicking. Use --initially-drop-ghost-table to force dropping it, though I really prefer that you drop it or rename it away",
    )
    .await;
}

#[tokio::test]
async fn running_on_the_primary_needs_allow_on_master() {
    let schema = orders_schema("on_master", &[]).await;
    assert_refused_unless(
        &servers().primary,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        "--allow-on-master",
        "It seems like this migration attempt to run directly on master. Preferably it would be executed on a replica (and this reduces load from the master). To proceed please provide --allow-on-master.",
    )
    .await;
}

#[tokio::test]
async fn a_nullable_unique_key_needs_allow_nullable_unique_key() {
    let schema = harness::fresh_schema("nullable_key").await;
    primary_sql(
        &schema,
        &[
            "CREATE TABLE t (u INT NULL, v INT, UNIQUE KEY (u))",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    assert_refused_unless(
        &servers().replica,
        &schema,
        "t",
        "ADD COLUMN c INT",
        "--allow-nullable-unique-key",
        "Chosen key (u) has nullable columns. Bailing out. To force this operation to continue, supply --allow-nullable-unique-key flag.",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_password_says_access_denied_and_never_echoes_it() {
    let schema = orders_schema("wrong_password", &[]).await;
    let mut endpoint = servers().replica.clone();
    endpoint.password = "Sesame-4711".into();
    let out = run_wraith(&args(&endpoint, &schema, "orders", "ADD COLUMN c INT", &[])).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("access denied"), "{err}");
    assert!(
        !err.contains("Sesame-4711"),
        "the password was echoed:\n{err}"
    );
}

#[tokio::test]
async fn an_unresponsive_host_times_out_with_a_clear_message() {
    // A listener that accepts connections and never speaks: the handshake never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        password: String::new(),
    };
    let mut a = args(&endpoint, "d", "t", "ADD COLUMN c INT", &[]);
    a.push("--mysql-timeout=1".into());
    let started = std::time::Instant::now();
    let out = run_wraith(&a).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("no answer within 1.0s"), "{err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "the timeout was not honoured"
    );
    drop(listener);
}

#[tokio::test]
async fn a_closed_port_is_reported_as_unreachable() {
    let closed = harness::ClosedPort::new();
    let port = closed.port;
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        password: String::new(),
    };
    let out = run_wraith(&args(&endpoint, "d", "t", "ADD COLUMN c INT", &[])).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}

/// A standalone server with one misconfiguration, read with --allow-on-master; `None` against
/// MySQL ([`harness::solo`]).
async fn misconfigured(name: &str, server_arg: &str) -> Option<(Endpoint, String)> {
    let endpoint = harness::solo(ServerSpec::new(name, 50).arg(server_arg))?;
    let mut c = endpoint.conn().await;
    c.query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .unwrap();
    c.query_drop("USE app").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS orders").await.unwrap();
    c.query_drop(ORDERS).await.unwrap();
    c.query_drop(FILL).await.unwrap();
    Some((endpoint, "app".into()))
}

/// Like [`assert_refused`], for a server outside the shared pair; returns what wraith wrote to
/// stderr.
async fn assert_refused_on(endpoint: &Endpoint, schema: &str, expected: &str) -> String {
    let before_tables = tables(endpoint, schema).await;
    let before = table_checksum(endpoint, schema, "orders").await;
    let out = run_wraith(&args(
        endpoint,
        schema,
        "orders",
        "ADD COLUMN c INT",
        &["--allow-on-master"],
    ))
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "wraith should have refused:\n{err}");
    assert!(err.contains(expected), "expected `{expected}`:\n{err}");
    assert_eq!(tables(endpoint, schema).await, before_tables);
    assert_eq!(table_checksum(endpoint, schema, "orders").await, before);
    err
}

/// `host:port`, as wraith and gh-ost name a server in their messages.
fn host_port(endpoint: &Endpoint) -> String {
    format!("{}:{}", endpoint.host, endpoint.port)
}

#[tokio::test]
async fn statement_based_binlog_is_refused() {
    let Some((endpoint, schema)) = misconfigured("stmt", "--binlog-format=STATEMENT").await else {
        return;
    };
    let err = assert_refused_on(&endpoint, &schema, "You must be using ROW binlog format.").await;
    assert!(err.contains("binlog_format is STATEMENT"), "{err}");
}

#[tokio::test]
async fn minimal_row_images_are_refused() {
    let Some((endpoint, schema)) = misconfigured("minimal", "--binlog-row-image=MINIMAL").await
    else {
        return;
    };
    let gh_ost = format!(
        "{} has 'MINIMAL' binlog_row_image, and only 'FULL' is supported. This operation cannot proceed.",
        host_port(&endpoint)
    );
    assert_refused_on(&endpoint, &schema, &gh_ost).await;
}

#[tokio::test]
async fn mariadb_binlog_compression_is_refused() {
    let Some((endpoint, schema)) = misconfigured("compress", "--log-bin-compress=ON").await else {
        return;
    };
    assert_refused_on(&endpoint, &schema, "log_bin_compress=ON").await;
}

#[tokio::test]
async fn a_server_without_a_binlog_is_refused() {
    let Some((endpoint, schema)) = misconfigured("nobinlog", "--skip-log-bin").await else {
        return;
    };
    let gh_ost = format!("{} must have binary logs enabled", host_port(&endpoint));
    let err = assert_refused_on(&endpoint, &schema, &gh_ost).await;
    assert!(err.contains("binary logging is off"), "{err}");
}

#[tokio::test]
async fn a_replica_without_log_slave_updates_is_refused() {
    let Some(replica) = harness::solo(ServerSpec::new("no-lsu", 60).arg("--log-slave-updates=OFF"))
    else {
        return;
    };
    let primary = &servers().primary;
    let flavor = replica.flavor().await;
    let mut c = replica.conn().await;
    let status: Vec<mysql_async::Row> = c.query(flavor.replica_status_sql()).await.unwrap();
    if status.is_empty() {
        // Replicates from the primary's present position, and only this test's schema: a new
        // replica replaying the suite's whole history (gigabytes) would not catch up in time.
        let mut p = primary.conn().await;
        let now: String = p
            .query_first(servers().flavor.gtid_position_sql())
            .await
            .unwrap()
            .unwrap();
        c.query_drop("SET GLOBAL replicate_wild_do_table = 't_no_lsu.%'")
            .await
            .unwrap();
        for statement in flavor.skip_to_gtids_sql(&now) {
            c.query_drop(statement).await.unwrap();
        }
        c.query_drop(flavor.replicate_from_sql(
            &primary.host,
            primary.port,
            &primary.user,
            &primary.password,
        ))
        .await
        .unwrap();
        c.query_drop(flavor.start_replication_sql()).await.unwrap();
    }
    let schema = orders_schema("no_lsu", &[]).await;
    assert_eq!(schema, "t_no_lsu", "the replica's filter names this schema");
    let mut p = primary.conn().await;
    let count = format!("SELECT COUNT(*) FROM `{schema}`.orders");
    let rows: u64 = p.query_first(&count).await.unwrap().unwrap();
    harness::eventually(
        &format!("the extra replica to receive {schema}.orders"),
        std::time::Duration::from_secs(60),
        async || c.query_first::<u64, _>(&count).await.ok().flatten() == Some(rows),
    )
    .await;
    let err = assert_refused(
        &replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &[],
        &format!(
            "{} must have log_slave_updates enabled for executing migration",
            host_port(&replica)
        ),
    )
    .await;
    assert!(err.contains("log_slave_updates=ON"), "{err}");
}

/// Makes a CA and a server certificate for 127.0.0.1 in `dir` with the openssl command.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is needed for the TLS test: apt-get install -y openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wraith test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

#[tokio::test]
async fn tls_flags_reach_the_server_and_verify_its_certificate() {
    let dir = std::env::temp_dir().join(format!("wraith-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let path = |f: &str| dir.join(f).display().to_string();
    let Some(endpoint) = harness::solo(
        ServerSpec::new("tls", 80)
            .arg(&format!("--ssl-ca={}", path("ca.pem")))
            .arg(&format!("--ssl-cert={}", path("server.pem")))
            .arg(&format!("--ssl-key={}", path("server-key.pem"))),
    ) else {
        return;
    };
    // From now on the server refuses connections without TLS.
    let mut plain = endpoint.conn().await;
    plain
        .query_drop("SET GLOBAL require_secure_transport = ON")
        .await
        .unwrap();
    drop(plain);
    let run = |extra: Vec<String>| {
        let mut a = args(
            &endpoint,
            "app",
            "orders",
            "ADD COLUMN c INT",
            &["--allow-on-master"],
        );
        a.extend(extra);
        run_wraith_owned(a)
    };
    // Set up over TLS.
    let setup = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(endpoint.port)
        .user(Some("root"))
        .prefer_socket(false)
        .ssl_opts(mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true));
    let mut c = mysql_async::Conn::new(setup).await.unwrap();
    c.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS app; USE app; DROP TABLE IF EXISTS orders; {ORDERS}; {FILL}"
    ))
    .await
    .unwrap();

    let out = run(vec![]).await;
    assert!(
        !out.status.success(),
        "a plain connection should be refused:\n{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("add --ssl if the server requires secure connections"),
        "{}",
        stderr(&out)
    );
    let out = run(vec!["--ssl".into()]).await;
    assert!(
        !out.status.success(),
        "a self-signed CA must not verify without --ssl-ca:\n{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("TLS certificate did not verify"),
        "{}",
        stderr(&out)
    );
    let out = run(vec![format!("--ssl-ca={}", path("ca.pem"))]).await;
    assert!(
        out.status.success(),
        "--ssl-ca should verify the server:\n{}",
        stderr(&out)
    );
    let out = run(vec!["--ssl".into(), "--ssl-allow-insecure".into()]).await;
    assert!(
        out.status.success(),
        "--ssl-allow-insecure should connect:\n{}",
        stderr(&out)
    );
    let tables: Vec<String> = c
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'")
        .await
        .unwrap();
    assert_eq!(tables, vec!["orders"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn run_wraith_owned(args: Vec<String>) -> std::process::Output {
    run_wraith(&args).await
}

/// A fresh schema `name` with a table named by `chars` t's, holding rows (1, 1) and (2, 2).
async fn long_named_table(name: &str, chars: usize) -> (String, String) {
    let schema = harness::fresh_schema(name).await;
    let table = "t".repeat(chars);
    primary_sql(
        &schema,
        &[
            &format!("CREATE TABLE `{table}` (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB"),
            &format!("INSERT INTO `{table}` VALUES (1, 1), (2, 2)"),
        ],
    )
    .await;
    (schema, table)
}

#[tokio::test]
async fn a_table_name_too_long_for_its_helper_tables_is_refused_naming_the_limit() {
    // 60 characters: `_<name>_gho` would be 65, one over the server's limit.
    let (schema, table) = long_named_table("long_name", 60).await;
    assert_refused(
        &servers().replica,
        &schema,
        &table,
        "ADD COLUMN c INT",
        &[],
        "64-character limit",
    )
    .await;
}

#[tokio::test]
async fn a_view_named_as_the_table_is_refused_as_not_a_base_table() {
    let schema = orders_schema(
        "view",
        &["CREATE VIEW v AS SELECT id, customer, amount FROM orders"],
    )
    .await;
    assert_refused(
        &servers().replica,
        &schema,
        "v",
        "ADD COLUMN c INT",
        &[],
        &format!("`{schema}`.`v` is a VIEW, not a real table. Bailing out"),
    )
    .await;
}

/// The atomic cut-over's RENAME renames a gate table named after the table (`orders_ghg`): a table
/// of that name that wraith did not create is refused before anything is created, and never
/// dropped; the two-step cut-over needs no gate.
#[tokio::test]
async fn a_table_taking_the_cut_over_gates_name_is_refused_for_the_atomic_cut_over() {
    let schema = orders_schema(
        "gate_taken",
        &[
            "CREATE TABLE orders_ghg (id INT NOT NULL PRIMARY KEY)",
            "INSERT INTO orders_ghg VALUES (7)",
        ],
    )
    .await;
    let err = assert_refused(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &["--execute"],
        "a table of that name exists that wraith did not create",
    )
    .await;
    assert!(
        err.contains("`orders_ghg`") && err.contains("--cut-over=two-step"),
        "{err}"
    );
    let two_step = ["--execute", "--cut-over=two-step"];
    let out = run_wraith(&args(
        &servers().replica,
        &schema,
        "orders",
        "ADD COLUMN c INT",
        &two_step,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let primary = &servers().primary;
    assert_eq!(
        tables(primary, &schema).await,
        ["_orders_del", "orders", "orders_ghg"]
    );
    let mut c = primary.conn().await;
    let kept: Option<u32> = c
        .query_first(format!("SELECT id FROM `{schema}`.orders_ghg"))
        .await
        .unwrap();
    assert_eq!(kept, Some(7), "the user's table keeps its row");
}

#[tokio::test]
async fn a_table_name_without_room_for_the_cut_over_gate_is_refused_for_the_atomic_cut_over() {
    // 61 characters: the helper tables fit under a short prefix, the gate `<name>_ghg` (65) not.
    let (schema, table) = long_named_table("no_gate_room", 61).await;
    let prefix = "--force-table-names=short";
    let err = assert_refused(
        &servers().replica,
        &schema,
        &table,
        "ADD COLUMN c INT",
        &["--execute", prefix],
        "the atomic cut-over needs a gate table",
    )
    .await;
    assert!(err.contains("--cut-over=two-step"), "{err}");
    let two_step = ["--execute", prefix, "--cut-over=two-step"];
    let out = run_wraith(&args(
        &servers().replica,
        &schema,
        &table,
        "ADD COLUMN c INT",
        &two_step,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = servers().primary.conn().await;
    let rows: Vec<(u32, u32, Option<u32>)> = c
        .query(format!(
            "SELECT id, v, c FROM `{schema}`.`{table}` ORDER BY id"
        ))
        .await
        .unwrap();
    assert_eq!(rows, [(1, 1, None), (2, 2, None)]);
}

/// Flags that narrow what may happen (where to run, when to stop, what to throttle on, what
/// operators can rely on) that this build cannot honour, each as a script would pass it.
const REFUSED: &[&[&str]] = &[&["--analyze-ghost-table-before-cutover"]];

/// `t` with three rows, on the primary and the replica.
async fn refused_flags_schema() -> String {
    let schema = harness::fresh_schema("refused_flags").await;
    primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB",
            "INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)",
        ],
    )
    .await;
    schema
}

#[tokio::test]
async fn flags_this_build_cannot_honour_are_refused_before_anything_is_touched() {
    for n in wraith::config::NOT_IMPLEMENTED {
        if n.handling == wraith::config::Handling::Refused {
            let flag = format!("--{}", n.flag);
            assert!(
                REFUSED
                    .iter()
                    .any(|case| case[0].split('=').next() == Some(&flag)),
                "{flag} is refused but not tried here: add it to REFUSED"
            );
        }
    }
    let s = servers();
    let mut schema = refused_flags_schema().await;
    let before = table_checksum(&s.primary, &schema, "t").await;
    let mut problems = Vec::new();
    for case in REFUSED {
        let flag = case[0].split('=').next().unwrap();
        let mut a = harness::migrate_args(&schema, "t", "ADD COLUMN c INT", &[]);
        a.extend(case.iter().map(|s| s.to_string()));
        let out = run_wraith(&a).await;
        let err = stderr(&out);
        let last = err.lines().last().unwrap_or_default().to_string();
        if out.status.success() {
            problems.push(format!("{flag}: exit 0, last line: {last}"));
        } else if err.contains("panicked") {
            problems.push(format!("{flag}: panicked: {err}"));
        } else if !err.contains(&format!("{flag} is not implemented")) {
            problems.push(format!("{flag}: refused for another reason: {last}"));
        }
        for endpoint in [&s.primary, &s.replica] {
            let now = tables(endpoint, &schema).await;
            if now != vec!["t"] || table_checksum(endpoint, &schema, "t").await != before {
                problems.push(format!(
                    "{flag}: the servers changed ({}:{} holds {now:?})",
                    endpoint.host, endpoint.port
                ));
            }
        }
        if tables(&s.primary, &schema).await != vec!["t"] {
            schema = refused_flags_schema().await;
        }
    }
    // Refused before connecting: a server that cannot be reached is never tried.
    let closed = harness::ClosedPort::new();
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: closed.port,
        user: "root".into(),
        password: String::new(),
    };
    let out = run_wraith(&args(
        &endpoint,
        "d",
        "t",
        "ADD COLUMN c INT",
        &["--analyze-ghost-table-before-cutover", "--execute"],
    ))
    .await;
    let err = stderr(&out);
    if out.status.success()
        || !err.contains("--analyze-ghost-table-before-cutover is not implemented")
    {
        problems.push(format!(
            "--analyze-ghost-table-before-cutover with no server to reach: {}",
            err.lines().last().unwrap_or_default()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
