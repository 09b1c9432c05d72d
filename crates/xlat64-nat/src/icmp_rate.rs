//! Rate limit of the ICMP errors the gateway sends itself (RFC 4443
//! §2.4(f), RFC 1812 §4.3.2.8): a token bucket driven by the caller's clock,
//! so that a flood of offending packets cannot turn the gateway into a
//! flood of errors.

use std::time::Instant;

/// Token bucket: `rate` tokens per second, at most `burst` saved.
#[derive(Debug)]
pub(crate) struct IcmpRateLimit {
    rate: u32,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl IcmpRateLimit {
    /// `rate` errors per second (0: none), with bursts of up to a tenth of a
    /// second's worth (at least 10).
    pub(crate) fn new(rate: u32) -> Self {
        let burst = (f64::from(rate) / 10.0).max(10.0).min(f64::from(rate));
        IcmpRateLimit {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Whether one more error may be sent at `now` (takes a token if so).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return false;
        }
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * f64::from(self.rate)).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc4443_2_4_f_burst_then_rate() {
        let t0 = Instant::now();
        let mut rl = IcmpRateLimit::new(100);
        let burst = (0..50).filter(|_| rl.allow(t0)).count();
        assert_eq!(burst, 10);
        // 100 ms later: 10 more tokens.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..50).filter(|_| rl.allow(t1)).count(), 10);
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..50).filter(|_| rl.allow(t2)).count(), 10);
    }

    #[test]
    fn zero_rate_sends_nothing() {
        let mut rl = IcmpRateLimit::new(0);
        assert!(!rl.allow(Instant::now()));
    }
}
