//! P2 library component for workload linking: exports
//! `nimbus:link-test/greet` (answers `hello NAME from LABEL`, LABEL being the
//! `LINK_NAME` env var, default `lib`; the name `trap` makes it trap) and `nimbus:link-test/counters` (a
//! `counter` resource that importers create, borrow, hand back and drop;
//! `live` tells how many are alive, so a test sees drops cross the link).

wit_bindgen::generate!({
    path: "wit/link",
    world: "nimbus:link-test/lib",
});

use exports::nimbus::link_test::counters::{
    Counter, CounterBorrow, Guest as Counters, GuestCounter,
};
use exports::nimbus::link_test::greet::Guest as Greet;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

static LIVE: AtomicU32 = AtomicU32::new(0);

struct Lib;

impl Greet for Lib {
    fn greet(name: String) -> String {
        if name == "trap" {
            panic!("asked to trap");
        }
        let label = std::env::var("LINK_NAME").unwrap_or_else(|_| "lib".into());
        format!("hello {name} from {label}")
    }
}

struct CounterState {
    label: String,
    value: Cell<u32>,
}

impl GuestCounter for CounterState {
    fn new(label: String, start: u32) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Self {
            label,
            value: Cell::new(start),
        }
    }

    fn increment(&self, by: u32) -> u32 {
        self.value.set(self.value.get() + by);
        self.value.get()
    }

    fn describe(&self) -> String {
        format!("{}={}", self.label, self.value.get())
    }
}

impl Drop for CounterState {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counters for Lib {
    type Counter = CounterState;

    fn make(label: String) -> Counter {
        Counter::new(CounterState::new(label, 0))
    }

    fn sum(items: Vec<CounterBorrow<'_>>) -> u32 {
        items
            .iter()
            .map(|c| c.get::<CounterState>().value.get())
            .sum()
    }

    fn finish(item: Counter) -> u32 {
        item.get::<CounterState>().value.get()
    }

    fn live() -> u32 {
        LIVE.load(Ordering::Relaxed)
    }
}

export!(Lib);

fn main() {}
