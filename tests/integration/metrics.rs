//! Metrics and log formats.
//!
//! While wraith migrates, `GET /metrics` on `--metrics-port` shows the rows copied rise and the
//! state the run is in; statsd datagrams with gh-ost's names and the `--statsd-tags` reach a UDP
//! socket; `--log-format=json` writes one JSON object per line, to the last; and a metrics port
//! that is taken stops the run before anything is created.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wraith::mysql::sql::qualified;

use crate::harness::{
    self, eventually, fresh_schema, migrate_args, primary_sql, run_wraith, servers, stderr, tables,
    Running, WRAITH_RUN_LIMIT,
};
use crate::migrate::SMALL;

const ALTER: &str = "ADD COLUMN d INT";
const ROWS: u64 = 3000;

/// `t` with [`ROWS`] rows in a fresh schema.
async fn setup(name: &str) -> String {
    let schema = fresh_schema(&format!("metrics_{name}")).await;
    primary_sql(
        &schema,
        &[
            SMALL,
            &format!(
                "INSERT INTO t (a, b) SELECT seq, CONCAT('r', seq) FROM {}",
                harness::seq(1, 3000)
            ),
        ],
    )
    .await;
    schema
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `request` to 127.0.0.1:`port` and returns the status line and the body, or `None` if
/// nothing answered within 10 s.
async fn http(port: u16, request: &str) -> Option<(String, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8(answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// The body of a successful `GET /metrics`.
async fn scrape(port: u16) -> Option<String> {
    let (status, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    status.starts_with("HTTP/1.1 200 ").then_some(body)
}

/// The value of the sample `series` (a name with its labels, if any).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until the sample `series` is 1 and returns that scrape; fails the test if wraith
/// ends first.
async fn scrape_until(port: u16, wraith: &mut Running, series: &str) -> String {
    let mut seen = String::new();
    eventually(
        &format!("a scrape with {series} 1"),
        WRAITH_RUN_LIMIT,
        async || match scrape(port).await {
            Some(body) if sample(&body, series) == Some(1.0) => {
                seen = body;
                true
            }
            _ => wraith.exited(),
        },
    )
    .await;
    assert!(
        !wraith.exited(),
        "wraith ended before a scrape showed {series} 1"
    );
    seen
}

/// Asserts each (series, value) of `expected` in the exposition `text`.
fn assert_samples(text: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_eq!(sample(text, series), Some(*value), "{series}:\n{text}");
    }
}

async fn count(schema: &str, table: &str) -> u64 {
    let mut c = servers().primary.conn().await;
    c.query_first(format!("SELECT COUNT(*) FROM {}", qualified(schema, table)))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_endpoint_shows_the_rows_copied_rise_and_the_state_of_the_run() {
    let schema = setup("prometheus").await;
    let dir = tempfile::tempdir().unwrap();
    let (throttle, postpone) = (dir.path().join("throttle"), dir.path().join("postpone"));
    std::fs::write(&throttle, "").unwrap();
    std::fs::write(&postpone, "").unwrap();
    let port = free_port();
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            &format!("--metrics-port={port}"),
            &format!("--throttle-flag-file={}", throttle.display()),
            &format!("--postpone-cut-over-flag-file={}", postpone.display()),
            // Only the flag file throttles here: a replica lagging on a busy machine would too
            // (seen once in a suite run: `reason="lag"` while postponed).
            "--max-lag-millis=600000",
        ],
    );
    let mut wraith = Running::start(&args);

    // Held by the flag file from the start: throttled, nothing copied.
    let flag_reason = "wraith_throttle_info{reason=\"flag-file\"}".to_string();
    let held = scrape_until(port, &mut wraith, &flag_reason).await;
    assert_samples(
        &held,
        &[
            ("wraith_throttled", 1.0),
            ("wraith_state{state=\"throttled\"}", 1.0),
            ("wraith_state{state=\"migrating\"}", 0.0),
            ("wraith_rows_copied_total", 0.0),
            ("wraith_backlog_capacity", 1000.0),
            ("wraith_cut_over_attempts_total", 0.0),
        ],
    );
    assert_eq!(count(&schema, "_t_gho").await, 0);
    let info = format!("wraith_info{{database=\"{schema}\",table=\"t\",");
    assert!(held.contains(&info), "{held}");
    assert!(held.contains("\nprocess_resident_memory_bytes "), "{held}");
    let (status, _) = http(port, "GET /other HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(status.starts_with("HTTP/1.1 404 "), "{status}");

    // Released: the copy runs to the end and the cut-over waits, postponed.
    std::fs::remove_file(&throttle).unwrap();
    let done = scrape_until(
        port,
        &mut wraith,
        "wraith_state{state=\"postponing_cut_over\"}",
    )
    .await;
    assert_samples(
        &done,
        &[
            ("wraith_rows_copied_total", ROWS as f64),
            ("wraith_throttled", 0.0),
            ("wraith_throttle_info{reason=\"\"}", 1.0),
            ("wraith_state{state=\"throttled\"}", 0.0),
        ],
    );
    assert_eq!(count(&schema, "_t_gho").await, ROWS);
    assert!(
        !done.contains("wraith_cut_over_writer_wait_seconds"),
        "{done}"
    );

    std::fs::remove_file(&postpone).unwrap();
    let out = wraith.finish(WRAITH_RUN_LIMIT).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&schema, "t").await, ROWS);
}

/// Every datagram's lines received on `socket` until `stop` fires, then what is left queued.
async fn collect(
    socket: tokio::net::UdpSocket,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            received = socket.recv(&mut buf) => if let Ok(n) = received {
                lines.extend(String::from_utf8_lossy(&buf[..n]).lines().map(String::from));
            },
            _ = &mut stop => break,
        }
    }
    while let Ok(n) = socket.try_recv(&mut buf) {
        lines.extend(String::from_utf8_lossy(&buf[..n]).lines().map(String::from));
    }
    lines
}

/// `name:value|type|#tags` split into its parts.
fn parse_line(line: &str) -> (&str, &str, &str, Vec<&str>) {
    let mut parts = line.split('|');
    let (name, value) = parts.next().unwrap().split_once(':').unwrap();
    let kind = parts.next().unwrap_or_default();
    let tags = parts
        .next()
        .and_then(|t| t.strip_prefix('#'))
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    (name, value, kind, tags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statsd_receives_gh_osts_metrics_with_the_given_tags_to_the_end_of_the_run() {
    let schema = setup("statsd").await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let collector = tokio::spawn(collect(socket, stopped));
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            &format!("--statsd-addr={addr}"),
            "--statsd-tags=env:test,team:db",
            "--statsd-tags",
            "service:wraith",
            "--runtime-metrics-interval=100ms",
        ],
    );
    let out = run_wraith(&args).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let _ = stop.send(());
    let lines = collector.await.unwrap();
    assert!(!lines.is_empty(), "no datagram arrived:\n{err}");

    let mut names = std::collections::BTreeSet::new();
    let (mut rows_copied, mut attempts, mut state) = (None, 0, None);
    for line in &lines {
        let (name, value, kind, tags) = parse_line(line);
        assert!(
            tags.ends_with(&["env:test", "team:db", "service:wraith"]),
            "{line}"
        );
        names.insert(name.to_string());
        match (name, kind) {
            ("gh_ost.row_copy.rows_copied", "g") => rows_copied = Some(value.to_string()),
            ("gh_ost.cut_over.attempts_total", "c") => attempts += value.parse::<u64>().unwrap(),
            ("gh_ost.state", "g") if value == "1" => state = Some(tags[0].to_string()),
            _ => {}
        }
    }
    for name in [
        "gh_ost.row_copy.rows_copied",
        "gh_ost.row_copy.rows_estimate",
        "gh_ost.dml.events_applied",
        "gh_ost.binlog.backlog_size",
        "gh_ost.binlog.backlog_capacity",
        "gh_ost.binlog.backlog_utilization",
        "gh_ost.lag.replication_seconds",
        "gh_ost.lag.heartbeat_seconds",
        "gh_ost.throttle.active",
        "gh_ost.state",
        "gh_ost.cut_over.attempts_total",
        "gh_ost.cut_over.writer_wait_seconds",
        "gh_ost.process.resident_bytes",
        "gh_ost.process.cpu_seconds",
        "gh_ost.process.threads",
        "gh_ost.process.open_fds",
    ] {
        assert!(names.contains(name), "{name} never arrived: {names:?}");
    }
    // The last datagram was sent as the run stopped, after the swap.
    assert_eq!(rows_copied, Some(ROWS.to_string()));
    assert_eq!(count(&schema, "t").await, ROWS);
    assert!(attempts >= 1, "{attempts} cut-over attempts counted");
    assert_eq!(state.as_deref(), Some("state:cutting_over"));
    // --runtime-metrics-interval also logs the process's figures; text logs into a pipe carry
    // no colour codes.
    assert!(err.contains("runtime: resident memory "), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

/// Every line of `err` as a JSON object; fails the test naming a line that is not one.
fn json_lines(err: &str) -> Vec<serde_json::Value> {
    err.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let value: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(value.is_object(), "not an object: {l}");
            value
        })
        .collect()
}

fn message(line: &serde_json::Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_are_one_object_per_line_to_the_last_line() {
    let schema = setup("json").await;
    let args = migrate_args(&schema, "t", ALTER, &["--log-format=json"]);
    let out = run_wraith(&args).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines = json_lines(&err);
    let ended = lines.last().expect("some log lines");
    assert_eq!(ended["level"], "INFO", "{ended}");
    assert!(message(ended).contains("ended: swapped"), "{ended}");
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{err}");

    // A failed run's closing lines (what is left, then the error) are log events too.
    let refused = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--log-format",
            "json",
            "--analyze-ghost-table-before-cutover",
        ],
    );
    let out = run_wraith(&refused).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let last = json_lines(&err).pop().expect("an error line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        message(&last)
            .starts_with("error: --analyze-ghost-table-before-cutover is not implemented"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metrics_port_in_use_stops_the_run_before_anything_is_created() {
    let schema = setup("port_in_use").await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let args = migrate_args(&schema, "t", ALTER, &[&format!("--metrics-port={port}")]);
    let out = run_wraith(&args).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: --metrics-port={port}: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert_eq!(tables(&servers().primary, &schema).await, vec!["t"]);
    drop(taken);
}
