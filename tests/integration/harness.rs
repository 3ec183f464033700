//! Real servers for the tests: a MariaDB primary and replica started once per test run
//! (`wraith::sandbox`), or external servers named by WRAITH_TEST_PRIMARY and WRAITH_TEST_REPLICA
//! (`mysql://user:password@host:port`, e.g. the MySQL 8.4, MySQL 8.0 or MariaDB 11.4 pairs of
//! `docker/`). Each test gets its own schema. If `mariadbd` is missing the tests fail and say how
//! to install it.
//!
//! SQL that differs between MySQL and MariaDB (waiting for a replica, replication statements)
//! comes from wraith's own [`Flavor`], read from each server; rows are generated with [`seq`],
//! which both understand. Against MySQL, a test of something only MariaDB has, or one that needs
//! servers of its own (the harness starts MariaDB ones only), is skipped and says so on stderr
//! ([`skip_on_mysql`], [`solo`], [`own_pair`]); nothing else is ever skipped.

#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::io::AsyncReadExt;
use wraith::mysql::flavor::Kind;
use wraith::mysql::sql::{qualified, quote_ident};
use wraith::mysql::Flavor;
use wraith::sandbox::{self, Pair, Server, ServerSpec};

/// Where a test server is and how to log in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Endpoint {
    fn from_url(url: &str) -> Endpoint {
        let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad server URL {url}: {e}"));
        Endpoint {
            host: opts.ip_or_hostname().to_string(),
            port: opts.tcp_port(),
            user: opts.user().unwrap_or("root").to_string(),
            password: opts.pass().unwrap_or("").to_string(),
        }
    }

    fn of(server: &Server) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: server.port,
            user: "root".into(),
            password: String::new(),
        }
    }

    pub async fn conn(&self) -> Conn {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false);
        Conn::new(opts)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}:{}: {e}", self.host, self.port))
    }

    /// What the server is (MySQL or MariaDB, and its version).
    pub async fn flavor(&self) -> Flavor {
        Flavor::detect(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("reading the version of {}:{}: {e}", self.host, self.port))
    }

    /// The connection flags wraith takes for this server.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--host={}", self.host),
            format!("--port={}", self.port),
            format!("--user={}", self.user),
        ];
        if !self.password.is_empty() {
            flags.push(format!("--password={}", self.password));
        }
        flags
    }
}

pub struct Servers {
    pub primary: Endpoint,
    pub replica: Endpoint,
    /// The primary's flavor (the replica's is the same kind).
    pub flavor: Flavor,
    _pair: Option<Pair>,
}

/// WRAITH_TEST_PRIMARY and WRAITH_TEST_REPLICA, when both are set.
fn external_urls() -> Option<(String, String)> {
    match (
        std::env::var("WRAITH_TEST_PRIMARY"),
        std::env::var("WRAITH_TEST_REPLICA"),
    ) {
        (Ok(p), Ok(r)) => Some((p, r)),
        _ => None,
    }
}

/// The shared primary and replica, started on first use.
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let (primary, replica, pair) = match external_urls() {
            Some((p, r)) => (Endpoint::from_url(&p), Endpoint::from_url(&r), None),
            None => {
                let pair = on_own_runtime(Pair::start_with("test", SHARED_SERVER_ARGS))
                    .unwrap_or_else(|e| panic!("cannot start the test servers: {e:#}"));
                (
                    Endpoint::of(&pair.primary),
                    Endpoint::of(&pair.replica),
                    Some(pair),
                )
            }
        };
        let flavor = on_own_runtime({
            let primary = primary.clone();
            async move { primary.flavor().await }
        });
        Servers {
            primary,
            replica,
            flavor,
            _pair: pair,
        }
    })
}

/// Whether the shared servers are MySQL: `true` (after saying on stderr that the running test is
/// skipped, and `why`) when a test of something only MariaDB has must not run. Without
/// WRAITH_TEST_PRIMARY the servers are the harness's own MariaDB pair, which this does not start.
pub fn skip_on_mysql(why: &str) -> bool {
    if external_urls().is_none() || servers().flavor.kind != Kind::MySql {
        return false;
    }
    let thread = std::thread::current();
    eprintln!(
        "skipped {}: {why}; the servers are {} (WRAITH_TEST_PRIMARY)",
        thread.name().unwrap_or("a test"),
        servers().flavor
    );
    true
}

/// Settings of the shared pair beyond the sandbox's: rows of 32 MB (`memory`) need a packet
/// that holds their hex literal (64 MB and a little) in wraith's applier, and their
/// `REPEAT(...)` in the writers.
pub const SHARED_SERVER_ARGS: &[&str] = &["--max-allowed-packet=128M"];

/// A primary and replica of their own, started on first use, for tests that need global
/// settings of their own on both (`extra_args`). Keyed by name; the first call's settings win.
/// `None` when the suite runs against MySQL: the harness starts MariaDB servers only, and the
/// test is skipped ([`skip_on_mysql`]).
pub fn own_pair(name: &str, extra_args: &[&str]) -> Option<(Endpoint, Endpoint)> {
    if skip_on_mysql(&format!(
        "it needs a primary and replica of its own ({name}), and the harness starts MariaDB ones only"
    )) {
        return None;
    }
    use std::collections::HashMap;
    use std::sync::Mutex;
    static PAIRS: OnceLock<Mutex<HashMap<String, Pair>>> = OnceLock::new();
    let pairs = PAIRS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pairs = pairs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pair) = pairs.get(name) {
        return Some((Endpoint::of(&pair.primary), Endpoint::of(&pair.replica)));
    }
    let (prefix, args) = (
        name.to_string(),
        extra_args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    let pair = on_own_runtime(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Pair::start_with(&prefix, &args).await
    })
    .unwrap_or_else(|e| panic!("cannot start server pair {name}: {e:#}"));
    let endpoints = (Endpoint::of(&pair.primary), Endpoint::of(&pair.replica));
    pairs.insert(name.to_string(), pair);
    Some(endpoints)
}

/// A server of its own, started on first use, for tests that change global settings.
/// Keyed by name; the spec of the first call wins. `None` when the suite runs against MySQL:
/// the harness starts MariaDB servers only, and the test is skipped ([`skip_on_mysql`]).
pub fn solo(spec: ServerSpec) -> Option<Endpoint> {
    if skip_on_mysql(&format!(
        "it needs a server of its own ({}), and the harness starts MariaDB ones only",
        spec.name
    )) {
        return None;
    }
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SOLOS: OnceLock<Mutex<HashMap<String, Server>>> = OnceLock::new();
    let solos = SOLOS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut solos = solos.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = solos.get(&spec.name) {
        return Some(Endpoint::of(server));
    }
    let name = spec.name.clone();
    let server = on_own_runtime(sandbox::start_server(spec))
        .unwrap_or_else(|e| panic!("cannot start server {name}: {e:#}"));
    let endpoint = Endpoint::of(&server);
    solos.insert(name, server);
    Some(endpoint)
}

/// Runs a future to completion on a fresh runtime in a fresh thread, so it can be called from
/// inside a test's own runtime.
fn on_own_runtime<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut)
    })
    .join()
    .expect("server start-up thread panicked")
}

/// Creates (anew) a schema named after the test on the shared primary.
pub async fn fresh_schema(name: &str) -> String {
    let schema = format!("t_{name}");
    fresh_schema_on(&servers().primary, &schema).await;
    schema
}

/// Drops `schema` on `primary` if it exists, and creates it empty.
pub async fn fresh_schema_on(primary: &Endpoint, schema: &str) {
    let mut c = primary.conn().await;
    let quoted = quote_ident(schema);
    c.query_drop(format!("DROP DATABASE IF EXISTS {quoted}"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE {quoted}"))
        .await
        .unwrap();
}

/// Waits (up to 60 s) until the ghost table `ghost` of `schema` holds a row: the copy has
/// started. Then `throttle` is created, so the copy holds still mid-way; returns the rows copied
/// by then.
pub async fn hold_copy_once_started(
    c: &mut Conn,
    schema: &str,
    ghost: &str,
    throttle: &std::path::Path,
) -> u64 {
    let count = format!(
        "SELECT COUNT(*) FROM {}",
        wraith::mysql::sql::qualified(schema, ghost)
    );
    eventually("the copy to start", Duration::from_secs(60), async || {
        c.query_first::<u64, _>(&count)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
            > 0
    })
    .await;
    std::fs::write(throttle, "").unwrap();
    c.query_first(&count).await.unwrap().unwrap_or(0)
}

/// Runs SQL statements on the primary in `schema`, then waits for the replica.
pub async fn primary_sql(schema: &str, statements: &[&str]) {
    let s = servers();
    let mut c = s.primary.conn().await;
    c.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .unwrap();
    for stmt in statements {
        c.query_drop(*stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    sync_replica().await;
}

/// Waits until the shared replica has applied everything written on the primary so far.
pub async fn sync_replica() {
    let s = servers();
    sync_replica_of(&s.primary, &s.replica).await;
}

/// Waits (up to 120 s) until `replica` has applied everything `primary` has binlogged so far.
pub async fn sync_replica_of(primary: &Endpoint, replica: &Endpoint) {
    let mut p = primary.conn().await;
    let flavor = Flavor::detect(&mut p).await.unwrap();
    let pos: String = p
        .query_first(flavor.gtid_position_sql())
        .await
        .unwrap()
        .unwrap_or_default();
    let mut r = replica.conn().await;
    let flavor = Flavor::detect(&mut r).await.unwrap();
    let waited: Option<Option<i64>> = r
        .exec_first(flavor.wait_for_gtids_sql(), (&pos, 120))
        .await
        .unwrap();
    assert_eq!(
        waited.flatten(),
        Some(0),
        "the replica on port {} did not catch up with the primary's {pos}",
        replica.port
    );
}

/// A derived table of the integers `from..=to` in column `seq`, ascending, for `SELECT ... FROM
/// {seq(1, 1000)}`: MariaDB's `seq_1_to_1000` in SQL MySQL 8 understands too. Two recursive
/// CTEs of at most 500 rows each, well inside MySQL's `cte_max_recursion_depth` and MariaDB's
/// `max_recursive_iterations` (1000 by default); at most 250,000 rows.
pub fn seq(from: u64, to: u64) -> String {
    const WIDTH: u64 = 500;
    let rows = (to + 1).saturating_sub(from);
    let width = rows.clamp(1, WIDTH);
    let blocks = rows.div_ceil(width).max(1);
    assert!(
        blocks <= WIDTH,
        "seq({from}, {to}): at most {} rows",
        WIDTH * WIDTH
    );
    format!(
        "(WITH RECURSIVE seq_lo(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq_lo WHERE n + 1 < {width}), \
         seq_hi(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq_hi WHERE n + 1 < {blocks}) \
         SELECT {from} + seq_hi.n * {width} + seq_lo.n AS seq FROM seq_hi, seq_lo \
         WHERE seq_hi.n * {width} + seq_lo.n < {rows} ORDER BY seq LIMIT {rows}) AS seq_{from}_to_{to}"
    )
}

/// The tables of `schema` on `endpoint`, sorted byte by byte (`_t_del` before `t`).
pub async fn tables(endpoint: &Endpoint, schema: &str) -> Vec<String> {
    let mut c = endpoint.conn().await;
    let mut names: Vec<String> = c
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (schema,),
        )
        .await
        .unwrap();
    names.sort();
    names
}

/// A deterministic checksum of a table's rows: (row count, SHA-256 over the exact bytes of every
/// row's columns). Two tables with the same rows give the same answer; a change to any byte of
/// any value (a DECIMAL's last digit, a FLOAT's last bit) changes it.
pub async fn table_checksum(endpoint: &Endpoint, schema: &str, table: &str) -> (u64, String) {
    let mut c = endpoint.conn().await;
    let columns = wraith::verify::columns(&mut c, schema, table)
        .await
        .unwrap();
    assert!(!columns.is_empty(), "table {schema}.{table} does not exist");
    c.query_drop("SET SESSION group_concat_max_len = 1073741824")
        .await
        .unwrap();
    let cols: Vec<String> = columns
        .iter()
        .map(|(col, ty)| {
            format!(
                "IFNULL(HEX({}), 'NULL')",
                wraith::verify::exact_bytes("", col, ty)
            )
        })
        .collect();
    let row: (u64, Option<String>) = c
        .query_first(format!(
            "SELECT COUNT(*), SHA2(GROUP_CONCAT(SHA2(CONCAT_WS('|', {cols}), 256) ORDER BY 1 SEPARATOR ''), 256) \
             FROM {}",
            qualified(schema, table),
            cols = cols.join(", "),
        ))
        .await
        .unwrap()
        .unwrap();
    (row.0, row.1.unwrap_or_default())
}

/// A `--replica-server-id` no other wraith of this test run uses: migrations run side by side
/// here, each reading a binlog with its own server id.
pub fn unique_server_id_flag() -> String {
    static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    format!(
        "--replica-server-id={}",
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// wraith's arguments to migrate `schema`.`table` for real, reading the replica, with a binlog
/// server id of its own, replacing a stale control socket; `extra` flags are appended (a
/// repeated flag: the last one wins).
pub fn migrate_args(schema: &str, table: &str, alter: &str, extra: &[&str]) -> Vec<String> {
    let mut a = migrate_args_on(&servers().replica, schema, table, alter);
    a.push("--chunk-size=500".into());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// wraith's arguments to migrate `schema`.`table` for real, reading `server` (a pair of the
/// test's own, say), with a binlog server id of its own, heartbeats every 50 ms, replacing a
/// stale control socket; the caller appends its own flags.
pub fn migrate_args_on(server: &Endpoint, schema: &str, table: &str, alter: &str) -> Vec<String> {
    let mut a = server.flags();
    a.extend([
        unique_server_id_flag(),
        format!("--database={schema}"),
        format!("--table={table}"),
        format!("--alter={alter}"),
        "--execute".into(),
        "--heartbeat-interval-millis=50".into(),
        // The default socket (/tmp/gh-ost.<schema>.<table>.sock) of a run a test killed is
        // replaced by the next run on the table.
        "--initially-drop-socket-file".into(),
    ]);
    a
}

/// The wraith binary built for these tests.
pub fn wraith_bin() -> &'static str {
    env!("CARGO_BIN_EXE_wraith")
}

/// The longest any wraith run of the suite may take before the test fails (and wraith is killed).
pub const WRAITH_RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs wraith with `args` (and no standard input) and returns what it did; fails the test, with
/// wraith's log, if it runs longer than [`WRAITH_RUN_LIMIT`]. With WRAITH_TEST_STDERR=inherit,
/// wraith's log goes straight to the terminal (for debugging; the returned stderr is then empty).
pub async fn run_wraith(args: &[String]) -> Output {
    Running::start(args).finish(WRAITH_RUN_LIMIT).await
}

/// A wraith process running in the background; its output is read as it comes so it never
/// blocks on a full pipe.
pub struct Running {
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl Running {
    pub fn start(args: &[String]) -> Running {
        Running::start_with_env(args, &[])
    }

    /// [`Running::start`] with extra environment variables.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Running {
        let inherit = std::env::var("WRAITH_TEST_STDERR").as_deref() == Ok("inherit");
        let mut cmd = tokio::process::Command::new(wraith_bin());
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if !inherit {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("starting wraith");
        let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf).await;
                }
                buf
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("wraith is running")
    }

    /// wraith has ended (its output is still there for [`Running::finish`]).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (at most `limit`) for wraith to end.
    pub async fn finish(mut self, limit: Duration) -> Output {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("waiting for wraith"),
            Err(_) => {
                let _ = self.child.kill().await;
                let err =
                    String::from_utf8_lossy(&self.stderr.await.unwrap_or_default()).into_owned();
                // The last lines first: where it waited (a log cut to its first lines still
                // shows them).
                let lines: Vec<&str> = err.lines().collect();
                let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
                panic!(
                    "wraith did not finish within {limit:?}; its last lines:\n{tail}\n--- its whole log:\n{err}"
                );
            }
        };
        Output {
            status,
            stdout: self.stdout.await.unwrap_or_default(),
            stderr: self.stderr.await.unwrap_or_default(),
        }
    }
}

/// How many of its last lines a wraith that did not finish in time shows first.
const TAIL_LINES: usize = 12;

/// Runs wraith with `args`, writing `input` to its standard input.
pub async fn run_wraith_with_input(args: &[String], input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(wraith_bin())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running wraith");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("writing stdin");
    drop(stdin);
    child.wait_with_output().await.expect("running wraith")
}

/// wraith's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port of 127.0.0.1 that is bound but not listening while this value lives: connecting to it
/// is refused, and no server can take it in the meantime (unlike a port found free and released).
pub struct ClosedPort {
    fd: i32,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        // SAFETY: plain socket(2)/bind(2)/getsockname(2) calls on a socket this value owns.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket(2) failed");
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            addr.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
            assert_eq!(bound, 0, "bind(2) on 127.0.0.1 failed");
            let mut out: libc::sockaddr_in = std::mem::zeroed();
            let mut out_len = len;
            let named =
                libc::getsockname(fd, &mut out as *mut _ as *mut libc::sockaddr, &mut out_len);
            assert_eq!(named, 0, "getsockname(2) failed");
            ClosedPort {
                fd,
                port: u16::from_be(out.sin_port),
            }
        }
    }
}

impl Drop for ClosedPort {
    fn drop(&mut self) {
        // SAFETY: closing the socket this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Polls `ready` every 10 ms until it says yes; fails the test, saying it waited for `what`, if
/// that takes longer than `limit`. Tests wait for a state, never for a fixed time.
pub async fn eventually(what: &str, limit: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready().await {
        assert!(
            started.elapsed() < limit,
            "waited {limit:?} for {what}, in vain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn seq_gives_every_integer_of_its_range_once_in_order() {
    let mut c = servers().primary.conn().await;
    for (from, to) in [
        (1, 1),
        (0, 4),
        (1, 500),
        (1, 501),
        (1, 2000),
        (0, 19_999),
        (1, 100_000),
    ] {
        let rows: Vec<i64> = c
            .query(format!("SELECT seq FROM {}", seq(from, to)))
            .await
            .unwrap();
        let expected: Vec<i64> = (from as i64..=to as i64).collect();
        assert!(
            rows == expected,
            "seq({from}, {to}) gave {} rows",
            rows.len()
        );
    }
    let none: Vec<i64> = c
        .query(format!("SELECT seq FROM {}", seq(1, 0)))
        .await
        .unwrap();
    assert!(none.is_empty());
}
