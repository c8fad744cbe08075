//! The load-comparison harness, `bench/compare.sh`, in its `--smoke` mode:
//! it builds the guests and the native baseline, serves both hello guests
//! with this package's `nimbus` and the baseline (and `wasmtime serve` when
//! bench/.tools has it), drives each with wrk for a second and prints its
//! tables. This checks that the harness works end to end, not how fast
//! anything is.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The harness compiles native-hello (dev profile, in this target dir, so
/// after its first build that is a no-op), then runs four to six one-second
/// loads.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The header of every table `bench/summarize.py` prints.
const TABLE_HEADER: &str =
    "| contestant | req/s | p50 (µs) | p99 (µs) | req/s per round | errors |";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// The target directory this test was built in, so the harness's own
/// `cargo build` calls find the artifacts already built.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` up to `TIMEOUT`; past it, SIGTERM (the harness's trap
/// then stops the server it started), and SIGKILL 15 s later.
fn wait_with_timeout(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for bench/compare.sh") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let grace = Instant::now() + Duration::from_secs(15);
    while Instant::now() < grace {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The cells of the row for `contestant` in `table`.
fn row<'a>(table: &'a str, contestant: &str) -> Option<Vec<&'a str>> {
    table.lines().find_map(|line| {
        let cells: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        // "| a | b |" splits into ["", "a", "b", ""].
        (cells.len() > 2 && cells[1] == contestant).then(|| cells[1..cells.len() - 1].to_vec())
    })
}

fn req_per_sec(cells: &[&str]) -> f64 {
    cells
        .get(1)
        .and_then(|v| v.replace(',', "").parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn compare_harness_smoke() {
    let root = workspace_root();
    let mut child = Command::new("bash")
        .args(["bench/compare.sh", "--smoke", "--duration", "1"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", target_dir(&root))
        // The nimbus these tests run, rather than a `cargo build -p
        // nimbus-cli` whose features resolve differently (see compare.sh).
        .env("BENCH_NIMBUS_BIN", env!("CARGO_BIN_EXE_nimbus"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash bench/compare.sh");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_with_timeout(&mut child);
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let context = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    let status = status.unwrap_or_else(|| {
        panic!(
            "bench/compare.sh --smoke took longer than {}s\n{context}",
            TIMEOUT.as_secs()
        )
    });
    assert!(
        status.success(),
        "bench/compare.sh --smoke: {status}\n{context}"
    );

    for workload in ["p2", "p3", "p3lean"] {
        // Each table runs from its `### <workload>:` heading to the next one.
        let start = stdout
            .find(&format!("### {workload}:"))
            .unwrap_or_else(|| panic!("no `### {workload}:` table\n{context}"));
        let rest = &stdout[start..];
        let table = match rest[4..].find("\n### ") {
            Some(end) => &rest[..end + 4],
            None => rest,
        };
        assert!(
            table.contains(TABLE_HEADER),
            "{workload}: no table header\n{context}"
        );
        for contestant in ["nimbus", "nimbus accounting", "native"] {
            let cells = row(table, contestant)
                .unwrap_or_else(|| panic!("{workload}: no `{contestant}` row\n{context}"));
            assert!(
                req_per_sec(&cells) > 0.0,
                "{workload}/{contestant}: req/s is not positive: {cells:?}\n{context}"
            );
            assert_eq!(
                cells.last().copied(),
                Some("0"),
                "{workload}/{contestant}: wrk saw errors: {cells:?}\n{context}"
            );
        }
        // wasmtime serve either ran (bench/.tools has it) or is reported as
        // skipped, never left out silently.
        assert!(
            row(table, "wasmtime serve").is_some(),
            "{workload}: no `wasmtime serve` row\n{context}"
        );
    }
    if !stdout.contains("| wasmtime serve | skipped") {
        return;
    }
    assert!(
        stdout.contains(
            "wasmtime serve: skipped in smoke mode (not installed; run bench/compare.sh without --smoke to install it)"
        ) || stdout.contains("wasmtime serve: skipped in smoke mode (bench/.tools has wasmtime"),
        "the skip of wasmtime serve is not announced\n{context}"
    );
}
