//! wraith's CPU priority on the host it runs on.
//!
//! In: `--cpu-nice` (from `main`, once the flags are read, for a migration run only; `wraith
//! demo` and the library's callers keep their priority). Out: every thread of the process at
//! that nice value ([`lower`]), and, while an [`Urgent`] guard lives (the checksum's snapshot
//! and the cut-over, which hold a lock on the original table), at the value wraith started with;
//! the heartbeat, whose timing paces the copy, on a thread that stays there ([`on_own_thread`]);
//! back at that value too while wraith has fallen behind the binlog it reads (its own lag, not
//! the inspected replica's: [`follow_lag`], from [`BEHIND`] until under [`CAUGHT_UP`]); another
//! process's threads at a nice value for the bench ([`set_process`]).
//! Only where the system lets a process raise its priority again (root, `CAP_SYS_NICE`, or an
//! `RLIMIT_NICE` that allows it): elsewhere wraith keeps its priority throughout and says so,
//! since a lock's work at a low priority would wait behind every busier process on the host
//! while the writers wait on the lock.
//!
//! Why: on a host it shares with the servers (the replica's host, or the primary's), wraith's
//! binlog reader and applier compete for the cores the application's queries need. Their CPU is
//! small (a tenth of a core under a write load) but comes in bursts, and at the same priority it
//! took the writers' p95 latency from 12 to 30 ms in the load bench; at a lower priority wraith
//! gets the cores the servers leave idle (docs/performance.md, session 32). A lock on the
//! original table reverses that: the writers wait for wraith, so wraith must not wait for the
//! CPU.
//!
//! Invariant: priority changes only when the process runs; it changes no data, and a failure to
//! change it is logged, never an error. On Linux the nice value is each thread's own, and a new
//! thread takes its creator's, so every change is made to every thread of the process (listed in
//! `/proc/self/task`; Linux only, as wraith is).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The nice values wraith moves between.
#[derive(Debug, Clone, Copy)]
struct Levels {
    /// The nice value the process started with.
    started: i32,
    /// The one it runs at (`--cpu-nice`).
    lowered: i32,
}

static LEVELS: OnceLock<Levels> = OnceLock::new();

/// Puts every thread of the process at nice `nice` (0 to 19), unless it already runs at that or
/// a lower priority, or the system would not let it raise its priority again for a lock (the
/// lock's work would then wait for the CPU behind every busier process, the writers waiting
/// on it). Called once; later calls do nothing.
pub fn lower(nice: i32) {
    if LEVELS.get().is_some() {
        return;
    }
    let Some(started) = current() else {
        tracing::warn!("cannot read wraith's nice value; it runs at the priority it was given");
        return;
    };
    let lowered = nice.clamp(0, 19).max(started);
    if lowered == started {
        return;
    }
    if !may_raise(started) {
        tracing::info!(
            "wraith keeps its priority (nice {started}): it could lower it (--cpu-nice={lowered}) but not raise it again for its lock on the original table, which the writers wait on (that takes root, CAP_SYS_NICE, or an RLIMIT_NICE of at least {}); to run at a lower priority throughout, start it with `nice`",
            20 - started
        );
        return;
    }
    if let Err(e) = set_all(lowered) {
        tracing::warn!("cannot lower wraith's CPU priority to nice {lowered} (--cpu-nice): {e}");
        let _ = set_all(started);
        return;
    }
    let _ = LEVELS.set(Levels { started, lowered });
    tracing::info!(
        "wraith runs at nice {lowered} (--cpu-nice), so that the servers on this host get the cores first; at nice {started} while it holds a lock on the original table"
    );
}

/// While it lives, wraith runs at the priority it started with (where [`lower`] lowered it).
/// Guards may overlap: the priority goes back down when the last one ends.
#[must_use = "the priority goes back down when the guard is dropped"]
pub struct Urgent(Option<Levels>);

/// Live [`Urgent`] guards.
static URGENT: Mutex<usize> = Mutex::new(0);

impl Urgent {
    /// Raises the priority back, if [`lower`] lowered it.
    pub fn begin() -> Urgent {
        let levels = LEVELS.get().copied();
        if let Some(l) = levels {
            let mut live = crate::lock(&URGENT);
            if *live == 0 {
                if let Err(e) = set_all(l.started) {
                    tracing::debug!("raising wraith's priority for the lock: {e}");
                }
            }
            *live += 1;
        }
        Urgent(levels)
    }
}

impl Drop for Urgent {
    fn drop(&mut self) {
        if let Some(l) = self.0 {
            let mut live = crate::lock(&URGENT);
            *live -= 1;
            if *live == 0 {
                if let Err(e) = set_all(l.lowered) {
                    tracing::debug!("lowering wraith's priority after the lock: {e}");
                }
            }
        }
    }
}

/// wraith's own lag behind the binlog it reads from which it runs at the priority it started
/// with ([`follow_lag`]).
pub const BEHIND: Duration = Duration::from_secs(1);

/// The lag under which wraith, back at its started priority for a lag, goes down to
/// `--cpu-nice` again.
pub const CAUGHT_UP: Duration = Duration::from_millis(250);

/// How often [`follow_lag`] reads the lag.
const LAG_EVERY: Duration = Duration::from_millis(250);

/// Whether wraith should run at its started priority for a lag of `lag`, having done so before
/// (`behind`): from [`BEHIND`] on, until the lag is under [`CAUGHT_UP`].
pub fn behind_at(behind: bool, lag: Duration) -> bool {
    if behind {
        lag >= CAUGHT_UP
    } else {
        lag >= BEHIND
    }
}

/// Until `cancel`, reads wraith's own lag behind the binlog it reads (`lag`: the heartbeat's trip
/// less the inspected server's own lag, which a higher priority for wraith cannot shorten) every
/// quarter of a second and holds an [`Urgent`] guard while wraith is behind ([`behind_at`]): at
/// a lower priority the applier would get only the cores the writers leave, and where they leave
/// too few the lag would grow for good. Does nothing where [`lower`] did not lower the priority.
pub async fn follow_lag(lag: impl Fn() -> Duration, cancel: CancellationToken) {
    let Some(levels) = LEVELS.get().copied() else {
        return;
    };
    let mut urgent: Option<Urgent> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = cancel.cancelled() => return,
        }
        let now = lag();
        match (urgent.is_some(), behind_at(urgent.is_some(), now)) {
            (false, true) => {
                tracing::info!(
                    "wraith is {:.1}s behind the binlog it reads: at nice {} until it catches up (--cpu-nice={} again under {:.2}s)",
                    now.as_secs_f64(),
                    levels.started,
                    levels.lowered,
                    CAUGHT_UP.as_secs_f64()
                );
                urgent = Some(Urgent::begin());
            }
            (true, false) => {
                tracing::info!(
                    "wraith caught up with the binlog ({:.2}s behind): at nice {} again (--cpu-nice)",
                    now.as_secs_f64(),
                    levels.lowered
                );
                urgent = None;
            }
            _ => {}
        }
    }
}

/// Threads that keep the priority wraith started with (by thread id): see [`on_own_thread`].
static EXEMPT: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Runs the future `task` makes on a thread of its own, with a runtime of its own (so that its
/// I/O is driven on that thread too), at the priority wraith started with whatever [`lower`]
/// and [`Urgent`] do to the others; the handle ends when it does. For the heartbeat, whose
/// timing paces the copy: it stands for the application's writes, which run at the servers'
/// priority, and timed from a thread at nice 19 it would also time wraith's own wait for a core
/// (at a light load the copy of a wraith at nice 19 took 39 to 67 s where it took 15 to 35 s at
/// nice 0, docs/performance.md, session 32). `name` is the thread's (the system shows 15
/// characters of it).
pub fn on_own_thread<F, Fut>(name: &str, task: F) -> std::io::Result<tokio::task::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let name = name.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let tid = thread_id();
            crate::lock(&EXEMPT).push(tid);
            if let Some(l) = LEVELS.get() {
                if let Err(e) = set_thread(0, l.started) {
                    tracing::debug!("keeping the thread {name} at nice {}: {e}", l.started);
                }
            }
            runtime.block_on(task());
            crate::lock(&EXEMPT).retain(|t| *t != tid);
            let _ = done_tx.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = done_rx.await;
    }))
}

/// The calling thread's id (what `/proc/self/task` lists).
fn thread_id() -> u32 {
    // SAFETY: gettid takes nothing and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The calling thread's nice value.
fn current() -> Option<i32> {
    // getpriority returns -1 both as a value and as an error: errno tells them apart.
    // SAFETY: errno is this thread's; getpriority takes plain integers.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        (nice != -1 || *libc::__errno_location() == 0).then_some(nice)
    }
}

/// Whether a thread of this process may go back to nice `started` once lowered: tried on a
/// thread of its own, so that no other thread's priority changes.
fn may_raise(started: i32) -> bool {
    std::thread::spawn(move || {
        set_thread(0, (started + 1).min(19)).is_ok() && set_thread(0, started).is_ok()
    })
    .join()
    .unwrap_or(false)
}

/// Sets the nice value of thread `tid` (0: the calling thread).
fn set_thread(tid: u32, nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    match unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Sets the nice value of every thread of the process but the exempt ones ([`on_own_thread`]).
/// Twice over the thread list, so that a thread started during the first pass by a thread not
/// yet changed is changed in the second.
fn set_all(nice: i32) -> std::io::Result<()> {
    let exempt = crate::lock(&EXEMPT).clone();
    if !exempt.contains(&thread_id()) {
        set_thread(0, nice)?;
    }
    for _ in 0..2 {
        let Ok(tasks) = threads_of("self") else {
            return Ok(());
        };
        for tid in tasks.filter(|tid| !exempt.contains(tid)) {
            match set_thread(tid, nice) {
                // A thread that ended meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// The thread ids of process `pid` (`self`: this one), from `/proc/<pid>/task`.
fn threads_of(pid: &str) -> std::io::Result<impl Iterator<Item = u32>> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter_map(|t| t.file_name().to_str().and_then(|t| t.parse().ok())))
}

/// Sets every thread of another process, `pid`, at nice `nice` (the bench's
/// `WRAITH_BENCH_APART`, for the replica); returns how many of them took it.
pub fn set_process(pid: u32, nice: i32) -> std::io::Result<usize> {
    Ok(threads_of(&pid.to_string())?
        .filter(|tid| set_thread(*tid, nice).is_ok())
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraith_is_behind_from_a_second_of_lag_until_it_is_under_a_quarter() {
        let ms = Duration::from_millis;
        // Keeping up: a lag under a second changes nothing.
        assert!(!behind_at(false, ms(0)));
        assert!(!behind_at(false, ms(999)));
        assert!(behind_at(false, ms(1_000)));
        // Behind: it stays so while it catches up, down to a quarter of a second.
        assert!(behind_at(true, ms(999)));
        assert!(behind_at(true, ms(250)));
        assert!(!behind_at(true, ms(249)));
    }
}
