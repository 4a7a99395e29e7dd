//! `/api/v1/health`: unhealthy when, over the last `HC_Period`, the outputs' failed flushes
//! exceed `HC_Errors_Count` or their chunks that ran out of retries exceed
//! `HC_Retry_Failure_Count`, as Fluent Bit decides it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::HealthCheck;

/// Samples of the failure totals, one a second, covering the last period.
#[derive(Debug)]
pub struct Window {
    limits: HealthCheck,
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    errors: u64,
    retry_failures: u64,
}

impl Window {
    pub fn new(limits: HealthCheck) -> Self {
        Window {
            limits,
            samples: VecDeque::new(),
        }
    }

    /// Records the totals now, forgetting samples older than the period.
    pub fn sample(&mut self, now: Instant, (errors, retry_failures): (u64, u64)) {
        // Totals that went down were reset by a reload: the window starts again.
        if self
            .samples
            .back()
            .is_some_and(|s| errors < s.errors || retry_failures < s.retry_failures)
        {
            self.samples.clear();
        }
        self.samples.push_back(Sample {
            at: now,
            errors,
            retry_failures,
        });
        let period = self.limits.period;
        while self
            .samples
            .front()
            .is_some_and(|s| now.duration_since(s.at) > period)
        {
            self.samples.pop_front();
        }
    }

    /// Whether the failures since the oldest sample of the period are within the limits.
    pub fn healthy(&self, (errors, retry_failures): (u64, u64)) -> bool {
        let Some(first) = self.samples.front() else {
            return true;
        };
        errors.saturating_sub(first.errors) <= self.limits.errors
            && retry_failures.saturating_sub(first.retry_failures) <= self.limits.retry_failures
    }

    /// How often to sample.
    pub const EVERY: Duration = Duration::from_secs(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window::new(HealthCheck {
            errors: 2,
            retry_failures: 1,
            period: Duration::from_secs(5),
        })
    }

    #[test]
    fn errors_over_the_limit_within_the_period_are_unhealthy() {
        let mut w = window();
        let t = Instant::now();
        w.sample(t, (10, 0));
        assert!(w.healthy((12, 0)), "2 errors is the limit, not over it");
        assert!(!w.healthy((13, 0)));
        assert!(!w.healthy((10, 2)), "2 retry failures is over 1");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut w = window();
        let t = Instant::now();
        w.sample(t, (0, 0));
        w.sample(t + Duration::from_secs(1), (5, 0));
        assert!(!w.healthy((5, 0)));
        // Six seconds later the burst is older than the 5 s period.
        w.sample(t + Duration::from_secs(7), (5, 0));
        assert!(w.healthy((5, 0)));
    }

    #[test]
    fn a_reset_restarts_the_window() {
        let mut w = window();
        let t = Instant::now();
        w.sample(t, (100, 5));
        w.sample(t + Duration::from_secs(1), (0, 0));
        assert!(w.healthy((1, 0)));
    }
}
