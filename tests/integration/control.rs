//! Operator control, as a gh-ost runbook uses it: commands on the unix socket (and the TCP port)
//! read and change the run's settings, throttle and release it, let a postponed cut-over go, and
//! panic; a panic flag file stops the run too. Every stop leaves the original table as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wraith::mysql::sql::qualified;

use crate::harness::{
    self, eventually, migrate_args, primary_sql, servers, stderr, table_checksum, tables, Running,
};
use crate::throttling::{self, finish_released, ALTER};

/// The socket gh-ost (and wraith) serves by default for `schema`.`t`.
pub(crate) fn socket(schema: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/gh-ost.{schema}.t.sock"))
}

/// Sends one command over the unix socket, as `echo <line> | nc -U <socket>` does, and returns
/// the answer.
pub(crate) async fn ask(socket: &Path, line: &str) -> String {
    try_ask(socket, line)
        .await
        .unwrap_or_else(|e| panic!("asking {} {line:?}: {e}", socket.display()))
}

async fn try_ask(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// `name=?` answers `value`.
async fn assert_reads(socket: &Path, name: &str, value: &str) {
    assert_eq!(
        ask(socket, &format!("{name}=?")).await,
        format!("{value}\n"),
        "{name}"
    );
}

/// Waits until the socket answers `sup` with a line containing `what`.
pub(crate) async fn until_sup_says(socket: &Path, what: &str) {
    let mut last = String::new();
    let limit = Duration::from_secs(60);
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        // A killed run's socket file may be there until the new run replaces it.
        match try_ask(socket, "sup").await {
            Ok(answer) if answer.contains(what) => return,
            Ok(answer) => last = answer,
            Err(e) => last = format!("(no answer: {e}; wraith may have ended)"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`sup` never said {what:?} within {limit:?}; last answer: {last}");
}

/// The ghost table's rows (0 once it is gone).
async fn ghost_rows(schema: &str) -> u64 {
    let mut c = servers().primary.conn().await;
    c.query_first(format!(
        "SELECT COUNT(*) FROM {}",
        qualified(schema, "_t_gho")
    ))
    .await
    .ok()
    .flatten()
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flag_file_and_the_throttle_command_hold_the_copy_until_no_throttle() {
    let schema = throttling::setup("cmd_throttle").await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("throttle");
    std::fs::write(&flag, "").unwrap();
    let sock = socket(&schema);
    let wraith = throttling::start_held(
        &schema,
        &[&format!("--throttle-flag-file={}", flag.display())],
    )
    .await;
    let status = ask(&sock, "status").await;
    assert!(
        status.contains(&format!("State: throttled, flag-file {}", flag.display())),
        "{status}"
    );
    assert!(status.contains("# Serving on unix socket: "), "{status}");

    // `throttle` holds the copy after the flag file is gone.
    let answer = ask(&sock, "throttle").await;
    assert!(answer.contains("binary logs are not purged"), "{answer}");
    std::fs::remove_file(&flag).unwrap();
    until_sup_says(&sock, "State: throttled, commanded by user").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ghost_rows(&schema).await,
        0,
        "copied while throttled by command"
    );

    let answer = ask(&sock, "no-throttle").await;
    assert!(answer.contains("Copy: "), "{answer}");
    finish_released(&schema, wraith, "commanded by user (throttle)").await;
    assert!(
        !sock.exists(),
        "the socket file is removed when wraith ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_load_changed_on_the_socket_releases_the_migration() {
    let schema = throttling::setup("cmd_max_load").await;
    let sock = socket(&schema);
    let wraith = throttling::start_held(&schema, &["--max-load=Threads_running=1"]).await;
    until_sup_says(&sock, "State: throttled, max-load Threads_running=").await;
    assert_eq!(ask(&sock, "max-load=?").await, "Threads_running=1\n");
    let answer = ask(&sock, "max-load=Threads_running=1000").await;
    assert!(
        answer.starts_with("max-load = Threads_running=1000\n"),
        "{answer}"
    );
    assert!(
        answer.contains("max-load: Threads_running=1000;"),
        "{answer}"
    );
    finish_released(&schema, wraith, "max-load Threads_running=").await;
}

/// Every command of gh-ost answers; a bad command or value is an error that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_answers_and_bad_ones_change_nothing() {
    let schema = throttling::setup("cmd_all").await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("throttle");
    std::fs::write(&flag, "").unwrap();
    let sock = socket(&schema);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wraith = throttling::start_held(
        &schema,
        &[
            &format!("--throttle-flag-file={}", flag.display()),
            &format!("--serve-tcp-port={port}"),
        ],
    )
    .await;

    let help = ask(&sock, "help").await;
    for command in [
        "status",
        "sup",
        "coordinates",
        "chunk-size=",
        "dml-batch-size=",
        "nice-ratio=",
        "critical-load=",
        "max-lag-millis=",
        "max-load=",
        "throttle-query=",
        "throttle-http=",
        "throttle-control-replicas=",
        "postpone-cut-over-flag-file=",
        "throttle",
        "no-throttle",
        "unpostpone",
        "panic",
        "help",
    ] {
        assert!(
            help.contains(command),
            "help does not list {command}:\n{help}"
        );
    }
    assert!(ask(&sock, "sup").await.starts_with("Copy: "));
    let status = ask(&sock, "status").await;
    assert!(
        status.contains(&format!(
            "# Migrating `{schema}`.`t`; Ghost table is `{schema}`.`_t_gho`"
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!("# Serving on TCP port: {port}")),
        "{status}"
    );
    assert!(ask(&sock, "info").await.contains("# chunk-size: 500;"));
    assert!(ask(&sock, "coordinates").await.trim().contains(':'));
    let primary = &servers().primary;
    assert!(ask(&sock, "applier")
        .await
        .starts_with(&format!("{}:{} (", primary.host, primary.port)));
    let replica = &servers().replica;
    assert!(ask(&sock, "inspector")
        .await
        .starts_with(&format!("{}:{} (", replica.host, replica.port)));

    // Each setting: read back, changed, read back again; a bad value changes nothing.
    let cases: &[(&str, &str, &str, &str)] = &[
        ("chunk-size", "500", "250", "5"),
        ("dml-batch-size", "10", "20", "101"),
        ("max-lag-millis", "1500", "2500", "ten"),
        ("nice-ratio", "0", "0.5", "-1"),
        ("max-load", "", "Threads_running=900", "Threads_running"),
        ("critical-load", "", "Threads_running=5000", "=5"),
        ("throttle-query", "", "SELECT 0", "\u{0}"),
        (
            "throttle-http",
            "",
            "http://127.0.0.1:9/ok",
            "https://example.com/",
        ),
        ("throttle-control-replicas", "", "", "r1:port"),
    ];
    let replica_at = format!("{}:{}", replica.host, replica.port);
    for (name, initial, new, bad) in cases {
        assert_reads(&sock, name, initial).await;
        if *bad != "\u{0}" {
            let refused = ask(&sock, &format!("{name}={bad}")).await;
            assert!(refused.starts_with("error: "), "{name}={bad}: {refused}");
            assert_reads(&sock, name, initial).await;
        }
        let answer = ask(&sock, &format!("{name}={new}")).await;
        assert!(
            answer.starts_with(&format!("{name} = {new}\n")),
            "{name}: {answer}"
        );
        assert_reads(&sock, name, new).await;
    }
    let answer = ask(&sock, &format!("throttle-control-replicas={replica_at}")).await;
    assert!(
        answer.contains(&format!("# throttle-control-replicas: {replica_at}\n")),
        "{answer}"
    );
    // Put back what would hold the run (an unanswered URL throttles).
    ask(&sock, "throttle-http=").await;
    ask(&sock, "throttle-query=").await;

    for (bad, says) in [
        ("frobnicate", "Unknown command: frobnicate"),
        ("chunk-size", "needs a value"),
        ("coordinates=mysql-bin.000001:4", "read-only"),
        ("replication-lag-query=select 1", "deprecated"),
        ("unpostpone=other_table", "migrated table is t"),
        ("panic=other_table", "migrated table is t"),
    ] {
        let answer = ask(&sock, bad).await;
        assert!(
            answer.starts_with("error: ") && answer.contains(says),
            "{bad}: {answer}"
        );
    }
    assert!(ask(&sock, "unpostpone")
        .await
        .contains("only invoke this when wraith is actively postponing"));

    // The TCP port answers the same commands.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(b"chunk-size=?\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "250\n");

    std::fs::remove_file(&flag).unwrap();
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("command \"frobnicate\" refused"), "{err}");
}

/// The steps by which the ghost table's row count grows from `from` rows (one per chunk when a
/// nice ratio spaces the chunks out), read every `every`; after each step `go_on(steps, rows)`
/// says whether to keep watching. Ends at the swap (the count falls) or after two minutes.
async fn ghost_steps(
    schema: &str,
    from: u64,
    every: Duration,
    mut go_on: impl AsyncFnMut(&[u64], u64) -> bool,
) -> Vec<u64> {
    let (mut steps, mut last) = (Vec::new(), from);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let now = ghost_rows(schema).await;
        if now < last {
            break; // swapped
        }
        if now != last {
            steps.push(now - last);
            last = now;
            if !go_on(&steps, now).await {
                break;
            }
        }
        tokio::time::sleep(every).await;
    }
    steps
}

/// `--chunk-target-millis` resizes the chunks after each one: chunks of 100 rows that take a few
/// milliseconds, against a target of a second, double each time (the most they may grow at once);
/// the nice ratio spaces them out so each step of the ghost table's row count is one chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunk_target_millis_grows_fast_chunks_towards_the_target() {
    let schema = throttling::setup("chunk_target").await;
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--chunk-size=100",
            "--chunk-target-millis=1000",
            "--nice-ratio=30",
            "--copy-workers=1",
        ],
    ));
    let steps = ghost_steps(&schema, 0, Duration::from_millis(5), async |steps, _| {
        steps.len() < 3
    })
    .await;
    assert_eq!(
        steps,
        vec![100, 200, 400],
        "the ghost table's row count grew by"
    );
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `--apply-batch-millis` gathers a trickle of the application's transactions into a few larger
/// ones on the ghost table: twenty single-row inserts, 10 ms apart, reach the ghost table in at
/// most three steps when the applier waits up to three seconds for more events (with `0` each
/// insert is its own step).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_batch_millis_gathers_a_trickle_of_writes_into_few_ghost_transactions() {
    let schema = throttling::setup("apply_batch").await;
    let dir = tempfile::tempdir().unwrap();
    let postpone = dir.path().join("postpone");
    std::fs::write(&postpone, "").unwrap();
    let sock = socket(&schema);
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--apply-batch-millis=3000",
            &format!("--postpone-cut-over-flag-file={}", postpone.display()),
        ],
    ));
    until_sup_says(&sock, "State: postponing cut-over").await;
    let from = ghost_rows(&schema).await;
    let trickle = async {
        let mut c = servers().primary.conn().await;
        for n in 1..=20 {
            c.query_drop(format!(
                "INSERT INTO {} (a, b) VALUES ({}, 'trickle')",
                qualified(&schema, "t"),
                -n
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let watch = ghost_steps(&schema, from, Duration::from_millis(2), async |_, rows| {
        rows < from + 20
    });
    let ((), steps) = tokio::join!(trickle, watch);
    assert_eq!(
        steps.iter().sum::<u64>(),
        20,
        "every insert arrives: {steps:?}"
    );
    assert!(
        steps.len() <= 3,
        "the ghost table's row count grew by {steps:?}: one step per insert"
    );
    std::fs::remove_file(&postpone).unwrap();
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `chunk-size=` changes the size of the next chunks: with a nice ratio that spaces the chunks
/// out, the ghost table grows by 500 rows a step, then by 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunk_size_changed_mid_copy_sizes_the_next_chunks() {
    let schema = throttling::setup("cmd_chunk").await;
    let sock = socket(&schema);
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &["--nice-ratio=30", "--copy-workers=1"],
    ));
    eventually("the copy to start", Duration::from_secs(60), async || {
        ghost_rows(&schema).await > 0
    })
    .await;
    assert_eq!(
        ask(&sock, "chunk-size=100").await.lines().next(),
        Some("chunk-size = 100")
    );
    let from = ghost_rows(&schema).await;
    let steps = ghost_steps(
        &schema,
        from,
        Duration::from_millis(10),
        async |steps, rows| {
            if steps.len() == 4 {
                ask(&sock, "nice-ratio=0").await;
            }
            rows < 3000
        },
    )
    .await;
    // The chunk in flight when the command came may still be 500 rows; every later one is 100.
    let later: Vec<u64> = steps.iter().copied().skip_while(|s| *s == 500).collect();
    assert!(
        later.len() >= 3 && later[..3].iter().all(|s| *s == 100),
        "steps of the ghost table's row count after chunk-size=100: {steps:?}"
    );
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A postponed cut-over stays in sync (inserts, updates and deletes made meanwhile are applied)
/// and swaps on `unpostpone`; the file can be named at runtime too, and is then created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpostpone_swaps_a_postponed_cut_over_that_kept_in_sync() {
    let schema = throttling::setup("cmd_postpone").await;
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("throttle");
    let postpone = dir.path().join("postpone");
    let sock = socket(&schema);
    std::fs::write(&hold, "").unwrap();
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[&format!("--throttle-flag-file={}", hold.display())],
    ));
    until_sup_says(&sock, "State: throttled, flag-file").await;
    let answer = ask(
        &sock,
        &format!("postpone-cut-over-flag-file={}", postpone.display()),
    )
    .await;
    assert!(
        answer.contains(&format!(
            "# postpone-cut-over-flag-file: {} [set]",
            postpone.display()
        )),
        "{answer}"
    );
    assert!(postpone.exists(), "the command creates the flag file");
    std::fs::remove_file(&hold).unwrap();
    until_sup_says(&sock, "State: postponing cut-over").await;

    primary_sql(
        &schema,
        &[
            "INSERT INTO t (a, b) VALUES (-7, 'while postponed')",
            "UPDATE t SET b = 'changed while postponed' WHERE id = 5",
            "DELETE FROM t WHERE id = 6",
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_ghc", "_t_gho", "gate", "t"],
        "not swapped while postponed"
    );
    let answer = ask(&sock, "unpostpone").await;
    assert!(answer.starts_with("Unpostponed\n"), "{answer}");
    let out = wraith.finish(Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(postpone.exists(), "the operator's flag file is left alone");
    let mut c = servers().primary.conn().await;
    let rows: Vec<(i64, String, Option<i64>)> = c
        .query(format!(
            "SELECT a, b, d FROM {} WHERE a = -7 OR id IN (5, 6) ORDER BY id",
            qualified(&schema, "t")
        ))
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            (5, "changed while postponed".to_string(), None),
            (-7, "while postponed".to_string(), None)
        ]
    );
}

/// `panic` (named, with --force-named-panic) and a panic flag file stop a held run at once,
/// without cut-over; the original is as it was and the helper tables are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panic_by_command_or_flag_file_stops_at_once_and_leaves_the_original() {
    let schema = throttling::setup("cmd_panic").await;
    let before = table_checksum(&servers().primary, &schema, "t").await;
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("throttle");
    let panic_file = dir.path().join("panic");
    let sock = socket(&schema);
    let hold_flag = format!("--throttle-flag-file={}", hold.display());
    let panic_flag = format!("--panic-flag-file={}", panic_file.display());
    for by_command in [true, false] {
        let mut wraith = Running::start(&migrate_args(
            &schema,
            "t",
            ALTER,
            &[&hold_flag, &panic_flag, "--force-named-panic"],
        ));
        std::fs::write(&hold, "").unwrap();
        until_sup_says(&sock, "State: throttled, flag-file").await;
        if by_command {
            let refused = ask(&sock, "panic").await;
            assert!(refused.contains("--force-named-panic is set"), "{refused}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wraith.exited() {
                let out = wraith.finish(Duration::from_secs(5)).await;
                panic!("a refused panic stopped the run:\n{}", stderr(&out));
            }
            let answer = ask(&sock, "panic=t").await;
            assert!(answer.contains("stops now"), "{answer}");
        } else {
            std::fs::write(&panic_file, "").unwrap();
        }
        let out = wraith.finish(Duration::from_secs(30)).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains("panic") && last.contains("without cut-over"),
            "{err}"
        );
        assert_eq!(tables(&servers().primary, &schema).await, ["gate", "t"]);
        assert_eq!(
            table_checksum(&servers().primary, &schema, "t").await,
            before
        );
        std::fs::remove_file(&hold).unwrap();
        let _ = std::fs::remove_file(&panic_file);
    }
}

/// A socket file that exists (another migration's, or a killed run's) is not taken over unless
/// --initially-drop-socket-file says so; nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_socket_file_is_refused_unless_told_to_drop_it() {
    let schema = throttling::setup("cmd_stale").await;
    let sock = socket(&schema);
    std::fs::write(&sock, "").unwrap();
    let out = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        ALTER,
        &["--initially-drop-socket-file=false"],
    ))
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("the socket file {} exists", sock.display()))
            && err.contains("--initially-drop-socket-file"),
        "{err}"
    );
    assert_eq!(tables(&servers().primary, &schema).await, ["gate", "t"]);
    assert!(sock.exists(), "someone else's socket file is left alone");
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!sock.exists());
}

/// Replication stopped on the replica: its heartbeat lag grows past --max-lag-millis and the run
/// throttles on lag; `max-lag-millis=` raised lets the copy go at once, lowered holds it again;
/// replication restarted, the run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_replication_throttles_on_lag_and_max_lag_millis_changes_at_once() {
    let Some((primary, replica)) = harness::own_pair("control-lag", &[]) else {
        return;
    };
    let schema = "control_lag".to_string();
    throttling::setup_on_pair(&primary, &replica, &schema, 3000).await;
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("throttle");
    std::fs::write(&hold, "").unwrap();
    let sock = socket(&schema);
    let args = throttling::args_on_pair(
        &replica,
        &schema,
        &[
            "--chunk-size=100".into(),
            "--max-lag-millis=1000".into(),
            format!("--throttle-flag-file={}", hold.display()),
        ],
    );
    let wraith = Running::start(&args);
    until_sup_says(&sock, "State: throttled, flag-file").await;
    let flavor = replica.flavor().await;
    let mut r = replica.conn().await;
    let stale = format!(
        "SELECT UNIX_TIMESTAMP(NOW(6)) - value > 1.5 FROM {} WHERE hint = 'heartbeat'",
        qualified(&schema, "_t_ghc")
    );
    eventually(
        "the heartbeat to reach the replica",
        Duration::from_secs(30),
        async || r.query_first::<bool, _>(&stale).await.unwrap().is_some(),
    )
    .await;
    r.query_drop(flavor.stop_replication_sql()).await.unwrap();
    eventually(
        "the replica's heartbeat to fall behind",
        Duration::from_secs(30),
        async || r.query_first::<bool, _>(&stale).await.unwrap() == Some(true),
    )
    .await;
    std::fs::remove_file(&hold).unwrap();
    until_sup_says(&sock, "State: throttled, lag=").await;
    let ghost = format!("SELECT COUNT(*) FROM {}", qualified(&schema, "_t_gho"));
    let mut p = primary.conn().await;
    assert_eq!(p.query_first::<u64, _>(&ghost).await.unwrap(), Some(0));

    let answer = ask(&sock, "max-lag-millis=3600000").await;
    assert!(answer.contains("max-lag-millis: 3600000ms;"), "{answer}");
    eventually("the copy to go on", Duration::from_secs(30), async || {
        p.query_first::<u64, _>(&ghost).await.unwrap() > Some(0)
    })
    .await;
    ask(&sock, "max-lag-millis=1000").await;
    until_sup_says(&sock, "State: throttled, lag=").await;

    r.query_drop(flavor.start_replication_sql()).await.unwrap();
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("throttled: lag="), "{err}");
    // Nothing locked the original table while the applier was held: no checksum snapshot or
    // cut-over was tried and timed out.
    assert!(
        !err.contains("snapshot failed") && !err.contains("cut-over attempt"),
        "{err}"
    );
    throttling::assert_all_rows_migrated(&primary, &schema).await;
}

/// Throttled after the copy, the run locks nothing: the checksum and the cut-over wait (the
/// status line says why) instead of locking the original table for a marker the held applier
/// cannot bring back, and go on at `no-throttle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_run_neither_checksums_nor_cuts_over_until_released() {
    let schema = throttling::setup("cmd_late_throttle").await;
    let sock = socket(&schema);
    let postpone = tempfile::NamedTempFile::new().unwrap();
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[&format!(
            "--postpone-cut-over-flag-file={}",
            postpone.path().display()
        )],
    ));
    until_sup_says(&sock, "State: postponing cut-over").await;
    ask(&sock, "throttle").await;
    assert!(ask(&sock, "sup")
        .await
        .contains("State: postponing cut-over"));
    assert!(ask(&sock, "unpostpone").await.starts_with("Unpostponed"));
    until_sup_says(&sock, "State: throttled, commanded by user").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_ghc", "_t_gho", "gate", "t"],
        "swapped while throttled"
    );
    ask(&sock, "no-throttle").await;
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("checksum: waiting while throttled (commanded by user (throttle))"),
        "{err}"
    );
    assert!(
        !err.contains("snapshot failed") && !err.contains("cut-over attempt"),
        "{err}"
    );
}

/// A failing `gh-ost-on-interactive-command` hook refuses the command: nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_interactive_command_hook_refuses_the_command() {
    use std::os::unix::fs::PermissionsExt;
    let schema = throttling::setup("cmd_hook").await;
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("gh-ost-on-interactive-command");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$GH_OST_COMMAND\" in chunk-size=2*) echo 'not now' >&2; exit 1;; esac\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hold = dir.path().join("throttle");
    std::fs::write(&hold, "").unwrap();
    let sock = socket(&schema);
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            &format!("--hooks-path={}", dir.path().display()),
            &format!("--throttle-flag-file={}", hold.display()),
        ],
    ));
    until_sup_says(&sock, "State: throttled, flag-file").await;
    let refused = ask(&sock, "chunk-size=200").await;
    assert!(
        refused.starts_with("error: ")
            && refused.contains("gh-ost-on-interactive-command")
            && refused.contains("not carried out"),
        "{refused}"
    );
    assert_eq!(ask(&sock, "chunk-size=?").await, "500\n");
    assert!(ask(&sock, "chunk-size=300")
        .await
        .starts_with("chunk-size = 300\n"));
    std::fs::remove_file(&hold).unwrap();
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
}
