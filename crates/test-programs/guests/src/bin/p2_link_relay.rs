//! P2 component that imports and exports `nimbus:link-test/greet`:
//! answers `relay(INNER)` where INNER is what the imported `greet` said.
//! Two of them in one workload make a link cycle; alone, its import is
//! unsatisfied.

wit_bindgen::generate!({
    path: "wit/link",
    world: "nimbus:link-test/relay",
});

struct Relay;

impl exports::nimbus::link_test::greet::Guest for Relay {
    fn greet(name: String) -> String {
        format!("relay({})", nimbus::link_test::greet::greet(&name))
    }
}

export!(Relay);

fn main() {}
