//! `cpuLimit`: a component over its CPU share is held at its next yield,
//! not killed; its own requests slow down, its neighbours' do not. CPU is
//! read from the host's own guest-CPU series (`nimbus_guest_cpu_seconds_total`,
//! checked against the process's clock in `accounting`), held time from
//! `nimbus_guest_cpu_throttled_seconds_total`. Bounds are generous (a
//! limited spinner must stay far below what it takes unlimited) and no
//! timing is asserted; waits are bounded only as hang guards.

use crate::accounting::{sample, scrape};
use crate::common;

use common::*;
use std::time::{Duration, Instant};
use test_programs::{P2_BEHAVIORS, P2_HELLO, P2_HOSTILE, P3_HELLO};

/// The limit under test, in cores.
const LIMIT: f64 = 0.25;

/// What a component at `LIMIT` may save up and spend at once: one window
/// (`limits::cpu::WINDOW`, 1 s) at the limit.
const BURST_SECONDS: f64 = LIMIT;

/// Guest CPU and held seconds of workload `name`'s component so far.
fn usage(t: &TestHost, name: &str) -> (f64, f64) {
    let text = t.host.metrics().encode();
    let scrape = scrape(&text);
    let labels = [("workload", name)];
    let cpu = sample(&scrape, "nimbus_guest_cpu_seconds_total", &labels).unwrap_or(0.0);
    let held = sample(&scrape, "nimbus_guest_cpu_throttled_seconds_total", &labels)
        .expect("every component has a throttled series");
    (cpu, held)
}

/// Runs two requests to `path` of `guest`, a component that spins until
/// its 3 s deadline, under `cpuLimit: 0.25`, beside an unlimited neighbour
/// that must keep answering; checks the CPU the spinner got and that it
/// was held.
async fn spinner_is_held_to_its_share(guest: &str, path: &str) {
    let t = accounting_host().await;
    let mut spinner = http_workload("spinner", guest, "spinner.test");
    resources(&mut spinner).cpu_limit = Some("0.25".parse().unwrap());
    resources(&mut spinner).timeout_ms = Some(3_000);
    t.host.start_workload(spinner).await.unwrap();
    t.host
        .start_workload(http_workload("neighbour", P2_HELLO, "neighbour.test"))
        .await
        .unwrap();
    assert_eq!(t.get("neighbour.test", "/").await.0, 200);

    let (cpu_before, held_before) = usage(&t, "spinner");
    let (lane_before, process_before) = lane_and_process_ticks();
    let started = Instant::now();
    // Two at once: the limit is the component's, across its instances.
    let spins: Vec<_> = (0..2)
        .map(|_| spawn_get(t.addr, "spinner.test", path))
        .collect();
    eventually("the spinner was held over its limit", || {
        usage(&t, "spinner").1 > held_before
    })
    .await;
    // While the spinner is held, the neighbour answers.
    let mut answered = 0;
    while !spins.iter().all(|spin| spin.is_finished()) {
        assert_eq!(
            t.get("neighbour.test", "/").await.0,
            200,
            "a neighbour without a limit answers while the spinner is held"
        );
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for spin in spins {
        let (status, body) = spin.await.unwrap();
        // Held, not killed: the request ends at its deadline, as a slow
        // guest's would.
        assert_eq!(status, 504, "{body}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_after, held_after) = usage(&t, "spinner");
    let (cpu, held) = (cpu_after - cpu_before, held_after - held_before);
    eprintln!(
        "{guest}{path}: {cpu:.3} s of CPU in {elapsed:.3} s ({:.2} cores), held {held:.3} s, neighbour answered {answered} times",
        cpu / elapsed
    );
    // Its share over the run plus one saved window, with a fifth more and
    // 0.1 s for what runs between a poll and its charge. Unlimited, two
    // spinners take close to two cores for the whole run.
    let allowed = (LIMIT * elapsed + BURST_SECONDS) * 1.2 + 0.1;
    assert!(
        cpu <= allowed,
        "{cpu:.3} s of CPU in {elapsed:.3} s under a limit of {LIMIT} core (at most {allowed:.3} s)"
    );
    // Two instances held for most of three seconds each.
    assert!(held > 1.0, "held only {held:.3} s");
    // It ran on the low-priority lane, not beside its neighbour: most of
    // the process's CPU over the run was on the lane's threads.
    let (lane_after, process_after) = lane_and_process_ticks();
    let (lane, process) = (lane_after - lane_before, process_after - process_before);
    assert!(
        lane * 2 > process,
        "the lane's threads ran {lane} of the process's {process} ticks"
    );
    assert!(answered > 0);
    // The workload still answers once its debt is paid.
    assert_eq!(t.get("neighbour.test", "/").await.0, 200);
}

/// CPU clock ticks (user and system) so far of the threads of the
/// CPU-limited lane (`limits::lane`, each in the idle scheduling class)
/// and of the whole process.
fn lane_and_process_ticks() -> (u64, u64) {
    // Fields after the command name's closing parenthesis: state is the
    // first, utime and stime the 12th and 13th, the policy the 39th.
    fn fields(stat: &str) -> Vec<String> {
        let after = &stat[stat.rfind(')').expect("a stat line") + 1..];
        after.split_whitespace().map(str::to_owned).collect()
    }
    let ticks = |f: &[String]| f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let mut lane = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with("nimbus-cpu-lim") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // it ended meanwhile
        };
        let f = fields(&stat);
        // 5: SCHED_IDLE.
        assert_eq!(f[38], "5", "a lane thread with scheduling policy {}", f[38]);
        lane += ticks(&f);
    }
    let process = ticks(&fields(
        &std::fs::read_to_string("/proc/self/stat").unwrap(),
    ));
    (lane, process)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p2_spinner_is_held_to_its_cpu_limit_and_its_neighbour_answers() {
    spinner_is_held_to_its_share(P2_HOSTILE, "/spin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_spinner_is_held_to_its_cpu_limit_and_its_neighbour_answers() {
    spinner_is_held_to_its_share(P3_HELLO, "/loop").await;
}

/// A P2 component that never spins but answers request after request of a
/// few milliseconds each is held too: before each new instance, when it is
/// over its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_requests_are_held_to_the_cpu_limit_too() {
    let t = accounting_host().await;
    let mut busy = http_workload("busy", P2_BEHAVIORS, "busy.test");
    resources(&mut busy).cpu_limit = Some("250m".parse().unwrap());
    t.host.start_workload(busy).await.unwrap();
    assert_eq!(t.get("busy.test", "/ok").await.0, 200);

    let (cpu_before, held_before) = usage(&t, "busy");
    let started = Instant::now();
    let mut served = 0;
    // Back to back for two seconds: unlimited, this keeps most of a core
    // busy.
    while started.elapsed() < Duration::from_secs(2) {
        let (status, body) = t.get("busy.test", "/burn?ms=5").await;
        assert_eq!(status, 200, "{body}");
        served += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_after, held_after) = usage(&t, "busy");
    let (cpu, held) = (cpu_after - cpu_before, held_after - held_before);
    eprintln!(
        "{served} requests: {cpu:.3} s of CPU in {elapsed:.3} s ({:.2} cores), held {held:.3} s",
        cpu / elapsed
    );
    let allowed = (LIMIT * elapsed + BURST_SECONDS) * 1.2 + 0.1;
    assert!(
        cpu <= allowed,
        "{cpu:.3} s of CPU in {elapsed:.3} s under a limit of {LIMIT} core (at most {allowed:.3} s)"
    );
    assert!(held > 0.0, "never held");
}
