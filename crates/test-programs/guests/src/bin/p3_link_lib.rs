//! P3 library component for workload linking: exports
//! `nimbus:link-test/async-greet`, an async function that waits 1 ms on the
//! WASI 0.3 clock (a real suspension inside the linked call) and answers
//! `async(INNER)`, INNER coming from the `greet` it imports in turn.

wit_bindgen_p3::generate!({
    path: "wit/link",
    world: "nimbus:link-test/p3-lib",
    runtime_path: "wit_bindgen_p3::rt",
});

struct Lib;

impl exports::nimbus::link_test::async_greet::Guest for Lib {
    async fn greet(name: String) -> String {
        wasip3::clocks::monotonic_clock::wait_for(1_000_000).await;
        format!("async({})", nimbus::link_test::greet::greet(&name))
    }
}

export!(Lib);

fn main() {}
