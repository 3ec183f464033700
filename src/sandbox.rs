//! Throw-away MariaDB servers for `wraith demo` and the test suite.
//!
//! In: the `mariadbd` and `mariadb-install-db` programs of Debian's `mariadb-server`.
//! Out: running servers on free ports of 127.0.0.1, each in its own temporary directory, with
//! row-based binary logging, full row images, `log_slave_updates` and GTIDs; optionally a replica
//! of one of them.
//!
//! Nothing outlives its owner: each server runs under a small shell watchdog that kills it and
//! removes its directory as soon as the owning process is gone, however that process ended
//! (a failed test, Ctrl-C in the demo, a panic). Dropping a [`Server`] stops it at once.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;

use crate::mysql::Flavor;

/// How to install the server, said wherever it is missing.
pub const INSTALL_HINT: &str =
    "install it with `apt-get update && apt-get install -y mariadb-server` \
(Debian/Ubuntu), or point the tests at running servers with WRAITH_TEST_PRIMARY and \
WRAITH_TEST_REPLICA (mysql://user:password@host:port)";

/// Settings of one throw-away server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// A short name used in the directory name and in messages.
    pub name: String,
    pub server_id: u32,
    /// Extra `mariadbd` options, appended after the defaults (a later option wins).
    pub extra_args: Vec<String>,
}

impl ServerSpec {
    pub fn new(name: &str, server_id: u32) -> Self {
        ServerSpec {
            name: name.to_string(),
            server_id,
            extra_args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }
}

/// One running `mariadbd`; root has an empty password over TCP.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    mariadbd_pid: u32,
    watchdog: Child,
}

impl Server {
    /// `mysql://root@127.0.0.1:<port>`: the URL form the tests and the demo pass around.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// A new connection as root, with no default database.
    pub async fn conn(&self) -> Result<mysql_async::Conn> {
        connect_root(self.port).await
    }

    /// The `mariadbd` process id (the bench reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.mariadbd_pid
    }

    /// The server's error log, for messages when something goes wrong.
    pub fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid we started; a pid already gone only returns ESRCH.
        unsafe {
            libc::kill(self.mariadbd_pid as i32, libc::SIGKILL);
        }
        // The watchdog notices, removes the directory and exits.
        let _ = self.watchdog.wait();
    }
}

/// A primary and its replica.
#[derive(Debug)]
pub struct Pair {
    pub primary: Server,
    pub replica: Server,
}

impl Pair {
    /// Starts a primary and a replica that replicates from it with GTIDs.
    pub async fn start(prefix: &str) -> Result<Pair> {
        Pair::start_with(prefix, &[]).await
    }

    /// [`Pair::start`] with extra `mariadbd` options for both servers (a later option wins).
    pub async fn start_with(prefix: &str, extra_args: &[&str]) -> Result<Pair> {
        let spec = |name: &str, id: u32| {
            extra_args
                .iter()
                .fold(ServerSpec::new(&format!("{prefix}-{name}"), id), |s, a| {
                    s.arg(a)
                })
        };
        let (primary, replica) = tokio::try_join!(
            start_server(spec("primary", 1)),
            start_server(spec("replica", 2)),
        )?;
        attach_replica(&replica, &primary).await?;
        Ok(Pair { primary, replica })
    }

    /// Waits until the replica has applied everything the primary has written so far.
    pub async fn sync(&self) -> Result<()> {
        sync_replica(&self.primary, &self.replica).await
    }
}

/// Finds a server program on PATH or in the usual system folders.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/usr/local/sbin",
                "/usr/bin",
                "/usr/local/mysql/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn required_program(name: &str) -> Result<PathBuf> {
    find_program(name).ok_or_else(|| anyhow!("`{name}` was not found; {INSTALL_HINT}"))
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// A data directory made by `mariadb-install-db` once per process and copied for each server
/// (initialising one takes seconds; copying takes milliseconds).
fn template_datadir() -> Result<&'static Path> {
    static TEMPLATE: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    let made = TEMPLATE.get_or_init(|| make_template().map_err(|e| format!("{e:#}")));
    match made {
        Ok(path) => Ok(path.as_path()),
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn make_template() -> Result<PathBuf> {
    let install = required_program("mariadb-install-db")?;
    let _ = required_program("mariadbd")?;
    let dir = tempfile::Builder::new()
        .prefix("wraith-template-")
        .tempdir()?
        .keep();
    let data = dir.join("data");
    let mut cmd = Command::new(&install);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        // Its own temporary files stay in its own directory, away from other installs in /tmp.
        .env("TMPDIR", &dir)
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if is_root() {
        cmd.arg("--user=root");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", install.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        bail!(
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // The template is removed when this process exits, by a watchdog like the servers'.
    spawn_dir_reaper(&dir)?;
    Ok(data)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Removes `dir` once this process has exited.
fn spawn_dir_reaper(dir: &Path) -> Result<()> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf "$2""#;
    Command::new("sh")
        .args(["-c", script, "reaper"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a signal to ours (Ctrl-C, a killed test run) must not stop the
        // watchdog before it has cleaned up.
        .process_group(0)
        .spawn()
        .context("starting the cleanup watchdog")?;
    Ok(())
}

/// Starts one server with the sandbox defaults and waits until it answers.
pub async fn start_server(spec: ServerSpec) -> Result<Server> {
    let mariadbd = required_program("mariadbd")?;
    let template = template_datadir()?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("wraith-{}-", spec.name))
        .tempdir()?
        .keep();
    let data = dir.join("data");
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&data)
        .status()?;
    if !status.success() {
        bail!(
            "copying the template data directory to {} failed",
            data.display()
        );
    }
    let port = free_port()?;
    let mut args: Vec<String> = vec![
        "--no-defaults".into(),
        format!("--datadir={}", data.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--socket={}/sock", dir.display()),
        format!("--pid-file={}/pid", dir.display()),
        format!("--tmpdir={}", dir.display()),
        format!("--log-error={}/error.log", dir.display()),
        format!("--server-id={}", spec.server_id),
        format!("--log-bin={}/bin", dir.display()),
        format!("--relay-log={}/relay", dir.display()),
        "--binlog-format=ROW".into(),
        "--binlog-row-image=FULL".into(),
        "--log-slave-updates=ON".into(),
        "--innodb-buffer-pool-size=128M".into(),
        "--innodb-log-file-size=48M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--sync-binlog=0".into(),
        "--max-connections=400".into(),
        // Replicas apply in parallel, so a replica keeps up with many concurrent writers even
        // on a small machine (as production replicas usually do).
        "--slave-parallel-threads=4".into(),
        "--slave-parallel-mode=optimistic".into(),
        "--skip-name-resolve=OFF".into(),
    ];
    if plugin_available("metadata_lock_info") {
        args.push("--plugin-load-add=metadata_lock_info".into());
    }
    if is_root() {
        args.push("--user=root".into());
    }
    args.extend(spec.extra_args.iter().cloned());

    // The watchdog: runs mariadbd, kills it when this process is gone, then removes the directory.
    let script = r#"owner="$1"; dir="$2"; shift 2
"$@" & m=$!
echo "$m" > "$dir/mariadbd.pid"
while kill -0 "$owner" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 0.5; done
kill -9 "$m" 2>/dev/null; wait "$m" 2>/dev/null
rm -rf "$dir""#;
    let watchdog = Command::new("sh")
        .args(["-c", script, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(&dir)
        .arg(&mariadbd)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a signal to ours (Ctrl-C, a killed test run) must not stop the
        // watchdog before it has cleaned up.
        .process_group(0)
        .spawn()
        .context("starting mariadbd")?;

    let deadline = Instant::now() + Duration::from_secs(60);
    let pid_file = dir.join("mariadbd.pid");
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        if Instant::now() > deadline {
            bail!("mariadbd for {} did not start", spec.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let server = Server {
        name: spec.name.clone(),
        port,
        dir,
        mariadbd_pid: pid,
        watchdog,
    };
    loop {
        match connect_root(port).await {
            Ok(conn) => {
                conn.disconnect().await.ok();
                return Ok(server);
            }
            Err(e) => {
                // SAFETY: signal 0 only checks that the process exists.
                let alive = unsafe { libc::kill(pid as i32, 0) == 0 };
                if !alive || Instant::now() > deadline {
                    bail!(
                        "mariadbd for {} did not become ready on port {port}: {e:#}\n{}",
                        spec.name,
                        server.error_log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn plugin_available(name: &str) -> bool {
    [
        "/usr/lib/mysql/plugin",
        "/usr/lib/x86_64-linux-gnu/mariadb19/plugin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(format!("{name}.so")).is_file())
}

/// Connects as root with an empty password to 127.0.0.1:`port`.
pub async fn connect_root(port: u16) -> Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false);
    let conn = tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts))
        .await
        .map_err(|_| anyhow!("connecting to 127.0.0.1:{port} timed out"))??;
    Ok(conn)
}

/// Makes `replica` replicate from `primary` with GTIDs and waits until it runs.
pub async fn attach_replica(replica: &Server, primary: &Server) -> Result<()> {
    let mut conn = replica.conn().await?;
    let flavor = Flavor::detect(&mut conn).await?;
    conn.query_drop(flavor.replicate_from_sql("127.0.0.1", primary.port, "root", ""))
        .await?;
    conn.query_drop(flavor.start_replication_sql()).await?;
    sync_replica(primary, replica).await
}

/// Waits (up to 60 s) until `replica` has applied everything `primary` has binlogged so far.
pub async fn sync_replica(primary: &Server, replica: &Server) -> Result<()> {
    let mut p = primary.conn().await?;
    let flavor = Flavor::detect(&mut p).await?;
    let pos: String = p
        .query_first(flavor.gtid_position_sql())
        .await?
        .unwrap_or_default();
    let mut r = replica.conn().await?;
    let flavor = Flavor::detect(&mut r).await?;
    let waited: Option<Option<i64>> = r
        .exec_first(flavor.wait_for_gtids_sql(), (pos.clone(), 60))
        .await?;
    if waited.flatten() != Some(0) {
        let status: Vec<mysql_async::Row> = r.query(flavor.replica_status_sql()).await?;
        let err = status
            .first()
            .and_then(|row| row.get_opt::<String, _>("Last_Error"))
            .and_then(|v| v.ok())
            .unwrap_or_default();
        bail!("replica {} did not reach {pos}: {err}", replica.name);
    }
    Ok(())
}
