//! Repeated warnings, rate-limited: a failure that repeats (an accept loop
//! out of file descriptors) logs at most one line per key and interval,
//! and the next line that passes says how many similar ones were held back.
//! Pure: every call takes `now`, so the limits are tested without sleeping.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The interval the daemon's repeated warnings use: at most one line per
/// key every 10 s.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Keys remembered at most; past that, keys whose interval has passed are
/// forgotten (with what they held back, never reported). Keys are few in
/// practice (upstream servers, error kinds); this bounds a mistake.
const MAX_KEYS: usize = 1024;

/// Decides, per key, whether a repeated warning is logged now. Thread-safe
/// (a mutex: warnings are on failure paths, not on the hot path).
#[derive(Debug)]
pub struct RateLimitedWarning<K> {
    interval: Duration,
    keys: Mutex<HashMap<K, Window>>,
}

/// One key's state: when its last line was logged, and how many were
/// held back since.
#[derive(Debug, Clone, Copy)]
struct Window {
    logged: Instant,
    suppressed: u64,
}

/// A warning that may be logged now; its `Display` is the suffix to append
/// to the line: empty, or ` (N similar suppressed in the last Ts)`.
#[must_use = "a passed warning is meant to be logged"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    /// Lines held back since the key's last logged line.
    pub suppressed: u64,
    /// Time since the key's last logged line (zero for a first line).
    pub since: Duration,
}

impl fmt::Display for Passed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suppressed == 0 {
            return Ok(());
        }
        write!(
            f,
            " ({} similar suppressed in the last {}s)",
            self.suppressed,
            self.since.as_secs()
        )
    }
}

impl<K: Eq + Hash> RateLimitedWarning<K> {
    /// At most one line per key every `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLimitedWarning {
            interval,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a warning for `key` happening at `now` is logged: `Some`
    /// for the first line of a key and for the first one at least
    /// `interval` after the key's last logged line, with the count of
    /// those held back in between; `None` (counted) otherwise.
    pub fn pass(&self, key: K, now: Instant) -> Option<Passed> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = keys.get_mut(&key) {
            let since = now.saturating_duration_since(w.logged);
            if since < self.interval {
                w.suppressed += 1;
                return None;
            }
            let passed = Passed {
                suppressed: w.suppressed,
                since,
            };
            *w = Window {
                logged: now,
                suppressed: 0,
            };
            return Some(passed);
        }
        if keys.len() >= MAX_KEYS {
            let interval = self.interval;
            keys.retain(|_, w| now.saturating_duration_since(w.logged) < interval);
            if keys.len() >= MAX_KEYS {
                return None;
            }
        }
        keys.insert(
            key,
            Window {
                logged: now,
                suppressed: 0,
            },
        );
        Some(Passed {
            suppressed: 0,
            since: Duration::ZERO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_interval_then_the_count() {
        let t0 = Instant::now();
        let limit = RateLimitedWarning::new(Duration::from_secs(10));
        let at = |s: u64| t0 + Duration::from_millis(s);
        let first = limit.pass("a", t0).expect("first line passes");
        assert_eq!(first.to_string(), "");
        // Within the interval: held back and counted.
        for ms in [1, 500, 9_999] {
            assert_eq!(limit.pass("a", at(ms)), None, "{ms} ms");
        }
        // Another key has its own window.
        assert!(limit.pass("b", at(500)).is_some());
        assert_eq!(limit.pass("b", at(600)), None);
        // After the interval: passes, with what was held back.
        let next = limit.pass("a", at(10_000)).expect("interval over");
        assert_eq!(
            next,
            Passed {
                suppressed: 3,
                since: Duration::from_secs(10)
            }
        );
        assert_eq!(next.to_string(), " (3 similar suppressed in the last 10s)");
        // A new window starts there, its count from zero.
        assert_eq!(limit.pass("a", at(15_000)), None);
        let next = limit.pass("a", at(42_000)).expect("interval over");
        assert_eq!(next.suppressed, 1);
        assert_eq!(next.to_string(), " (1 similar suppressed in the last 32s)");
        // Nothing held back: no suffix.
        assert_eq!(limit.pass("a", at(60_000)).unwrap().to_string(), "");
        // A clock going backwards does not panic: held back.
        assert_eq!(limit.pass("a", t0), None);
    }

    #[test]
    fn keys_are_bounded() {
        let t0 = Instant::now();
        let limit = RateLimitedWarning::new(Duration::from_secs(10));
        for k in 0..MAX_KEYS {
            assert!(limit.pass(k, t0).is_some());
        }
        // Full, every window live: a new key is held back...
        assert_eq!(limit.pass(MAX_KEYS, t0 + Duration::from_secs(1)), None);
        // ...until the old windows have passed and are forgotten.
        assert!(limit.pass(MAX_KEYS, t0 + Duration::from_secs(10)).is_some());
        assert_eq!(limit.keys.lock().unwrap().len(), 1);
    }

    #[test]
    fn shared_between_threads() {
        let t0 = Instant::now();
        let limit = RateLimitedWarning::new(Duration::from_secs(10));
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| limit.pass((), t0).is_some()).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 1);
        let next = limit.pass((), t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(next.suppressed, 399);
    }
}
