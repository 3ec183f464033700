//! The integration suite: one test binary, so the server pair starts once per run.
//!
//! Every test here runs wraith (or its library) against real servers started by [`harness`] and
//! asserts on the data those servers hold afterwards.

mod alter_safety;
mod binlog;
mod checksum;
mod cli;
mod compare;
mod control;
mod faults;
mod harness;
mod hooks;
mod instant;
mod memory;
mod metrics;
mod migrate;
mod names;
mod preflight;
mod replica_modes;
mod resume;
mod revert;
mod rows;
mod shapes;
mod throttling;
mod triggers;
mod writers;
