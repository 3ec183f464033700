//! The process's own figures: resident memory, CPU time, threads and open files.
//!
//! In: `/proc/self` (Linux). Out: [`Stats`], or `None` where `/proc` cannot be read. These are
//! wraith's counterpart of gh-ost's Go runtime metrics (`--runtime-metrics-interval`).
//! Invariant: reading them costs a few small file reads and never fails the caller.

/// One reading of the process's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub resident_bytes: u64,
    /// User and system CPU time since the process started.
    pub cpu_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
}

impl Stats {
    /// The `runtime:` log line's text.
    pub fn summary(&self) -> String {
        format!(
            "resident memory {:.1} MiB, CPU {:.2}s, {} threads, {} open files",
            self.resident_bytes as f64 / (1024.0 * 1024.0),
            self.cpu_seconds,
            self.threads,
            self.open_fds
        )
    }
}

/// Reads the figures now (`None` where `/proc/self` is not there).
pub fn sample() -> Option<Stats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // SAFETY: sysconf(3) only reads system configuration.
    let (page, ticks) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    let (resident_pages, cpu_ticks, threads) = parse_stat(&stat)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(Stats {
        resident_bytes: resident_pages * u64::try_from(page).ok()?,
        cpu_seconds: cpu_ticks as f64 / ticks.max(1) as f64,
        threads,
        open_fds,
    })
}

/// From `/proc/<pid>/stat` (proc(5)): resident pages (field 24), user + system CPU ticks
/// (fields 14 and 15) and threads (field 20). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its closing parenthesis.
fn parse_stat(text: &str) -> Option<(u64, u64, u64)> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(24)?, field(14)? + field(15)?, field(20)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_line_is_read_from_after_the_command_name() {
        let line = "4242 (wraith (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 150 50 0 0 20 0 \
                    9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 \
                    0 0 0 0 0";
        assert_eq!(parse_stat(line), Some((2048, 200, 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let stats = sample().expect("/proc/self is readable on Linux");
        assert!(stats.resident_bytes > 0 && stats.threads > 0 && stats.open_fds > 0);
        assert!(stats.summary().starts_with("resident memory "));
    }
}
