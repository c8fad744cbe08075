//! Every fuzz target over hostile seeds: the kinds of input that broke
//! parsers elsewhere (deep nesting, huge counts, invalid UTF-8, truncation,
//! aliases, NUL, overlong lines). Each must return; the manifest parser
//! must also stay fast however deep the input (it is bounded before the
//! YAML parser sees it).

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\0asm".to_vec(),
        b"\0asm\x0d\0\x01\0".to_vec(),
        b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f".to_vec(),
        vec![0xff; 1024],
        b"apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {components: [{name: a, image: /dev/zero}]}\n".to_vec(),
        b"a: &x [*x, *x]\nb: *x\n".to_vec(),
        b"KEY=VALUE\n\xef\xbb\xbfK2=v\nK=\0\n==\n".to_vec(),
        br#"{"workloadId":"a/b/c","workload":{"namespace":"a/b","name":"c","spec":{"components":[]}},"replicas":4294967295}"#.to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
    ];
    seeds.push(format!("spec: {}", "[".repeat(200_000)).into_bytes());
    seeds.push(format!("spec: {}", "{a: ".repeat(50_000)).into_bytes());
    seeds.push(format!("x:\n  {}1\n", "- ".repeat(100_000)).into_bytes());
    seeds.push(format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20)).into_bytes());
    seeds.push(format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(10_000)).into_bytes());
    seeds.push(format!("{}=1\n", "K".repeat(1 << 20)).into_bytes());
    seeds
}

/// A fuzz target and its name.
type Target = (&'static str, fn(&[u8]));

#[test]
fn every_target_returns_on_hostile_seeds() {
    let targets: [Target; 6] = [
        ("manifest", nimbus_fuzz::manifest),
        ("project_config", nimbus_fuzz::project_config),
        ("dotenv", nimbus_fuzz::dotenv),
        ("component", nimbus_fuzz::component),
        ("host_api", nimbus_fuzz::host_api),
        ("ingress", nimbus_fuzz::ingress),
    ];
    for seed in seeds() {
        for (name, target) in targets {
            let result = std::panic::catch_unwind(|| target(&seed));
            assert!(
                result.is_ok(),
                "{name} panicked on a seed starting {:?}",
                String::from_utf8_lossy(&seed[..seed.len().min(60)])
            );
        }
    }
}

/// The bound that keeps parsing linear: 100,000 levels are refused by the
/// pre-check, never handed to the YAML parser. Counted, not timed: the
/// refusal names the nesting limit.
#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!(
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {{name: a}}\nspec: {}",
        "[".repeat(100_000)
    );
    let error = nimbus_host::workload::parse_manifest(&deep).unwrap_err();
    assert!(error.message.contains("nest deeper than"), "{error}");
    let error = nimbus_project::config::parse_config(
        &format!("dev: {}", "{a: ".repeat(100_000)),
        std::path::Path::new("config.yaml"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("nest deeper than"), "{error}");
}
