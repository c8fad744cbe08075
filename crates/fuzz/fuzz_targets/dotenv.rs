//! `cargo fuzz run dotenv` (see bench/fuzz.sh); without `--cfg fuzzing` it
//! replays the files named on its command line.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nimbus_fuzz::dotenv(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    nimbus_fuzz::replay_args(nimbus_fuzz::dotenv)
}
