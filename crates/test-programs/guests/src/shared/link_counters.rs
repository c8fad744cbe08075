//! What both linking apps do with the imported `counters` interface: create
//! a counter through a function and one through the constructor, borrow
//! both, hand one back, drop the other, and report what the exporter saw.

use super::nimbus::link_test::counters;

/// `sum=15 live=2 finish=10 live=1 a=5 live=0` when every step crossed the
/// link correctly.
pub fn report() -> String {
    let a = counters::make("a");
    a.increment(5);
    let b = counters::Counter::new("b", 10);
    let sum = counters::sum(&[&a, &b]);
    let live_both = counters::live();
    let finished = counters::finish(b);
    let live_one = counters::live();
    let described = a.describe();
    drop(a);
    let live_none = counters::live();
    format!(
        "sum={sum} live={live_both} finish={finished} live={live_one} {described} live={live_none}\n"
    )
}
