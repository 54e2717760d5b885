//! The circuit breaker of one source (SPEC §1.2 "Circuit breaker": `circuit_breaker_threshold`
//! consecutive failed polls open it; after `circuit_breaker_timeout_ms` one trial poll goes
//! through, half-open).
//!
//! It counts polls, not requests: the retries inside a poll are the retry policy's business,
//! and a poll fails only once they are exhausted. It is owned by the one task that polls the
//! source, hence `&mut self`, and reads `tokio::time::Instant`, so paused tokio time drives it
//! in tests.

use std::time::Duration;

use tokio::time::Instant;

/// The state of a circuit breaker, as shown to users and exported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Polls go ahead; consecutive failures are being counted.
    Closed,
    /// Polls are refused until the open timeout has passed.
    Open,
    /// The open timeout has passed: one trial poll decides between closed and open.
    HalfOpen,
}

impl CircuitState {
    /// The value of the state metric: 0 closed, 1 half-open, 2 open.
    pub fn metric_value(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

/// Stops polling a source after `threshold` consecutive failed polls, for `open_timeout`,
/// then lets a single trial poll decide whether it is healthy again.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    open_timeout: Duration,
    inner: Inner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `trial`: when the trial poll in flight was let through, if one is.
    HalfOpen {
        trial: Option<Instant>,
    },
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failed polls (0 is read as 1) and stays open for
    /// `open_timeout`. Starts closed.
    pub fn new(threshold: u32, open_timeout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_timeout,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// Before a poll: `Ok(())` to go ahead, `Err(remaining)` with the time until a poll may
    /// be tried again.
    ///
    /// Once the open timeout has passed, the breaker is half-open and lets exactly one trial
    /// poll through; further calls are refused until that trial reports through
    /// [`CircuitBreaker::on_success`] or [`CircuitBreaker::on_failure`]. A trial that never
    /// reports (its poll was cancelled) is given up on after another `open_timeout`, and a
    /// new trial is let through, so the breaker cannot stay stuck.
    pub fn try_acquire(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        match self.inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until } if now < until => Err(until - now),
            Inner::Open { .. } | Inner::HalfOpen { trial: None } => {
                self.inner = Inner::HalfOpen { trial: Some(now) };
                Ok(())
            }
            Inner::HalfOpen {
                trial: Some(started),
            } => {
                let give_up_at = started + self.open_timeout;
                if now < give_up_at {
                    Err(give_up_at - now)
                } else {
                    self.inner = Inner::HalfOpen { trial: Some(now) };
                    Ok(())
                }
            }
        }
    }

    /// A poll succeeded: the breaker closes and the failure count starts again from zero.
    pub fn on_success(&mut self) {
        self.inner = Inner::Closed { failures: 0 };
    }

    /// A poll failed. Closed, this counts a consecutive failure and opens the breaker for
    /// `open_timeout` at the threshold; half-open, the failed trial opens it again for a fresh
    /// `open_timeout`. Already open (a poll that started before it opened), nothing changes.
    pub fn on_failure(&mut self) {
        let now = Instant::now();
        self.inner = match self.inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    Inner::Open {
                        until: now + self.open_timeout,
                    }
                } else {
                    Inner::Closed { failures }
                }
            }
            Inner::HalfOpen { .. } => Inner::Open {
                until: now + self.open_timeout,
            },
            open @ Inner::Open { .. } => open,
        };
    }

    /// The current state. An open breaker whose timeout has passed reports
    /// [`CircuitState::HalfOpen`]: the next [`CircuitBreaker::try_acquire`] lets a trial through.
    pub fn state(&self) -> CircuitState {
        match self.inner {
            Inner::Closed { .. } => CircuitState::Closed,
            Inner::Open { until } if Instant::now() < until => CircuitState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Consecutive failed polls counted while closed (0 when open or half-open).
    pub fn consecutive_failures(&self) -> u32 {
        match self.inner {
            Inner::Closed { failures } => failures,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn open_breaker() -> CircuitBreaker {
        let mut breaker = CircuitBreaker::new(5, TIMEOUT);
        for _ in 0..5 {
            breaker.try_acquire().unwrap();
            breaker.on_failure();
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        breaker
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold() {
        let mut breaker = CircuitBreaker::new(5, TIMEOUT);
        assert_eq!(breaker.state(), CircuitState::Closed);
        for failures in 1..5 {
            assert_eq!(breaker.try_acquire(), Ok(()));
            breaker.on_failure();
            assert_eq!(breaker.state(), CircuitState::Closed);
            assert_eq!(breaker.consecutive_failures(), failures);
        }
        assert_eq!(breaker.try_acquire(), Ok(()));
        breaker.on_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_rejects_with_the_remaining_time() {
        let mut breaker = open_breaker();
        assert_eq!(breaker.try_acquire(), Err(TIMEOUT));
        advance(Duration::from_secs(45)).await;
        assert_eq!(breaker.try_acquire(), Err(Duration::from_secs(15)));
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_the_timeout_lets_exactly_one_trial() {
        let mut breaker = open_breaker();
        advance(TIMEOUT).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.try_acquire(), Ok(()));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        // The trial has not reported: nobody else goes.
        assert!(breaker.try_acquire().is_err());
        advance(Duration::from_secs(10)).await;
        assert_eq!(breaker.try_acquire(), Err(Duration::from_secs(50)));
    }

    #[tokio::test(start_paused = true)]
    async fn trial_success_closes() {
        let mut breaker = open_breaker();
        advance(TIMEOUT).await;
        breaker.try_acquire().unwrap();
        breaker.on_success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
        assert_eq!(breaker.try_acquire(), Ok(()));
        assert_eq!(breaker.try_acquire(), Ok(()));
        // A full threshold of failures is needed to open it again.
        for _ in 0..4 {
            breaker.on_failure();
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.on_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn trial_failure_reopens_with_a_fresh_timeout() {
        let mut breaker = open_breaker();
        advance(TIMEOUT + Duration::from_secs(7)).await;
        breaker.try_acquire().unwrap();
        advance(Duration::from_secs(3)).await; // the trial poll takes 3 s
        breaker.on_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.try_acquire(), Err(TIMEOUT));
        advance(TIMEOUT - Duration::from_secs(1)).await;
        assert_eq!(breaker.try_acquire(), Err(Duration::from_secs(1)));
        advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.try_acquire(), Ok(()));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let mut breaker = CircuitBreaker::new(3, TIMEOUT);
        for _ in 0..10 {
            breaker.on_failure();
            breaker.on_failure();
            breaker.on_success();
            assert_eq!(breaker.consecutive_failures(), 0);
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
        breaker.on_failure();
        breaker.on_failure();
        breaker.on_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_that_never_reports_is_replaced() {
        let mut breaker = open_breaker();
        advance(TIMEOUT).await;
        breaker.try_acquire().unwrap();
        advance(TIMEOUT).await;
        assert_eq!(breaker.try_acquire(), Ok(()));
        assert!(breaker.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_while_open_does_not_extend() {
        let mut breaker = open_breaker();
        advance(Duration::from_secs(30)).await;
        breaker.on_failure();
        assert_eq!(breaker.try_acquire(), Err(Duration::from_secs(30)));
    }

    #[test]
    fn metric_values() {
        assert_eq!(CircuitState::Closed.metric_value(), 0);
        assert_eq!(CircuitState::HalfOpen.metric_value(), 1);
        assert_eq!(CircuitState::Open.metric_value(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_zero_is_one() {
        let mut breaker = CircuitBreaker::new(0, TIMEOUT);
        breaker.on_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }
}
