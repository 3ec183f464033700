//! wraith: triggerless online schema change for MySQL and MariaDB.
//!
//! The modules mirror the data path of `docs/architecture.md`: `cli`/`config` turn the gh-ost
//! command line into one [`config::Config`]; `mysql` owns connections, flavor differences and the
//! one SQL quoting function; `inspect` runs the preflight checks and produces the
//! [`inspect::Plan`]; `binlog` streams and decodes row events; `migration` drives the state
//! machine, and `metrics` shows its progress to statsd and Prometheus; `sandbox` starts
//! throw-away servers for `demo` and the tests, and `verify` compares a migrated table with a
//! natively altered mirror for them.

pub mod apply;
pub mod binlog;
pub mod changelog;
pub mod checkpoint;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod control;
pub mod copy;
pub mod cutover;
pub mod datapath;
pub mod demo;
pub mod failpoint;
pub mod flags_doc;
pub mod hooks;
pub mod inspect;
pub mod metrics;
pub mod migration;
pub mod mysql;
pub mod priority;
pub mod progress;
pub mod sandbox;
pub mod table_lock;
pub mod throttle;
pub mod triggers;
pub mod verify;

/// Locks `mutex`, also after a thread panicked while holding it: every value wraith keeps behind
/// a mutex (counters, texts, findings) stays meaningful, and a panic is reported where it
/// happened, not again at every later lock.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
