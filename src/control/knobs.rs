//! The settings an operator may change while a migration runs.
//!
//! In: the validated flags at start, then the changes of the interactive commands
//! (`chunk-size=`, `max-lag-millis=`, `max-load=`, ...). Out: the current values, read anew by the
//! copy at each chunk (chunk size, nice ratio), by the apply loop at each batch (DML batch size),
//! by the throttler at each check (lag limit, loads, throttle query and URL, control replicas)
//! and by the postponement (its flag file). Invariant: a value is checked as its flag is checked
//! at start before it is stored; a bad one changes nothing.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::{self, Config, ConfigError, LoadThreshold};
use crate::mysql::Endpoint;

/// One setting an interactive command can read (`name=?`) or change (`name=value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    ChunkSize,
    DmlBatchSize,
    MaxLagMillis,
    NiceRatio,
    MaxLoad,
    CriticalLoad,
    ThrottleQuery,
    ThrottleHttp,
    ThrottleControlReplicas,
    PostponeCutOverFlagFile,
}

impl Knob {
    pub const ALL: [Knob; 10] = [
        Knob::ChunkSize,
        Knob::DmlBatchSize,
        Knob::MaxLagMillis,
        Knob::NiceRatio,
        Knob::MaxLoad,
        Knob::CriticalLoad,
        Knob::ThrottleQuery,
        Knob::ThrottleHttp,
        Knob::ThrottleControlReplicas,
        Knob::PostponeCutOverFlagFile,
    ];

    /// The name as typed in a command and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Knob::ChunkSize => "chunk-size",
            Knob::DmlBatchSize => "dml-batch-size",
            Knob::MaxLagMillis => "max-lag-millis",
            Knob::NiceRatio => "nice-ratio",
            Knob::MaxLoad => "max-load",
            Knob::CriticalLoad => "critical-load",
            Knob::ThrottleQuery => "throttle-query",
            Knob::ThrottleHttp => "throttle-http",
            Knob::ThrottleControlReplicas => "throttle-control-replicas",
            Knob::PostponeCutOverFlagFile => "postpone-cut-over-flag-file",
        }
    }

    pub fn named(name: &str) -> Option<Knob> {
        Knob::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The settings that take text, behind one lock.
#[derive(Debug, Clone, Default)]
struct Texts {
    max_load: Vec<LoadThreshold>,
    critical_load: Vec<LoadThreshold>,
    throttle_query: String,
    throttle_http: String,
    control_replicas: Vec<Endpoint>,
    postpone_flag_file: String,
}

/// The current values; shared (`Arc<Knobs>`) by every stage that reads one.
#[derive(Debug)]
pub struct Knobs {
    chunk_size: Arc<AtomicI64>,
    dml_batch_size: Arc<AtomicUsize>,
    max_lag_ms: AtomicU64,
    nice_ratio_bits: AtomicU64,
    texts: Mutex<Texts>,
    /// The port of a control replica named without one (`--port`).
    default_port: u16,
}

impl Knobs {
    /// The values the run starts with (the flags, already validated by `config`).
    pub fn from_config(cfg: &Config) -> Result<Knobs, ConfigError> {
        let f = &cfg.flags;
        let knobs = Knobs {
            chunk_size: Arc::new(AtomicI64::new(f.chunk_size)),
            dml_batch_size: Arc::new(AtomicUsize::new(f.dml_batch_size as usize)),
            max_lag_ms: AtomicU64::new(f.max_lag_millis as u64),
            nice_ratio_bits: AtomicU64::new(f.nice_ratio.to_bits()),
            texts: Mutex::default(),
            default_port: f.port,
        };
        knobs.set(Knob::MaxLoad, &f.max_load)?;
        knobs.set(Knob::CriticalLoad, &f.critical_load)?;
        knobs.set(Knob::ThrottleQuery, &f.throttle_query)?;
        knobs.set(Knob::ThrottleHttp, &f.throttle_http)?;
        knobs.set(Knob::ThrottleControlReplicas, &f.throttle_control_replicas)?;
        knobs.set(
            Knob::PostponeCutOverFlagFile,
            &f.postpone_cut_over_flag_file,
        )?;
        Ok(knobs)
    }

    fn texts(&self) -> MutexGuard<'_, Texts> {
        crate::lock(&self.texts)
    }

    /// Checks `value` as the flag of the same name is checked, and stores it.
    pub fn set(&self, knob: Knob, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        let number = |flag: &'static str| {
            value.parse::<i64>().map_err(|_| ConfigError::Invalid {
                flag,
                message: format!("`{value}` is not a whole number"),
            })
        };
        match knob {
            Knob::ChunkSize => {
                let n = number("chunk-size")?;
                config::range("chunk-size", n, 10, 100_000)?;
                self.chunk_size.store(n, Ordering::Relaxed);
            }
            Knob::DmlBatchSize => {
                let n = number("dml-batch-size")?;
                config::range("dml-batch-size", n, 1, 100)?;
                self.dml_batch_size.store(n as usize, Ordering::Relaxed);
            }
            Knob::MaxLagMillis => {
                let n = number("max-lag-millis")?;
                config::range("max-lag-millis", n, 100, i64::MAX)?;
                self.max_lag_ms.store(n as u64, Ordering::Relaxed);
            }
            Knob::NiceRatio => {
                let ratio = config::nice_ratio(value)?;
                self.nice_ratio_bits
                    .store(ratio.to_bits(), Ordering::Relaxed);
            }
            Knob::MaxLoad => self.texts().max_load = config::parse_load("max-load", value)?,
            Knob::CriticalLoad => {
                self.texts().critical_load = config::parse_load("critical-load", value)?
            }
            Knob::ThrottleQuery => self.texts().throttle_query = value.to_string(),
            Knob::ThrottleHttp => {
                config::check_throttle_http(value)?;
                self.texts().throttle_http = value.to_string();
            }
            Knob::ThrottleControlReplicas => {
                config::check_control_replicas(value)?;
                self.texts().control_replicas = value
                    .split(',')
                    .filter_map(|r| Endpoint::parse(r, self.default_port))
                    .collect();
            }
            Knob::PostponeCutOverFlagFile => self.texts().postpone_flag_file = value.to_string(),
        }
        Ok(())
    }

    /// The value as a command prints it for `name=?` (the form `name=` accepts).
    pub fn get(&self, knob: Knob) -> String {
        let loads = |l: &[LoadThreshold]| {
            l.iter()
                .map(|t| format!("{}={}", t.variable, t.threshold))
                .collect::<Vec<_>>()
                .join(",")
        };
        match knob {
            Knob::ChunkSize => self.chunk_size().to_string(),
            Knob::DmlBatchSize => self.dml_batch_size().to_string(),
            Knob::MaxLagMillis => self.max_lag().as_millis().to_string(),
            Knob::NiceRatio => self.nice_ratio().to_string(),
            Knob::MaxLoad => loads(&self.texts().max_load),
            Knob::CriticalLoad => loads(&self.texts().critical_load),
            Knob::ThrottleQuery => self.throttle_query(),
            Knob::ThrottleHttp => self.throttle_http(),
            Knob::ThrottleControlReplicas => self
                .control_replicas()
                .iter()
                .map(Endpoint::to_string)
                .collect::<Vec<_>>()
                .join(","),
            Knob::PostponeCutOverFlagFile => self.postpone_flag_file(),
        }
    }

    pub fn chunk_size(&self) -> i64 {
        self.chunk_size.load(Ordering::Relaxed)
    }

    /// The chunk size as the chunker shares it.
    pub fn chunk_size_handle(&self) -> Arc<AtomicI64> {
        self.chunk_size.clone()
    }

    pub fn dml_batch_size(&self) -> usize {
        self.dml_batch_size.load(Ordering::Relaxed)
    }

    /// The DML batch size as the apply loop shares it.
    pub fn dml_batch_size_handle(&self) -> Arc<AtomicUsize> {
        self.dml_batch_size.clone()
    }

    pub fn max_lag(&self) -> Duration {
        Duration::from_millis(self.max_lag_ms.load(Ordering::Relaxed))
    }

    pub fn nice_ratio(&self) -> f64 {
        f64::from_bits(self.nice_ratio_bits.load(Ordering::Relaxed))
    }

    pub fn max_load(&self) -> Vec<LoadThreshold> {
        self.texts().max_load.clone()
    }

    pub fn critical_load(&self) -> Vec<LoadThreshold> {
        self.texts().critical_load.clone()
    }

    pub fn throttle_query(&self) -> String {
        self.texts().throttle_query.clone()
    }

    pub fn throttle_http(&self) -> String {
        self.texts().throttle_http.clone()
    }

    pub fn control_replicas(&self) -> Vec<Endpoint> {
        self.texts().control_replicas.clone()
    }

    /// `--postpone-cut-over-flag-file` (empty: none).
    pub fn postpone_flag_file(&self) -> String {
        self.texts().postpone_flag_file.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> Knobs {
        Knobs::from_config(&config::for_tests(&[])).unwrap()
    }

    #[test]
    fn a_value_is_checked_like_its_flag_and_a_bad_one_changes_nothing() {
        let k = knobs();
        assert_eq!(k.get(Knob::ChunkSize), "1000");
        k.set(Knob::ChunkSize, "250").unwrap();
        assert_eq!(k.chunk_size(), 250);
        for bad in ["5", "200000", "lots", ""] {
            assert!(k.set(Knob::ChunkSize, bad).is_err(), "{bad}");
        }
        assert_eq!(k.chunk_size(), 250);
        assert!(k.set(Knob::MaxLagMillis, "50").is_err());
        k.set(Knob::MaxLagMillis, "3000").unwrap();
        assert_eq!(k.max_lag(), Duration::from_secs(3));
        assert!(k.set(Knob::NiceRatio, "-1").is_err());
        k.set(Knob::NiceRatio, "0.5").unwrap();
        assert_eq!(k.get(Knob::NiceRatio), "0.5");
        assert!(k.set(Knob::MaxLoad, "Threads_running").is_err());
        k.set(Knob::MaxLoad, "Threads_running=25,Threads_connected=200")
            .unwrap();
        assert_eq!(
            k.get(Knob::MaxLoad),
            "Threads_running=25,Threads_connected=200"
        );
        assert!(k.set(Knob::ThrottleHttp, "https://x/").is_err());
        k.set(Knob::ThrottleControlReplicas, "r1,r2:3307").unwrap();
        assert_eq!(k.get(Knob::ThrottleControlReplicas), "r1:3306,r2:3307");
        assert!(k.set(Knob::ThrottleControlReplicas, "r1:port").is_err());
        k.set(Knob::MaxLoad, "").unwrap();
        assert!(k.max_load().is_empty());
    }

    #[test]
    fn every_knob_has_a_name_that_finds_it() {
        for knob in Knob::ALL {
            assert_eq!(Knob::named(knob.name()), Some(knob));
        }
        assert_eq!(Knob::named("chunk_size"), None);
    }
}
