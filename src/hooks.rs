//! The `gh-ost-on-*` hooks: executables in `--hooks-path` run at gh-ost's moments of a migration.
//!
//! In: the [`Config`], the endpoints once known, and the run's [`Progress`] once the copy starts.
//! Out: each executable whose name starts with the hook's name, run in name order with gh-ost's
//! `GH_OST_*` environment (docs/gh-ost.md, "Hooks"), its output passed to the log; the first one
//! that fails fails the call, so the caller fails its step. Invariants: no hook receives a
//! password (not in a `GH_OST_*` variable, not in the inherited environment); no hook runs longer
//! than [`HOOK_TIMEOUT`], after which it and every process it started are killed.
//!
//! The moments, as gh-ost's `migrator.go` calls them: `startup` first thing; `validated` once the
//! ghost table is built and checked; `rowcount-complete` after the exact count
//! (`--exact-rowcount` only); `before-row-copy` as the copy starts; `status` every
//! `--hooks-status-interval` seconds from then on (a failure is only logged); `row-copy-complete`;
//! `before-cut-over` right after the copy (before any postponement, as gh-ost does, and in a noop
//! run too); `begin-postponed` once, when the cut-over is postponed; `success` after cleanup, or
//! `failure` when the run fails (its own failure is only logged). `interactive-command` is
//! [`Hooks::on_interactive_command`], for the control socket. `stop-replication`
//! runs before `--test-on-replica` stops replication for the cut-over, `start-replication` after
//! such a cut-over failed (replication is started again). `batch-copy-retry` never runs: wraith
//! does not retry a chunk on its own, the only reason gh-ost calls it.
//!
//! Where wraith differs from gh-ost, on purpose: gh-ost runs a hook for as long as it takes and
//! runs a non-executable file (and fails); wraith bounds the time and skips such a file with a
//! warning. `GH_OST_STATUS` and `GH_OST_COMMAND` hold the plain text (gh-ost wraps it in single
//! quotes). `GH_OST_INSPECTED_HOST` and `GH_OST_MIGRATED_HOST` are `host:port` as wraith
//! connects to them (gh-ost reads `@@hostname`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Config;
use crate::mysql::Endpoint;
use crate::progress::Progress;

/// The longest one hook file may run. gh-ost waits for ever; a hook stuck on a network call
/// would then hold the migration (and a cut-over waiting on it) for ever. Ten minutes leaves room
/// for a slow notification or an approval step, and a hung hook fails its step instead.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// The hooks of docs/gh-ost.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Startup,
    Validated,
    RowCountComplete,
    BeforeRowCopy,
    Status,
    InteractiveCommand,
    BatchCopyRetry,
    RowCopyComplete,
    BeginPostponed,
    BeforeCutOver,
    StopReplication,
    StartReplication,
    Success,
    Failure,
}

impl Hook {
    /// The prefix of the hook's file names.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Startup => "gh-ost-on-startup",
            Hook::Validated => "gh-ost-on-validated",
            Hook::RowCountComplete => "gh-ost-on-rowcount-complete",
            Hook::BeforeRowCopy => "gh-ost-on-before-row-copy",
            Hook::Status => "gh-ost-on-status",
            Hook::InteractiveCommand => "gh-ost-on-interactive-command",
            Hook::BatchCopyRetry => "gh-ost-on-batch-copy-retry",
            Hook::RowCopyComplete => "gh-ost-on-row-copy-complete",
            Hook::BeginPostponed => "gh-ost-on-begin-postponed",
            Hook::BeforeCutOver => "gh-ost-on-before-cut-over",
            Hook::StopReplication => "gh-ost-on-stop-replication",
            Hook::StartReplication => "gh-ost-on-start-replication",
            Hook::Success => "gh-ost-on-success",
            Hook::Failure => "gh-ost-on-failure",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot read --hooks-path {dir}: {source}; check the folder and run again")]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the {hook} hook {path} could not be started: {source}; fix it or remove it from --hooks-path, and run again")]
    Start {
        hook: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {hook} hook {path} failed ({status}), which fails this step (its output is in the log above); fix it or remove it from --hooks-path, and run again")]
    Failed {
        hook: &'static str,
        path: PathBuf,
        status: String,
    },
    #[error("the {hook} hook {path} ran longer than {}s and was killed, which fails this step; make it finish sooner and run again", HOOK_TIMEOUT.as_secs())]
    TimedOut { hook: &'static str, path: PathBuf },
}

/// The hooks of one run. Cheap to clone; without `--hooks-path` every call does nothing.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// The variables that do not change during the run.
    fixed: Vec<(&'static str, String)>,
    /// Passwords: never in a hook's environment.
    secrets: Vec<String>,
    started: Instant,
    live: Mutex<Live>,
}

#[derive(Debug)]
struct Live {
    inspected: String,
    migrated: String,
    progress: Option<Arc<Progress>>,
}

impl Hooks {
    pub fn new(cfg: &Config) -> Hooks {
        let flags = &cfg.flags;
        if flags.hooks_path.is_empty() {
            return Hooks::default();
        }
        let configured = format!("{}:{}", flags.host, flags.port);
        let fixed = vec![
            ("GH_OST_DATABASE_NAME", cfg.database.clone()),
            ("GH_OST_TABLE_NAME", cfg.table.clone()),
            ("GH_OST_GHOST_TABLE_NAME", cfg.ghost_table()),
            ("GH_OST_OLD_TABLE_NAME", cfg.old_table()),
            ("GH_OST_DDL", flags.alter.clone().unwrap_or_default()),
            ("GH_OST_EXECUTING_HOST", hostname()),
            ("GH_OST_HOOKS_HINT", flags.hooks_hint.clone()),
            ("GH_OST_HOOKS_HINT_OWNER", flags.hooks_hint_owner.clone()),
            ("GH_OST_HOOKS_HINT_TOKEN", flags.hooks_hint_token.clone()),
            ("GH_OST_DRY_RUN", (!cfg.execute()).to_string()),
            ("GH_OST_REVERT", flags.revert.to_string()),
        ];
        Hooks {
            inner: Some(Arc::new(Inner {
                dir: PathBuf::from(&flags.hooks_path),
                fixed,
                secrets: [&cfg.password, &cfg.master_password]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .cloned()
                    .collect(),
                started: Instant::now(),
                live: Mutex::new(Live {
                    inspected: configured.clone(),
                    migrated: configured,
                    progress: None,
                }),
            })),
        }
    }

    /// The servers, once the primary is known.
    pub fn set_hosts(&self, inspected: &Endpoint, migrated: &Endpoint) {
        if let Some(inner) = &self.inner {
            let mut live = crate::lock(&inner.live);
            live.inspected = inspected.to_string();
            live.migrated = migrated.to_string();
        }
    }

    /// The run's counters, once the copy is about to start.
    pub fn set_progress(&self, progress: &Arc<Progress>) {
        if let Some(inner) = &self.inner {
            crate::lock(&inner.live).progress = Some(progress.clone());
        }
    }

    /// Runs `hook`'s files in name order; stops at the first that fails.
    pub async fn run(&self, hook: Hook) -> Result<(), HookError> {
        self.run_with(hook, &[]).await
    }

    /// [`Hooks::run`] with per-hook variables (`extra` overrides a common one of the same name).
    pub async fn run_with(&self, hook: Hook, extra: &[(&str, String)]) -> Result<(), HookError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        for path in inner.files(hook)? {
            info!("running the {} hook {}", hook.name(), path.display());
            inner.run_file(hook, &path, extra).await?;
        }
        Ok(())
    }

    /// `gh-ost-on-interactive-command`, with the command as `GH_OST_COMMAND`: for the control
    /// socket, before it acts on a command.
    pub async fn on_interactive_command(&self, command: &str) -> Result<(), HookError> {
        self.run_with(
            Hook::InteractiveCommand,
            &[("GH_OST_COMMAND", command.into())],
        )
        .await
    }

    /// `gh-ost-on-failure`: its own failure is only logged (the run has failed already).
    pub async fn on_failure(&self) {
        if let Err(e) = self.run(Hook::Failure).await {
            warn!("{e}");
        }
    }

    /// Runs `gh-ost-on-status` with the status line every `--hooks-status-interval` seconds
    /// (none when it is 0 or less) until the returned guard is dropped. A failure is logged.
    pub fn status_every(&self, seconds: i64) -> StatusHooks {
        let Some(inner) = &self.inner else {
            return StatusHooks(None);
        };
        if seconds <= 0 || inner.files(Hook::Status).is_ok_and(|f| f.is_empty()) {
            return StatusHooks(None);
        }
        let hooks = self.clone();
        let every = Duration::from_secs(seconds as u64);
        StatusHooks(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let line = hooks
                    .progress()
                    .map(|p| p.status_line())
                    .unwrap_or_default();
                if let Err(e) = hooks
                    .run_with(Hook::Status, &[("GH_OST_STATUS", line)])
                    .await
                {
                    warn!("{e} (a failing status hook is only logged; the migration goes on)");
                }
            }
        })))
    }

    fn progress(&self) -> Option<Arc<Progress>> {
        let inner = self.inner.as_ref()?;
        let live = crate::lock(&inner.live);
        live.progress.clone()
    }
}

/// Stops the periodic status hooks when dropped (a status hook running then is killed).
#[derive(Debug)]
pub struct StatusHooks(Option<tokio::task::JoinHandle<()>>);

impl Drop for StatusHooks {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Inner {
    /// The executable files of `hook`, in name order.
    fn files(&self, hook: Hook) -> Result<Vec<PathBuf>, HookError> {
        use std::os::unix::fs::PermissionsExt;
        let entries = std::fs::read_dir(&self.dir).map_err(|source| HookError::Folder {
            dir: self.dir.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(hook.name()) {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => files.push(path),
                _ => warn!(
                    "{} is not an executable file: not run as the {} hook",
                    path.display(),
                    hook.name()
                ),
            }
        }
        files.sort();
        Ok(files)
    }

    /// The hook's environment: wraith's own without any variable holding a password, then the
    /// `GH_OST_*` variables (a password inside one of them is masked).
    fn environment(
        &self,
        inherited: impl IntoIterator<Item = (OsString, OsString)>,
        extra: &[(&str, String)],
    ) -> Vec<(OsString, OsString)> {
        let holds_secret = |v: &str| {
            self.secrets
                .iter()
                .any(|s| if s.len() >= 4 { v.contains(s) } else { v == s })
        };
        let mut env: Vec<(OsString, OsString)> = inherited
            .into_iter()
            .filter(|(name, value)| name != "MYSQL_PWD" && !holds_secret(&value.to_string_lossy()))
            .collect();
        let mask = |mut v: String| {
            for s in &self.secrets {
                if s.len() >= 4 || v == *s {
                    v = v.replace(s.as_str(), "********");
                }
            }
            v
        };
        let vars = self.fixed.iter().cloned().chain(self.live_vars()).chain(
            extra
                .iter()
                .map(|(n, v)| (*n, v.clone()))
                .collect::<Vec<_>>(),
        );
        env.extend(vars.map(|(n, v)| (OsString::from(n), OsString::from(mask(v)))));
        env
    }

    /// The variables that change during the run, formatted as gh-ost formats them.
    fn live_vars(&self) -> Vec<(&'static str, String)> {
        let live = crate::lock(&self.live);
        let elapsed = self.started.elapsed();
        let (mut copy, mut estimate, mut copied, mut lag, mut heartbeat_lag, mut eta) =
            (Duration::ZERO, 0, 0, Duration::ZERO, elapsed, -1i64);
        if let Some(p) = &live.progress {
            copy = match (p.copy_started.get(), p.copy_finished.get()) {
                (Some(s), Some(f)) => f.duration_since(*s),
                (Some(s), None) => s.elapsed(),
                _ => Duration::ZERO,
            };
            copied = p.rows_copied.load(Ordering::Relaxed);
            estimate = p.rows_estimate.load(Ordering::Relaxed).max(copied);
            lag = p.lag();
            heartbeat_lag = p.heartbeat_age().unwrap_or(p.started.elapsed());
            eta = if p.copy_finished.get().is_some() {
                0
            } else if copied > 0 && !copy.is_zero() {
                let rate = copied as f64 / copy.as_secs_f64();
                ((estimate - copied) as f64 / rate).ceil() as i64
            } else {
                -1
            };
        }
        let pct = if estimate == 0 {
            100.0
        } else {
            copied as f64 * 100.0 / estimate as f64
        };
        vec![
            (
                "GH_OST_ELAPSED_SECONDS",
                format!("{:.6}", elapsed.as_secs_f64()),
            ),
            (
                "GH_OST_ELAPSED_COPY_SECONDS",
                format!("{:.6}", copy.as_secs_f64()),
            ),
            ("GH_OST_ESTIMATED_ROWS", estimate.to_string()),
            ("GH_OST_COPIED_ROWS", copied.to_string()),
            ("GH_OST_MIGRATED_HOST", live.migrated.clone()),
            ("GH_OST_INSPECTED_HOST", live.inspected.clone()),
            ("GH_OST_INSPECTED_LAG", format!("{:.6}", lag.as_secs_f64())),
            (
                "GH_OST_HEARTBEAT_LAG",
                format!("{:.6}", heartbeat_lag.as_secs_f64()),
            ),
            ("GH_OST_PROGRESS", format!("{pct:.6}")),
            ("GH_OST_ETA_SECONDS", eta.to_string()),
        ]
    }

    /// Runs one hook file, in a process group of its own so a timeout kills all it started.
    async fn run_file(
        &self,
        hook: Hook,
        path: &Path,
        extra: &[(&str, String)],
    ) -> Result<(), HookError> {
        let child = tokio::process::Command::new(path)
            .env_clear()
            .envs(self.environment(std::env::vars_os(), extra))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HookError::Start {
                hook: hook.name(),
                path: path.to_path_buf(),
                source,
            })?;
        // Dropped before the hook ends (timeout, or the run's task aborted): kill the group.
        let group = KillGroup(child.id());
        let output = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output()).await;
        let file = path.display().to_string();
        let output = match output {
            Err(_) => {
                drop(group);
                return Err(HookError::TimedOut {
                    hook: hook.name(),
                    path: path.to_path_buf(),
                });
            }
            Ok(Err(source)) => {
                return Err(HookError::Start {
                    hook: hook.name(),
                    path: path.to_path_buf(),
                    source,
                })
            }
            Ok(Ok(output)) => {
                std::mem::forget(group);
                output
            }
        };
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            info!(hook = %file, "{line}");
        }
        if output.status.success() {
            Ok(())
        } else {
            Err(HookError::Failed {
                hook: hook.name(),
                path: path.to_path_buf(),
                status: output.status.to_string(),
            })
        }
    }
}

/// Kills a hook's process group when dropped.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: killpg only sends a signal; the group is the hook's own (process_group(0)).
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// This machine's name (`GH_OST_EXECUTING_HOST`).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "wraith",
            "--database=d",
            "--table=t",
            "--alter=ADD COLUMN x INT",
            "--password=pw-secret",
        ];
        args.extend_from_slice(extra);
        let parsed = crate::cli::parse(args).unwrap();
        crate::config::build(parsed, || Ok(String::new())).unwrap()
    }

    #[test]
    fn no_variable_carries_the_password() {
        let cfg = config(&["--hooks-path=/nowhere", "--hooks-hint=pw-secret"]);
        let hooks = Hooks::new(&cfg);
        let inherited = [
            ("PATH", "/bin"),
            ("WRAITH_TEST_LEAK", "x-pw-secret-y"),
            ("MYSQL_PWD", "other"),
        ]
        .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let env = hooks.inner.as_ref().unwrap().environment(
            inherited,
            &[("GH_OST_STATUS", "with pw-secret inside".into())],
        );
        for (name, value) in &env {
            assert!(
                !value.to_string_lossy().contains("pw-secret"),
                "{name:?} carries the password"
            );
        }
        let get = |n: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("WRAITH_TEST_LEAK"), None);
        assert_eq!(get("MYSQL_PWD"), None);
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("GH_OST_HOOKS_HINT").as_deref(), Some("********"));
        assert_eq!(get("GH_OST_DDL").as_deref(), Some("ADD COLUMN x INT"));
        assert_eq!(get("GH_OST_DRY_RUN").as_deref(), Some("true"));
        assert_eq!(get("GH_OST_ETA_SECONDS").as_deref(), Some("-1"));
    }

    #[test]
    fn without_hooks_path_nothing_runs() {
        assert!(Hooks::new(&config(&[])).inner.is_none());
    }

    #[tokio::test]
    async fn files_run_in_name_order_and_the_first_failure_stops_the_hook() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record");
        let write = |name: &str, exit: i32| {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho {name} >> '{}'\nexit {exit}\n",
                    record.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("gh-ost-on-startup-b", 0);
        write("gh-ost-on-startup-a", 0);
        write("gh-ost-on-validated-1", 5);
        write("gh-ost-on-validated-2", 0);
        std::fs::write(dir.path().join("gh-ost-on-startup-c.txt"), "not run").unwrap();
        let cfg = config(&[&format!("--hooks-path={}", dir.path().display())]);
        let hooks = Hooks::new(&cfg);
        hooks.run(Hook::Startup).await.unwrap();
        let e = hooks.run(Hook::Validated).await.unwrap_err();
        assert!(matches!(e, HookError::Failed { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(&record).unwrap(),
            "gh-ost-on-startup-a\ngh-ost-on-startup-b\ngh-ost-on-validated-1\n"
        );
    }
}
