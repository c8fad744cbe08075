//! A cap on how many of something are held at once, which refuses past it
//! and never queues: a workload's concurrent requests, a component's and
//! the host's outgoing connections, the ingress's and the admin listener's
//! connections.
//!
//! Nobody ever waits for a place, so a counter is all it takes. tokio's
//! `Semaphore` would do, but takes its waiters' lock on every release, and
//! a workload's admission releases once per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most `max` places, claimed with [`Cap::try_claim`].
#[derive(Debug)]
pub struct Cap {
    held: AtomicUsize,
    max: usize,
}

/// One place under a [`Cap`], given back when dropped.
#[derive(Debug)]
#[must_use = "the place is given back as soon as the claim is dropped"]
pub struct CapClaim(Arc<Cap>);

impl Cap {
    /// A cap of `max` places (0: every claim is refused).
    pub fn new(max: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// How many places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many places are free now.
    pub fn available(&self) -> usize {
        self.max.saturating_sub(self.held.load(Ordering::Relaxed))
    }

    /// A place, or `None` when all are held.
    pub fn try_claim(self: &Arc<Self>) -> Option<CapClaim> {
        self.held
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()
            .map(|_| CapClaim(self.clone()))
    }
}

impl Drop for CapClaim {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_up_to_the_cap_refuses_past_it_and_gets_places_back() {
        let cap = Arc::new(Cap::new(2));
        let first = cap.try_claim().expect("a first place");
        let second = cap.try_claim().expect("a second place");
        assert_eq!(cap.available(), 0);
        assert!(cap.try_claim().is_none(), "no third place");
        drop(first);
        assert_eq!(cap.available(), 1);
        let third = cap.try_claim().expect("the place given back");
        assert!(cap.try_claim().is_none());
        drop((second, third));
        assert_eq!(cap.available(), 2);
        assert_eq!(cap.max(), 2);
    }

    #[test]
    fn a_zero_cap_refuses_everything_and_a_huge_one_is_fine() {
        let none = Arc::new(Cap::new(0));
        assert!(none.try_claim().is_none());
        assert_eq!(none.available(), 0);
        // tokio's `Semaphore::new` panics past `MAX_PERMITS`; a cap does not.
        let huge = Arc::new(Cap::new(usize::MAX));
        let claim = huge.try_claim();
        assert!(claim.is_some());
        assert_eq!(huge.available(), usize::MAX - 1);
    }

    #[test]
    fn claims_from_many_threads_never_exceed_the_cap() {
        let cap = Arc::new(Cap::new(3));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (cap, most) = (cap.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(claim) = cap.try_claim() {
                            let held = cap.max() - cap.available();
                            most.fetch_max(held, Ordering::Relaxed);
                            drop(claim);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most.load(Ordering::Relaxed) <= 3);
        assert_eq!(cap.available(), 3, "every place came back");
    }
}
