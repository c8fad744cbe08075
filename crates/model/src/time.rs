//! Moments reached from configured durations.
//!
//! A timeout a user sets may be past what an `Instant` holds
//! (`--timeout 18446744073709551615s`), and `Instant + Duration` panics
//! there. Every wait the host or the CLI computes from a configured
//! duration goes through [`deadline`], which reads such a timeout as "as
//! good as never".

use std::time::{Duration, Instant};

/// About 30 years: as good as never for anything a host waits on.
pub const FOREVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `at + wait`, or [`FOREVER`] after `at` where that sum is past what an
/// `Instant` holds.
pub fn deadline(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(FOREVER))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_the_sum_when_it_fits_and_forever_when_not() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline(now, Duration::MAX), now + FOREVER);
        assert_eq!(deadline(now, Duration::from_secs(u64::MAX)), now + FOREVER);
    }
}
