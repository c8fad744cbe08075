//! P3 service (`wasi:cli/run@0.3.0`, wasip3 0.9): each run waits
//! `$CRASH_AFTER_MS` (default 50) on the WASI 0.3 monotonic clock, then
//! traps, so a supervisor restarts it. With `$EXIT_OK` set it returns `Ok`
//! instead, which ends the service.

struct Service;

wasip3::cli::command::export!(Service);

impl wasip3::exports::cli::run::Guest for Service {
    async fn run() -> Result<(), ()> {
        let ms: u64 = std::env::var("CRASH_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        if std::env::var("EXIT_OK").is_ok() {
            return Ok(());
        }
        panic!("p3 service crashed on purpose");
    }
}

fn main() {}
