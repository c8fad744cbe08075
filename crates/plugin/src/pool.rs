//! The backends a plugin has opened, kept per host so connections are
//! pooled rather than opened per workload or per request.
//!
//! Backends with the same settings are shared by every workload; in-memory
//! backends are the exception: each workload gets its own, dropped when the
//! workload stops.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Opened backends of type `B`, keyed by their settings `S`.
pub struct BackendPool<S, B: ?Sized> {
    open: Mutex<HashMap<PoolKey<S>, Arc<B>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PoolKey<S> {
    /// An in-memory backend of one workload.
    Memory(String),
    /// A backend shared by all workloads with these settings.
    Shared(S),
}

impl<S: Clone + Eq + Hash, B: ?Sized> Default for BackendPool<S, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Eq + Hash, B: ?Sized> BackendPool<S, B> {
    /// An empty pool.
    pub fn new() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The backend for `settings` (or, when `in_memory`, for `workload`),
    /// opened with `open` the first time; `open`'s error is returned as is
    /// and nothing is kept, so the next call tries again.
    pub fn get_or_open<E>(
        &self,
        workload: &str,
        settings: &S,
        in_memory: bool,
        open: impl FnOnce() -> Result<Arc<B>, E>,
    ) -> Result<Arc<B>, E> {
        let key = if in_memory {
            PoolKey::Memory(workload.to_string())
        } else {
            PoolKey::Shared(settings.clone())
        };
        let mut pool = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = pool.get(&key) {
            return Ok(backend.clone());
        }
        let backend = open()?;
        pool.insert(key, backend.clone());
        Ok(backend)
    }

    /// Drops `workload`'s in-memory backend (its data goes with it).
    pub fn forget_workload(&self, workload: &str) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&PoolKey::Memory(workload.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_backends_are_opened_once_and_memory_ones_per_workload() {
        let pool = BackendPool::<&str, String>::new();
        let opened = std::cell::Cell::new(0);
        let open = |name: &str| {
            opened.set(opened.get() + 1);
            Ok::<_, &str>(Arc::new(name.to_string()))
        };
        let a = pool
            .get_or_open("w1", &"redis", false, || open("r"))
            .unwrap();
        let b = pool
            .get_or_open("w2", &"redis", false, || open("r"))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let m1 = pool.get_or_open("w1", &"mem", true, || open("m1")).unwrap();
        let m2 = pool.get_or_open("w2", &"mem", true, || open("m2")).unwrap();
        assert!(!Arc::ptr_eq(&m1, &m2));
        assert_eq!(opened.get(), 3);
        pool.forget_workload("w1");
        let again = pool
            .get_or_open("w1", &"mem", true, || open("m1b"))
            .unwrap();
        assert_eq!(*again, "m1b");
        assert!(Arc::ptr_eq(
            &pool.get_or_open("w2", &"mem", true, || open("x")).unwrap(),
            &m2
        ));
        assert_eq!(
            pool.get_or_open("w3", &"bad", false, || Err("down")).err(),
            Some("down")
        );
        // A failed open is not kept: the next call opens again.
        let retried = pool
            .get_or_open("w3", &"bad", false, || open("up"))
            .unwrap();
        assert_eq!(*retried, "up");
    }
}
