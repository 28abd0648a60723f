//! The one way the steps wait on the service: poll, sleep a growing interval, give up at a
//! deadline. Intune's import processing, the dynamic group's membership and the profile
//! assignment all settle on the service's own schedule; each wait differs only in its policy.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often and how long to poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Interval growth after each poll that found work still open.
    pub factor: f64,
    pub timeout: Duration,
}

/// One wait under a [`PollPolicy`]: the current interval and the deadline.
#[derive(Debug, Clone)]
pub struct Poller {
    policy: PollPolicy,
    started: tokio::time::Instant,
    interval: Duration,
}

/// The wait was cancelled (window closed, run interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl Poller {
    pub fn new(policy: PollPolicy) -> Self {
        Poller {
            policy,
            started: tokio::time::Instant::now(),
            interval: policy.initial,
        }
    }

    pub fn policy(&self) -> &PollPolicy {
        &self.policy
    }

    /// The policy's timeout has passed since the wait began.
    pub fn expired(&self) -> bool {
        self.started.elapsed() >= self.policy.timeout
    }

    /// How long the wait has lasted.
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sleeps the current interval; a cancel ends the sleep at once.
    pub async fn sleep(&self, cancel: &CancellationToken) -> Result<(), Cancelled> {
        tokio::select! {
            _ = cancel.cancelled() => Err(Cancelled),
            _ = tokio::time::sleep(self.interval) => Ok(()),
        }
    }

    /// After a poll that changed nothing: the next interval is longer, up to the policy's max.
    pub fn back_off(&mut self) {
        self.interval = self
            .interval
            .mul_f64(self.policy.factor)
            .min(self.policy.max)
            .max(self.policy.initial);
    }

    /// Polls fast again (something new began) without moving the deadline.
    pub fn reset_interval(&mut self) {
        self.interval = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_interval_grows_to_its_max_a_reset_keeps_the_deadline_a_cancel_ends_the_sleep() {
        let policy = PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(5),
            factor: 2.0,
            timeout: Duration::from_secs(3600),
        };
        let mut p = Poller::new(policy);
        let mut intervals = Vec::new();
        for _ in 0..4 {
            intervals.push(p.interval.as_secs());
            p.back_off();
        }
        assert_eq!(intervals, [2, 4, 5, 5]);
        p.reset_interval();
        assert_eq!(p.interval, Duration::from_secs(2));
        assert!(!p.expired());
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(
            p.sleep(&cancel).await,
            Err(Cancelled),
            "a cancel does not wait 2 s"
        );

        let over = Poller::new(PollPolicy {
            timeout: Duration::ZERO,
            ..policy
        });
        assert!(over.expired());
    }
}
