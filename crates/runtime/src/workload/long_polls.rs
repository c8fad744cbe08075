//! Which threads have lately run a long poll: guest code for a long
//! stretch within one poll of a task, or anything else long enough that a
//! write held on the thread waited as long.
//!
//! A task that shares a thread with such a poll waits behind it (a
//! guest's epoch tick, 10 ms). The ingress asks here before it holds a
//! response's write back for the end of the scheduler's pass (see
//! `CountedStream` in `nimbus-host`): behind long polls that pass is long
//! too, and the hold would delay the response by as much. The dispatcher's
//! workers record their polls; the ingress records its holds, which
//! catches long polls of tasks that record nothing (services, messaging).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A poll longer than this ran guest code for long. A worker's poll that
/// only starts and answers requests (a P3 batch, a P2 instance's whole
/// request) takes tens of microseconds; a guest computing runs an epoch
/// tick (10 ms) per poll. Well above the first, so that the odd slow poll
/// (the thread preempted, a page-faulting first touch) does not count.
pub const LONG_POLL: Duration = Duration::from_millis(5);

thread_local! {
    /// When a long poll last ended on this thread.
    static LAST_LONG_POLL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Records a stretch on this thread that began at `began` and ended at
/// `ended`: a poll of a task that runs guest code, or a held write's wait.
pub fn record(began: Instant, ended: Instant) {
    if ended.saturating_duration_since(began) > LONG_POLL {
        LAST_LONG_POLL.with(|last| last.set(Some(ended)));
    }
}

/// Whether a long poll ended on this thread less than `window` before `now`.
pub fn within(window: Duration, now: Instant) -> bool {
    LAST_LONG_POLL.with(|last| {
        last.get()
            .is_some_and(|at| now.saturating_duration_since(at) < window)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_polls_count_and_only_on_their_thread_for_the_window() {
        let began = Instant::now();
        let window = Duration::from_secs(1);
        record(began, began + LONG_POLL / 2);
        assert!(
            !within(window, began + LONG_POLL),
            "a short poll is not long"
        );

        let ended = began + LONG_POLL * 3;
        record(began, ended);
        assert!(
            within(window, ended + window / 2),
            "a long poll counts within the window"
        );
        assert!(!within(window, ended + window), "and not after it");
        let elsewhere = std::thread::spawn(move || within(window, ended))
            .join()
            .unwrap();
        assert!(!elsewhere, "another thread ran no long poll");
    }
}
