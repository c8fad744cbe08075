//! Where the instances of CPU-limited components run: threads of their own
//! at the lowest scheduling priority (Linux's idle class).
//!
//! A component's budget ([`super::cpu`]) bounds what it uses on average,
//! but acts only at epoch ticks: between two holds an instance runs for up
//! to a whole tick. On the threads that also run the ingress and the
//! unlimited components, a neighbour's request arriving during that slice
//! would wait for it. On threads of their own at a low priority, the
//! kernel hands the core to a normal-priority thread as soon as it has
//! work, so the slice costs the neighbour almost nothing; and when every
//! core is busy, limited components get what the others leave them, never
//! more than their limit. Their own requests slow down, their neighbours'
//! do not.
//!
//! The lane is a tokio runtime with one worker per available core, built
//! the first time a limited component starts an instance and kept for the
//! life of the process. Should it fail to start (no threads left), limited
//! instances run on the caller's runtime as before, and the host says so
//! once.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// The nice value of the lane's threads when the idle class is refused:
/// the lowest there is.
#[cfg(target_os = "linux")]
const NICE: i32 = 19;

static LANE: OnceLock<Option<Runtime>> = OnceLock::new();

/// Runs `task` on the lane (or, if the lane cannot start, where the caller
/// runs).
pub(crate) fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match LANE.get_or_init(build) {
        Some(lane) => drop(lane.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

fn build() -> Option<Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let built = Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("nimbus-cpu-limited")
        .on_thread_start(lower_priority)
        .enable_all()
        .build();
    match built {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            tracing::warn!(
                %error,
                "CPU-limited components run beside the others: their own threads did not start"
            );
            None
        }
    }
}

/// Lowers the calling thread's priority: Linux's idle scheduling class
/// (`SCHED_IDLE`), whose threads a waking normal thread preempts at once,
/// or, should that be refused, nice 19. Linux keeps both per thread;
/// elsewhere `setpriority` would lower the whole process, so the lane's
/// threads keep the normal priority there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = idle_class() {
        tracing::debug!(%error, "the CPU-limited lane's thread is not in the idle class");
        if let Err(error) = rustix::process::setpriority_process(None, NICE) {
            tracing::debug!(%error, "the CPU-limited lane's thread keeps its priority");
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn idle_class() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, and
    // pid 0 names the calling thread; the call reads nothing else.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_low_priority_threads_of_their_own() {
        #[allow(unsafe_code)]
        // SAFETY: no arguments; reads the calling thread's policy.
        let caller = unsafe { libc::sched_getscheduler(0) };
        assert_ne!(caller, libc::SCHED_IDLE);
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn(async move {
            let thread = std::thread::current().name().map(str::to_owned);
            // SAFETY: no arguments; reads the calling thread's policy.
            #[allow(unsafe_code)]
            let policy = unsafe { libc::sched_getscheduler(0) };
            let _ = tx.send((thread, policy));
        });
        let (thread, policy) = rx.await.unwrap();
        assert_eq!(thread.as_deref(), Some("nimbus-cpu-limited"));
        assert_eq!(policy, libc::SCHED_IDLE);
        // The caller's own thread keeps its class.
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let own = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(own, caller);
    }
}
