//! Hooks and one migration per table.
//!
//! Hooks: every `gh-ost-on-*` executable of `--hooks-path` runs at gh-ost's moment, in name
//! order, with the `GH_OST_*` environment; each hook file here appends its name and its whole
//! environment to a record, and the tests read the order and the variables from it. A hook that
//! fails fails the step that called it: a failing before-cut-over hook leaves the original table
//! in place. No hook ever sees the password.
//!
//! One migration per table: a second run on a table that is being migrated refuses to start and
//! touches nothing; the lock dies with the process that held it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::harness::{self, migrate_args, servers, stderr, tables, Running, WRAITH_RUN_LIMIT};
use crate::migrate::{changelog_state, setup, small_values, SMALL, SMALL_COLUMNS};

const ALTER: &str = "ADD COLUMN d INT";

/// Every hook name of docs/gh-ost.md, in the order a postponed, successful run calls the ones
/// that apply to it.
const HOOKS: [&str; 14] = [
    "gh-ost-on-startup",
    "gh-ost-on-validated",
    "gh-ost-on-rowcount-complete",
    "gh-ost-on-before-row-copy",
    "gh-ost-on-status",
    "gh-ost-on-interactive-command",
    "gh-ost-on-batch-copy-retry",
    "gh-ost-on-row-copy-complete",
    "gh-ost-on-before-cut-over",
    "gh-ost-on-begin-postponed",
    "gh-ost-on-stop-replication",
    "gh-ost-on-start-replication",
    "gh-ost-on-success",
    "gh-ost-on-failure",
];

/// The variables every hook gets (docs/gh-ost.md).
const COMMON: [&str; 21] = [
    "GH_OST_DATABASE_NAME",
    "GH_OST_TABLE_NAME",
    "GH_OST_GHOST_TABLE_NAME",
    "GH_OST_OLD_TABLE_NAME",
    "GH_OST_DDL",
    "GH_OST_ELAPSED_SECONDS",
    "GH_OST_ELAPSED_COPY_SECONDS",
    "GH_OST_ESTIMATED_ROWS",
    "GH_OST_COPIED_ROWS",
    "GH_OST_MIGRATED_HOST",
    "GH_OST_INSPECTED_HOST",
    "GH_OST_EXECUTING_HOST",
    "GH_OST_INSPECTED_LAG",
    "GH_OST_HEARTBEAT_LAG",
    "GH_OST_PROGRESS",
    "GH_OST_ETA_SECONDS",
    "GH_OST_HOOKS_HINT",
    "GH_OST_HOOKS_HINT_OWNER",
    "GH_OST_HOOKS_HINT_TOKEN",
    "GH_OST_DRY_RUN",
    "GH_OST_REVERT",
];

/// One hook run as recorded: the file's name and its environment.
#[derive(Debug)]
struct Call {
    file: String,
    env: Vec<(String, String)>,
}

impl Call {
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A hooks folder whose hook files record themselves in `record`.
struct HooksDir {
    dir: tempfile::TempDir,
    record: PathBuf,
}

impl HooksDir {
    fn new() -> HooksDir {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record");
        HooksDir { dir, record }
    }

    fn path_flag(&self) -> String {
        format!("--hooks-path={}", self.dir.path().display())
    }

    /// A hook file `name` that records its name and environment (`env -0`, so values may hold
    /// newlines), then exits with `exit`. The record is appended in one write, whole: a status
    /// hook may run at the same moment as another.
    fn add(&self, name: &str, exit: i32) {
        let script = format!(
            "#!/bin/sh\none=$(mktemp)\n{{ printf '%s\\0' '{name}'; env -0; printf '\\0\\0'; }} > \"$one\"\ncat \"$one\" >> '{}'\nrm -f \"$one\"\nexit {exit}\n",
            self.record.display()
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, script).unwrap();
        make_executable(&path);
    }

    /// The hook runs so far, in order.
    fn calls(&self) -> Vec<Call> {
        let raw = std::fs::read(&self.record).unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        text.split("\0\0\0")
            .filter(|c| !c.trim_matches('\0').is_empty())
            .map(|c| {
                let mut fields = c.trim_start_matches('\0').split('\0');
                let file = fields.next().unwrap().to_string();
                let env = fields
                    .filter(|f| !f.is_empty())
                    .filter_map(|f| f.split_once('='))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                Call { file, env }
            })
            .collect()
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A user with a password, on both servers, for the runs that must not leak it.
async fn user_with_password(user: &str, password: &str) {
    let mut c = servers().primary.conn().await;
    c.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'; \
         GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    harness::sync_replica().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hooks_run_at_gh_osts_moments_in_name_order_with_the_environment_and_no_password() {
    let schema = harness::fresh_schema("hooks_order").await;
    setup(&schema, SMALL, ALTER, 1_000, &SMALL_COLUMNS, small_values).await;
    let password = "hook-pw-5ecret";
    user_with_password("hooked", password).await;
    let hooks = HooksDir::new();
    for name in HOOKS {
        hooks.add(name, 0);
    }
    // Two files for one hook: both run, in name order.
    hooks.add("gh-ost-on-startup-2-second", 0);
    let flag = tempfile::NamedTempFile::new().unwrap();
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--user=hooked",
            &format!("--password={password}"),
            &hooks.path_flag(),
            "--hooks-hint=the hint",
            "--hooks-hint-owner=the owner",
            "--hooks-hint-token=the token",
            "--hooks-status-interval=1",
            "--exact-rowcount",
            &format!("--postpone-cut-over-flag-file={}", flag.path().display()),
        ],
    );
    let running = Running::start(&args);
    harness::eventually(
        "the postponed cut-over, with a status hook run",
        Duration::from_secs(60),
        async || {
            changelog_state(&schema).await.as_deref() == Some("Postpone")
                && hooks
                    .calls()
                    .iter()
                    .any(|c| c.file == "gh-ost-on-begin-postponed")
                && hooks
                    .calls()
                    .iter()
                    .filter(|c| c.file == "gh-ost-on-status")
                    .count()
                    >= 2
        },
    )
    .await;
    // A command on the socket runs the interactive-command hook first.
    let sup = crate::control::ask(&crate::control::socket(&schema), "sup").await;
    assert!(sup.starts_with("Copy: "), "{sup}");
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let calls = hooks.calls();
    let order: Vec<&str> = calls
        .iter()
        .map(|c| c.file.as_str())
        .filter(|f| *f != "gh-ost-on-status")
        .collect();
    assert_eq!(
        order,
        [
            "gh-ost-on-startup",
            "gh-ost-on-startup-2-second",
            "gh-ost-on-validated",
            "gh-ost-on-rowcount-complete",
            "gh-ost-on-before-row-copy",
            "gh-ost-on-row-copy-complete",
            "gh-ost-on-before-cut-over",
            "gh-ost-on-begin-postponed",
            "gh-ost-on-interactive-command",
            "gh-ost-on-success",
        ]
    );
    for call in &calls {
        for var in COMMON {
            assert!(call.var(var).is_some(), "{} lacks {var}", call.file);
        }
        assert_eq!(call.var("GH_OST_DATABASE_NAME"), Some(schema.as_str()));
        assert_eq!(call.var("GH_OST_TABLE_NAME"), Some("t"));
        assert_eq!(call.var("GH_OST_GHOST_TABLE_NAME"), Some("_t_gho"));
        assert_eq!(call.var("GH_OST_OLD_TABLE_NAME"), Some("_t_del"));
        assert_eq!(call.var("GH_OST_DDL"), Some(ALTER));
        assert_eq!(call.var("GH_OST_HOOKS_HINT"), Some("the hint"));
        assert_eq!(call.var("GH_OST_HOOKS_HINT_OWNER"), Some("the owner"));
        assert_eq!(call.var("GH_OST_HOOKS_HINT_TOKEN"), Some("the token"));
        assert_eq!(call.var("GH_OST_DRY_RUN"), Some("false"));
        assert_eq!(call.var("GH_OST_REVERT"), Some("false"));
        let replica = &servers().replica;
        assert_eq!(
            call.var("GH_OST_INSPECTED_HOST"),
            Some(format!("{}:{}", replica.host, replica.port).as_str())
        );
        assert!(!call.var("GH_OST_EXECUTING_HOST").unwrap().is_empty());
        // The password is in no variable, under any name.
        for (name, value) in &call.env {
            assert!(
                !value.contains(password),
                "{}: {name} carries the password",
                call.file
            );
        }
    }
    let find = |file: &str| calls.iter().find(|c| c.file == file).unwrap();
    assert_eq!(
        find("gh-ost-on-rowcount-complete").var("GH_OST_ESTIMATED_ROWS"),
        Some("1000")
    );
    assert_eq!(
        find("gh-ost-on-before-row-copy").var("GH_OST_COPIED_ROWS"),
        Some("0")
    );
    let complete = find("gh-ost-on-row-copy-complete");
    assert_eq!(complete.var("GH_OST_COPIED_ROWS"), Some("1000"));
    assert_eq!(complete.var("GH_OST_PROGRESS"), Some("100.000000"));
    assert_eq!(
        find("gh-ost-on-interactive-command").var("GH_OST_COMMAND"),
        Some("sup")
    );
    assert!(find("gh-ost-on-status")
        .var("GH_OST_STATUS")
        .unwrap()
        .starts_with("Copy: "));
    assert_eq!(
        find("gh-ost-on-success").var("GH_OST_INSTANT_DDL"),
        Some("false")
    );
    // The migration itself happened.
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_del", "mirror", "t"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_before_cut_over_hook_leaves_the_original_table_and_runs_on_failure() {
    let schema = harness::fresh_schema("hooks_fail").await;
    setup(&schema, SMALL, ALTER, 300, &SMALL_COLUMNS, small_values).await;
    let hooks = HooksDir::new();
    hooks.add("gh-ost-on-before-cut-over", 3);
    hooks.add("gh-ost-on-success", 0);
    hooks.add("gh-ost-on-failure", 0);
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &[&hooks.path_flag()])).await;
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gh-ost-on-before-cut-over"), "{err}");
    let order: Vec<String> = hooks.calls().into_iter().map(|c| c.file).collect();
    assert_eq!(order, ["gh-ost-on-before-cut-over", "gh-ost-on-failure"]);
    // Not swapped: the original is in place, without the new column, and nothing is left.
    assert_eq!(tables(&servers().primary, &schema).await, ["mirror", "t"]);
    let mut c = servers().primary.conn().await;
    let d: Option<String> = c
        .exec_first(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = 'd'",
            (&schema,),
        )
        .await
        .unwrap();
    assert_eq!(d, None, "the original table was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_run_on_the_same_table_refuses_while_the_first_runs_and_starts_once_it_is_killed()
{
    let schema = harness::fresh_schema("one_per_table").await;
    setup(&schema, SMALL, ALTER, 1_000, &SMALL_COLUMNS, small_values).await;
    let flag = tempfile::NamedTempFile::new().unwrap();
    let first = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[&format!(
            "--postpone-cut-over-flag-file={}",
            flag.path().display()
        )],
    ));
    harness::eventually(
        "the first run to postpone its cut-over",
        Duration::from_secs(60),
        async || changelog_state(&schema).await.as_deref() == Some("Postpone"),
    )
    .await;
    // Even told to drop the ghost table first, the second run refuses before touching anything.
    let second = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        ALTER,
        &["--initially-drop-ghost-table"],
    ))
    .await;
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("another migration") && err.contains("connection"),
        "{err}"
    );
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_ghc", "_t_gho", "mirror", "t"]
    );
    assert_eq!(changelog_state(&schema).await.as_deref(), Some("Postpone"));

    // The lock dies with the process: after a SIGKILL a new run starts (and clears the leftovers).
    unsafe { libc::kill(first.pid() as i32, libc::SIGKILL) };
    let _ = first.finish(Duration::from_secs(30)).await;
    let lock = format!("gh-ost.{schema}.t");
    harness::eventually(
        "the server to end the killed run's session",
        Duration::from_secs(30),
        async || {
            let mut c = servers().primary.conn().await;
            c.exec_first::<Option<i64>, _, _>("SELECT IS_FREE_LOCK(?)", (&lock,))
                .await
                .unwrap()
                .flatten()
                == Some(1)
        },
    )
    .await;
    let third = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        ALTER,
        &["--initially-drop-ghost-table"],
    ))
    .await;
    assert!(third.status.success(), "{}", stderr(&third));
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_del", "mirror", "t"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_refuses_while_another_session_holds_the_tables_lock_and_names_it() {
    let schema = harness::fresh_schema("lock_held").await;
    setup(&schema, SMALL, ALTER, 10, &SMALL_COLUMNS, small_values).await;
    let mut holder = servers().primary.conn().await;
    let got: Option<i64> = holder
        .exec_first("SELECT GET_LOCK(?, 0)", (format!("gh-ost.{schema}.t"),))
        .await
        .unwrap();
    assert_eq!(got, Some(1));
    let id: u64 = holder
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &[])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("connection {id}")), "{err}");
    assert_eq!(tables(&servers().primary, &schema).await, ["mirror", "t"]);
}
