//! wraith's own metrics endpoint: `GET /metrics` in Prometheus's text exposition format (0.0.4).
//!
//! In: a listener bound at start (`--metrics-port`, `--metrics-bind`) and a function that renders
//! the current [`Snapshot`]. Out: one response per connection, then the connection is closed:
//! `200` with the metrics for `GET /metrics` (or `HEAD`), `404` for any other path, `405` for
//! another method, `400` for what is not HTTP. Invariant: a client never holds the run up: each
//! connection is served by a task of its own, given 5 seconds to send its request, and all of
//! them end when the data path stops.

use std::fmt::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Snapshot, STATES};

/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_REQUEST: usize = 8192;

/// One metric: name, type, help text, and its samples as (labels, value).
type Family = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(String, String)>,
);

/// The metrics of `s` in the text exposition format; `info` labels `wraith_info`.
pub fn render(s: &Snapshot, info: &[(&str, String)]) -> String {
    const GAUGE: &str = "gauge";
    const COUNTER: &str = "counter";
    let plain = |value: String| vec![(String::new(), value)];
    let seconds = |d: Duration| plain(d.as_secs_f64().to_string());
    // The source only (`lag`, not `lag=1.234s`): one series per source, not per reading.
    let reason = crate::throttle::source(s.throttled.as_deref().unwrap_or_default()).to_string();
    let current = (!STATES.contains(&s.state.as_str())).then_some(s.state.as_str());
    let states = STATES
        .iter()
        .copied()
        .chain(current)
        .map(|state| {
            let on = u8::from(state == s.state).to_string();
            (labels(&[("state", state.to_string())]), on)
        })
        .collect();
    let mut families: Vec<Family> = vec![
        (
            "wraith_info",
            GAUGE,
            "The migration this wraith runs (always 1).",
            vec![(labels(info), "1".into())],
        ),
        (
            "wraith_rows_copied_total",
            COUNTER,
            "Rows copied from the original table to the ghost table.",
            plain(s.rows_copied.to_string()),
        ),
        (
            "wraith_rows_estimated",
            GAUGE,
            "Rows the original table is estimated to hold (counted with --exact-rowcount).",
            plain(s.rows_estimate.to_string()),
        ),
        (
            "wraith_events_applied_total",
            COUNTER,
            "Binlog row events applied to the ghost table.",
            plain(s.events_applied.to_string()),
        ),
        (
            "wraith_backlog",
            GAUGE,
            "Binlog events read but not applied yet.",
            plain(s.backlog.to_string()),
        ),
        (
            "wraith_backlog_capacity",
            GAUGE,
            "The most binlog events held before the streamer waits for the applier.",
            plain(s.backlog_capacity.to_string()),
        ),
        (
            "wraith_lag_seconds",
            GAUGE,
            "Replication lag of the inspected server, from the last heartbeat read back.",
            seconds(s.lag),
        ),
        (
            "wraith_heartbeat_lag_seconds",
            GAUGE,
            "Time since the last heartbeat came back through the binlog.",
            seconds(s.heartbeat_lag),
        ),
        (
            "wraith_throttled",
            GAUGE,
            "1 while the copy and the applier are held by a throttle, else 0.",
            plain(u8::from(s.throttled.is_some()).to_string()),
        ),
        (
            "wraith_throttle_info",
            GAUGE,
            "What throttles the migration: the source (lag, flag-file, max-load ...; empty when not throttled; always 1).",
            vec![(labels(&[("reason", reason)]), "1".into())],
        ),
        (
            "wraith_state",
            GAUGE,
            "1 for the state the run is in (the status line's State), 0 for the others.",
            states,
        ),
        (
            "wraith_cut_over_attempts_total",
            COUNTER,
            "Cut-over attempts made.",
            plain(s.cut_over_attempts.to_string()),
        ),
    ];
    if let Some(wait) = s.writer_wait {
        families.push((
            "wraith_cut_over_writer_wait_seconds",
            GAUGE,
            "How long the swap blocked writers of the table.",
            seconds(wait),
        ));
    }
    if let Some(p) = &s.process {
        families.extend([
            (
                "process_resident_memory_bytes",
                GAUGE,
                "Resident memory size in bytes.",
                plain(p.resident_bytes.to_string()),
            ),
            (
                "process_cpu_seconds_total",
                COUNTER,
                "Total user and system CPU time spent in seconds.",
                plain(p.cpu_seconds.to_string()),
            ),
            (
                "process_threads",
                GAUGE,
                "Number of OS threads in the process.",
                plain(p.threads.to_string()),
            ),
            (
                "process_open_fds",
                GAUGE,
                "Number of open file descriptors.",
                plain(p.open_fds.to_string()),
            ),
        ]);
    }
    let mut out = String::new();
    for (name, kind, help, samples) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    out
}

/// `{a="x",b="y"}` with the values escaped as the format asks (`\\`, `\"`, `\n`).
fn labels(pairs: &[(&str, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The whole HTTP response to the request head `head`; `body` renders the metrics.
pub fn respond(head: &str, body: impl FnOnce() -> String) -> Vec<u8> {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target, version) = (words.next(), words.next(), words.next());
    let (status, content_type, text) = match (method, target, version) {
        (Some(method), Some(target), Some(v)) if v.starts_with("HTTP/") => {
            let path = target.split('?').next().unwrap_or_default();
            match (method, path) {
                ("GET" | "HEAD", "/metrics") => {
                    ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
                }
                ("GET" | "HEAD", _) => (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "not found; the metrics are at /metrics\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain; charset=utf-8",
                    "only GET /metrics is served\n".to_string(),
                ),
            }
        }
        _ => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "not an HTTP request\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if method != Some("HEAD") {
        response.extend_from_slice(text.as_bytes());
    }
    response
}

/// Serves `listener` until `stop`; every connection gets one response from `render`.
pub async fn serve<F>(listener: TcpListener, render: F, stop: CancellationToken)
where
    F: Fn() -> String + Send + Sync + Clone + 'static,
{
    let mut clients = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
            Some(_) = clients.join_next(), if !clients.is_empty() => continue,
        };
        match accepted {
            Ok((stream, _)) => {
                clients.spawn(answer(stream, render.clone()));
            }
            Err(e) => {
                tracing::debug!("metrics: accepting a connection failed: {e}");
                // Out of file descriptors and the like: let it pass before trying again.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Reads one request head (up to a blank line) and answers it.
async fn answer(mut stream: TcpStream, render: impl FnOnce() -> String) {
    let mut head = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() || head.is_empty() {
        return;
    }
    let response = respond(&String::from_utf8_lossy(&head), render);
    if let Err(e) = stream.write_all(&response).await {
        tracing::debug!("metrics: answering a scrape failed: {e}");
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            backlog: 3,
            heartbeat_lag: Duration::from_millis(1500),
            throttled: Some("fl\"ag-file /tmp/x".into()),
            state: "throttled".into(),
            cut_over_attempts: 1,
            writer_wait: Some(Duration::from_millis(50)),
            ..Snapshot::example()
        }
    }

    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_exposition_text_has_every_metric_once_with_help_and_type() {
        let info = [("database", "d".to_string()), ("table", "t".to_string())];
        let text = render(&snapshot(), &info);
        assert_eq!(
            samples(&text),
            vec![
                "wraith_info{database=\"d\",table=\"t\"} 1",
                "wraith_rows_copied_total 53000",
                "wraith_rows_estimated 100000",
                "wraith_events_applied_total 812",
                "wraith_backlog 3",
                "wraith_backlog_capacity 1000",
                "wraith_lag_seconds 0.02",
                "wraith_heartbeat_lag_seconds 1.5",
                "wraith_throttled 1",
                "wraith_throttle_info{reason=\"fl\\\"ag-file\"} 1",
                "wraith_state{state=\"migrating\"} 0",
                "wraith_state{state=\"building_deferred_indexes\"} 0",
                "wraith_state{state=\"throttled\"} 1",
                "wraith_state{state=\"checksumming\"} 0",
                "wraith_state{state=\"postponing_cut_over\"} 0",
                "wraith_state{state=\"cutting_over\"} 0",
                "wraith_cut_over_attempts_total 1",
                "wraith_cut_over_writer_wait_seconds 0.05",
            ]
        );
        assert!(text.contains(
            "# HELP wraith_rows_copied_total Rows copied from the original table to the ghost table.\n\
             # TYPE wraith_rows_copied_total counter\nwraith_rows_copied_total 53000\n"
        ));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn before_a_swap_and_unthrottled_the_text_says_so() {
        let mut s = snapshot();
        s.throttled = None;
        s.state = "migrating".into();
        s.writer_wait = None;
        let text = render(&s, &[]);
        assert!(text.contains("\nwraith_throttled 0\n"));
        assert!(text.contains("\nwraith_throttle_info{reason=\"\"} 1\n"));
        assert!(text.contains("\nwraith_state{state=\"migrating\"} 1\n"));
        assert!(!text.contains("writer_wait"));
        assert!(!text.contains("process_"));
    }

    #[test]
    fn the_process_figures_use_prometheus_standard_names() {
        let mut s = snapshot();
        s.process = Some(crate::metrics::process::Stats {
            resident_bytes: 4096,
            cpu_seconds: 1.25,
            threads: 7,
            open_fds: 12,
        });
        let text = render(&s, &[]);
        for sample in [
            "process_resident_memory_bytes 4096",
            "process_cpu_seconds_total 1.25",
            "process_threads 7",
            "process_open_fds 12",
        ] {
            assert!(samples(&text).contains(&sample), "{sample}: {text}");
        }
    }

    fn answer_to(head: &str) -> String {
        String::from_utf8(respond(head, || "m 1\n".to_string())).unwrap()
    }

    #[test]
    fn only_get_metrics_is_answered_with_the_metrics() {
        let ok = answer_to("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(ok.contains("Content-Length: 4\r\n"));
        assert!(ok.ends_with("\r\n\r\nm 1\n"));
        let query = answer_to("GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"));
        let head = answer_to("HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
        assert!(answer_to("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(answer_to("GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(answer_to("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(answer_to("hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(answer_to("").starts_with("HTTP/1.1 400 "));
    }
}
