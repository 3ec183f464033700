//! gh-ost's statsd metrics, in the DogStatsD line format, pushed over UDP.
//!
//! In: a [`Snapshot`] every interval and the `--statsd-tags`. Out: datagrams of newline-separated
//! lines `name:value|type|#tag:value,...` sent to `--statsd-addr`, each datagram at most
//! [`MAX_DATAGRAM`] bytes. Invariant: a send never fails or slows the run; a failed one is logged
//! at debug and the next interval sends again.
//!
//! The names are gh-ost's (`gh_ost.row_copy.rows_copied`, `gh_ost.lag.heartbeat_seconds`
//! tagged `throttled:true|false`, `gh_ost.throttle.active` ...), so a dashboard built for gh-ost
//! reads wraith's. wraith adds, in the same namespace: `gh_ost.state` (1 for the current state,
//! 0 for the others, tagged `state:<name>`), `gh_ost.cut_over.attempts_total` (a counter, without
//! gh-ost's `outcome` tag), `gh_ost.cut_over.writer_wait_seconds` and `gh_ost.process.*`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::{Snapshot, StatsdTarget, STATES};

/// Every metric's name starts with this, as gh-ost's do.
pub const NAMESPACE: &str = "gh_ost.";

/// The largest datagram sent: one that fits an Ethernet frame with IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1432;

/// The lines for one snapshot; `attempts` is the number of cut-over attempts since the last
/// lines sent (a counter sends its increase).
pub fn lines(s: &Snapshot, attempts: u64, tags: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut metric = |name: &str, value: String, kind: &str, own: &[String]| {
        let mut line = format!("{NAMESPACE}{name}:{value}|{kind}");
        let all: Vec<&str> = own.iter().chain(tags).map(String::as_str).collect();
        if !all.is_empty() {
            line.push_str("|#");
            line.push_str(&all.join(","));
        }
        out.push(line);
    };
    metric("row_copy.rows_copied", s.rows_copied.to_string(), "g", &[]);
    metric(
        "row_copy.rows_estimate",
        s.rows_estimate.to_string(),
        "g",
        &[],
    );
    metric("dml.events_applied", s.events_applied.to_string(), "g", &[]);
    metric("binlog.backlog_size", s.backlog.to_string(), "g", &[]);
    let capacity = s.backlog_capacity.to_string();
    metric("binlog.backlog_capacity", capacity, "g", &[]);
    let used = if s.backlog_capacity == 0 {
        0.0
    } else {
        (s.backlog as f64 / s.backlog_capacity as f64).min(1.0)
    };
    metric("binlog.backlog_utilization", format!("{used:.3}"), "g", &[]);
    let throttled = [format!("throttled:{}", s.throttled.is_some())];
    let lag = format!("{:.3}", s.lag.as_secs_f64());
    metric("lag.replication_seconds", lag, "g", &throttled);
    let heartbeat = format!("{:.3}", s.heartbeat_lag.as_secs_f64());
    metric("lag.heartbeat_seconds", heartbeat, "g", &throttled);
    let active = u8::from(s.throttled.is_some()).to_string();
    metric("throttle.active", active, "g", &[]);
    let current = (!STATES.contains(&s.state.as_str())).then_some(s.state.as_str());
    for state in STATES.iter().copied().chain(current) {
        let on = u8::from(state == s.state).to_string();
        metric("state", on, "g", &[format!("state:{state}")]);
    }
    if attempts > 0 {
        metric("cut_over.attempts_total", attempts.to_string(), "c", &[]);
    }
    if let Some(wait) = s.writer_wait {
        let wait = format!("{:.3}", wait.as_secs_f64());
        metric("cut_over.writer_wait_seconds", wait, "g", &[]);
    }
    if let Some(p) = &s.process {
        let resident = p.resident_bytes.to_string();
        metric("process.resident_bytes", resident, "g", &[]);
        metric(
            "process.cpu_seconds",
            format!("{:.2}", p.cpu_seconds),
            "g",
            &[],
        );
        metric("process.threads", p.threads.to_string(), "g", &[]);
        metric("process.open_fds", p.open_fds.to_string(), "g", &[]);
    }
    out
}

/// `lines` joined by newlines into datagrams of at most `max` bytes (a longer line goes alone).
pub fn datagrams(lines: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some(last) if last.len() + 1 + line.len() <= max => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.clone()),
        }
    }
    out
}

/// A UDP socket that sends to the statsd server.
pub struct Sender {
    socket: UdpSocket,
    addr: SocketAddr,
    tags: Vec<String>,
    /// Cut-over attempts already counted in a sent datagram.
    attempts_sent: u64,
}

impl Sender {
    pub async fn open(target: &StatsdTarget) -> std::io::Result<Sender> {
        let local: SocketAddr = if target.addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        Ok(Sender {
            socket: UdpSocket::bind(local).await?,
            addr: target.addr,
            tags: target.tags.clone(),
            attempts_sent: 0,
        })
    }

    /// Sends `snapshot`; a failure is logged at debug only.
    pub async fn send(&mut self, snapshot: &Snapshot) {
        let attempts = snapshot
            .cut_over_attempts
            .saturating_sub(self.attempts_sent);
        for datagram in datagrams(&lines(snapshot, attempts, &self.tags), MAX_DATAGRAM) {
            if let Err(e) = self.socket.send_to(datagram.as_bytes(), self.addr).await {
                tracing::debug!("statsd: sending to {} failed: {e}", self.addr);
                return;
            }
        }
        self.attempts_sent = snapshot.cut_over_attempts;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::process::Stats;

    #[test]
    fn gauges_have_gh_osts_names_and_every_line_carries_the_tags() {
        let tags = vec!["env:prod".to_string(), "team:db".to_string()];
        let lines = lines(&Snapshot::example(), 0, &tags);
        let expected = [
            "gh_ost.row_copy.rows_copied:53000|g|#env:prod,team:db",
            "gh_ost.row_copy.rows_estimate:100000|g|#env:prod,team:db",
            "gh_ost.dml.events_applied:812|g|#env:prod,team:db",
            "gh_ost.binlog.backlog_size:250|g|#env:prod,team:db",
            "gh_ost.binlog.backlog_capacity:1000|g|#env:prod,team:db",
            "gh_ost.binlog.backlog_utilization:0.250|g|#env:prod,team:db",
            "gh_ost.lag.replication_seconds:0.020|g|#throttled:false,env:prod,team:db",
            "gh_ost.lag.heartbeat_seconds:0.080|g|#throttled:false,env:prod,team:db",
            "gh_ost.throttle.active:0|g|#env:prod,team:db",
            "gh_ost.state:1|g|#state:migrating,env:prod,team:db",
            "gh_ost.state:0|g|#state:building_deferred_indexes,env:prod,team:db",
            "gh_ost.state:0|g|#state:throttled,env:prod,team:db",
            "gh_ost.state:0|g|#state:checksumming,env:prod,team:db",
            "gh_ost.state:0|g|#state:postponing_cut_over,env:prod,team:db",
            "gh_ost.state:0|g|#state:cutting_over,env:prod,team:db",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn without_tags_a_line_has_no_tag_section() {
        let lines = lines(&Snapshot::example(), 0, &[]);
        assert_eq!(lines[0], "gh_ost.row_copy.rows_copied:53000|g");
        assert_eq!(
            lines[7],
            "gh_ost.lag.heartbeat_seconds:0.080|g|#throttled:false"
        );
    }

    #[test]
    fn throttling_the_cut_over_and_the_process_show_when_they_apply() {
        let mut s = Snapshot::example();
        s.throttled = Some("flag-file /tmp/x".into());
        s.state = "throttled".into();
        s.cut_over_attempts = 3;
        s.writer_wait = Some(Duration::from_millis(55));
        s.process = Some(Stats {
            resident_bytes: 4096,
            cpu_seconds: 1.5,
            threads: 7,
            open_fds: 12,
        });
        let lines = lines(&s, 2, &[]);
        for line in [
            "gh_ost.lag.replication_seconds:0.020|g|#throttled:true",
            "gh_ost.throttle.active:1|g",
            "gh_ost.state:0|g|#state:migrating",
            "gh_ost.state:1|g|#state:throttled",
            "gh_ost.cut_over.attempts_total:2|c",
            "gh_ost.cut_over.writer_wait_seconds:0.055|g",
            "gh_ost.process.resident_bytes:4096|g",
            "gh_ost.process.cpu_seconds:1.50|g",
            "gh_ost.process.threads:7|g",
            "gh_ost.process.open_fds:12|g",
        ] {
            assert!(
                lines.iter().any(|l| l == line),
                "{line} missing: {lines:#?}"
            );
        }
    }

    #[test]
    fn a_state_of_its_own_is_sent_too() {
        let mut s = Snapshot::example();
        s.state = "resting".into();
        let lines = lines(&s, 0, &[]);
        assert!(lines.contains(&"gh_ost.state:1|g|#state:resting".to_string()));
        assert!(lines.contains(&"gh_ost.state:0|g|#state:migrating".to_string()));
    }

    #[test]
    fn datagrams_join_lines_up_to_the_size_limit() {
        let lines: Vec<String> = ["aaaa", "bbbb", "cccc", "dddddddddddd"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            datagrams(&lines, 9),
            vec!["aaaa\nbbbb", "cccc", "dddddddddddd"]
        );
        let all = datagrams(&lines, MAX_DATAGRAM);
        assert_eq!(all, vec!["aaaa\nbbbb\ncccc\ndddddddddddd"]);
    }
}
