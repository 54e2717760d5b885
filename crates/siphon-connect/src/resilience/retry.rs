//! The retry policy: given what one attempt of a request produced, retry it after a delay
//! or give up (SPEC §1.2 "Retries" and the 429 half of "Rate limiting").
//!
//! It is a pure function of the policy, the attempt number, the outcome, the server's
//! `Retry-After` and an injected random source, so the exact schedule is testable with a
//! seeded or constant rng and the caller owns all sleeping.
//!
//! The rules, in one place:
//! * A request that never reached the server ([`Outcome::Unsent`]: refused, DNS, TLS, a
//!   connect timeout) is retried whatever its method. A timeout or a broken exchange may
//!   have reached the server and acted there, so it is retried only when
//!   `retry_uncertain` is set: always for GET, and for POST/PUT/PATCH/DELETE only with
//!   `retry_non_idempotent = true`.
//! * A status is retried when it is in `retry_on_status`, or when it is 429 and
//!   `retry_on_rate_limit` is set, whatever the method: the server answered, so it decided
//!   what happened. Every other status (400, 401, 403, 404, ...) is final, and so is
//!   [`Outcome::Success`].
//! * At most `max_retries` retries, so at most `max_retries + 1` attempts; a 429 retry counts
//!   like any other.
//! * Without a server-directed wait the delay is full jitter: uniform in
//!   `[0, min(max_backoff, backoff * multiplier^(attempt-1))]`.
//! * With a server-directed wait (a `Retry-After`, capped at `max_retry_after`, or for a 429
//!   without one `rate_limit_backoff`) the delay is the larger of that wait and the
//!   un-jittered backoff of this attempt, and never less than [`MIN_SERVER_DIRECTED_WAIT`].
//!   So `Retry-After: 0` still waits the retry backoff (1 s, 2 s, 4 s with the defaults):
//!   a server can never drive siphon into a request storm, while a legitimately long
//!   `Retry-After` is honoured up to `max_retry_after`.

use std::time::Duration;

use rand::Rng;

/// The least a retry waits when the server directed the wait (a `Retry-After`, or a 429),
/// even when `backoff` is configured to zero: a hostile or broken server answering
/// `429` with `Retry-After: 0` gets at most ten requests a second from one source.
pub const MIN_SERVER_DIRECTED_WAIT: Duration = Duration::from_millis(100);

/// The status that means "rate limited".
const TOO_MANY_REQUESTS: u16 = 429;

/// How failed requests are retried (SPEC §1.2 options `max_retries`, `retry_backoff_ms`,
/// `retry_multiplier`, `retry_on_status`, `retry_on_rate_limit`, `rate_limit_backoff_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`max_retries`, default 3): at most
    /// `max_retries + 1` attempts in all.
    pub max_retries: u32,
    /// Backoff ceiling of the first retry (`retry_backoff_ms`, default 1 s).
    pub backoff: Duration,
    /// Growth of the backoff ceiling per attempt (`retry_multiplier`, default 2.0). Values
    /// below 1.0, NaN or infinite are treated as 1.0: the backoff never shrinks.
    pub multiplier: f64,
    /// Statuses worth retrying (`retry_on_status`, default `[429, 500, 502, 503, 504]`).
    pub retry_on_status: Vec<u16>,
    /// Cap of the exponential backoff (default 5 min).
    pub max_backoff: Duration,
    /// Retry a 429 even when it is not in `retry_on_status`, waiting `Retry-After` or else
    /// `rate_limit_backoff` (`retry_on_rate_limit`, default true). When false, a 429 is an
    /// ordinary status: retried only if listed in `retry_on_status`, with the ordinary
    /// (jittered, or `Retry-After`-floored) backoff.
    pub retry_on_rate_limit: bool,
    /// Wait after a 429 that carries no `Retry-After`, when `retry_on_rate_limit` is set
    /// (`rate_limit_backoff_ms`, default 5 s).
    pub rate_limit_backoff: Duration,
    /// Cap of a server's `Retry-After` (default 1 h): a long wait is legitimate for a rate
    /// limit, but a hostile or broken server cannot park a source for days.
    pub max_retry_after: Duration,
    /// Retry a timeout or a broken exchange ([`Outcome::Timeout`], [`Outcome::Transport`]),
    /// after which the server may have acted on the request (default true). Binding sets
    /// it false for POST/PUT/PATCH/DELETE unless `retry_non_idempotent = true`, so a
    /// request with side effects is not repeated behind the user's back.
    pub retry_uncertain: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Duration::from_millis(1000),
            multiplier: 2.0,
            retry_on_status: vec![429, 500, 502, 503, 504],
            max_backoff: Duration::from_secs(5 * 60),
            retry_on_rate_limit: true,
            rate_limit_backoff: Duration::from_millis(5000),
            max_retry_after: Duration::from_secs(60 * 60),
            retry_uncertain: true,
        }
    }
}

/// What one attempt of a request produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A usable response (2xx, or a 304 answering a conditional request).
    Success,
    /// The server answered with this non-success status.
    Status(u16),
    /// The exchange broke after the request may have been sent: a reset, a body cut short.
    Transport,
    /// No connection was made (refused, DNS, TLS, connect timeout): the request never
    /// reached the server, so sending it again cannot repeat its effect.
    Unsent,
    /// The request did not complete within `timeout_ms`.
    Timeout,
}

impl Outcome {
    /// Classifies an HTTP status: 2xx and 304 are [`Outcome::Success`], anything else is
    /// [`Outcome::Status`].
    pub fn from_status(status: u16) -> Self {
        if (200..300).contains(&status) || status == 304 {
            Outcome::Success
        } else {
            Outcome::Status(status)
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request again after this delay.
    Retry(Duration),
    /// Do not retry: the attempt succeeded, its failure is final, or retries are exhausted.
    GiveUp,
}

impl RetryPolicy {
    /// Decides whether to retry after an attempt.
    ///
    /// `attempt` is the number of attempts already made (1 after the first request; 0 is
    /// read as 1). `retry_after` is the server's `Retry-After`, already parsed (see
    /// [`super::headers::retry_after`]), if the response had one. `rng` supplies the
    /// jitter; tests inject a seeded or constant one.
    ///
    /// See the module documentation for the rules; in short: give up on success, on a final
    /// status and after `max_retries` retries; otherwise wait full jitter, or with a
    /// server-directed wait `max(that wait, un-jittered backoff, MIN_SERVER_DIRECTED_WAIT)`.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        outcome: &Outcome,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Decision {
        let attempt = attempt.max(1);
        if !self.is_retryable(outcome) || attempt > self.max_retries {
            return Decision::GiveUp;
        }
        let backoff = self.backoff_ceiling(attempt);
        let server_wait = match retry_after {
            Some(wait) => Some(wait.min(self.max_retry_after)),
            None if self.retry_on_rate_limit && *outcome == Outcome::Status(TOO_MANY_REQUESTS) => {
                Some(self.rate_limit_backoff)
            }
            None => None,
        };
        let delay = match server_wait {
            Some(wait) => wait.max(backoff).max(MIN_SERVER_DIRECTED_WAIT),
            None => full_jitter(backoff, rng),
        };
        Decision::Retry(delay)
    }

    /// Whether this outcome is worth retrying at all, whatever the attempt number.
    pub fn is_retryable(&self, outcome: &Outcome) -> bool {
        match *outcome {
            Outcome::Success => false,
            Outcome::Unsent => true,
            Outcome::Transport | Outcome::Timeout => self.retry_uncertain,
            Outcome::Status(TOO_MANY_REQUESTS) if self.retry_on_rate_limit => true,
            Outcome::Status(status) => self.retry_on_status.contains(&status),
        }
    }

    /// The un-jittered backoff after attempt `attempt` (1-based):
    /// `min(max_backoff, backoff * multiplier^(attempt-1))`. Full jitter draws below it.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.backoff.as_secs_f64() * multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }
}

/// Uniform in `[0, ceiling]`, from one `u64` of the rng: 0 gives zero and `u64::MAX` gives
/// exactly `ceiling`, so a constant rng pins either end of the range in tests.
fn full_jitter<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let draw = u128::from(rng.next_u64());
    let nanos = u128::from(ceiling_nanos) * draw / u128::from(u64::MAX);
    // nanos <= ceiling_nanos, which fits in u64.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(ceiling_nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// An rng that always yields the same word: `u64::MAX` pins the jitter at the top of its
    /// range, 0 at the bottom.
    struct ConstRng(u64);

    impl rand::RngCore for ConstRng {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for (i, byte) in dest.iter_mut().enumerate() {
                *byte = self.0.to_le_bytes()[i % 8];
            }
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn retry_delay(decision: Decision) -> Duration {
        match decision {
            Decision::Retry(delay) => delay,
            Decision::GiveUp => panic!("expected a retry, got GiveUp"),
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 3);
        assert_eq!(p.backoff, Duration::from_millis(1000));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.retry_on_status, vec![429, 500, 502, 503, 504]);
        assert!(p.retry_on_rate_limit);
    }

    #[test]
    fn schedule_is_full_jitter_within_doubling_bounds_then_gives_up() {
        let p = RetryPolicy::default();
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            for (attempt, bound) in [(1, secs(1)), (2, secs(2)), (3, secs(4))] {
                let delay = retry_delay(p.decide(attempt, &Outcome::Status(503), None, &mut rng));
                assert!(
                    delay <= bound,
                    "seed {seed} attempt {attempt}: {delay:?} > {bound:?}"
                );
            }
            assert_eq!(
                p.decide(4, &Outcome::Status(503), None, &mut rng),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn seeded_schedule_is_deterministic_and_spread() {
        let p = RetryPolicy::default();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (1..=3)
                .map(|a| retry_delay(p.decide(a, &Outcome::Transport, None, &mut rng)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        // Jitter actually varies: across seeds the first delay is not constant.
        let firsts: std::collections::BTreeSet<_> = (0..20).map(|s| run(s)[0]).collect();
        assert!(firsts.len() > 10);
    }

    #[test]
    fn constant_rng_shows_the_exact_bounds() {
        let p = RetryPolicy::default();
        let mut top = ConstRng(u64::MAX);
        let mut bottom = ConstRng(0);
        for (attempt, bound) in [(1, secs(1)), (2, secs(2)), (3, secs(4))] {
            assert_eq!(
                p.decide(attempt, &Outcome::Timeout, None, &mut top),
                Decision::Retry(bound)
            );
            assert_eq!(
                p.decide(attempt, &Outcome::Timeout, None, &mut bottom),
                Decision::Retry(Duration::ZERO)
            );
        }
        assert_eq!(
            p.decide(4, &Outcome::Timeout, None, &mut top),
            Decision::GiveUp
        );
    }

    #[test]
    fn backoff_is_capped_at_max_backoff() {
        let p = RetryPolicy {
            max_retries: 100,
            max_backoff: secs(10),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff_ceiling(4), secs(8));
        assert_eq!(p.backoff_ceiling(5), secs(10));
        assert_eq!(p.backoff_ceiling(100), secs(10));
        assert_eq!(p.backoff_ceiling(u32::MAX), secs(10));
        let mut top = ConstRng(u64::MAX);
        assert_eq!(
            p.decide(50, &Outcome::Transport, None, &mut top),
            Decision::Retry(secs(10))
        );
    }

    #[test]
    fn shrinking_or_nonsense_multiplier_is_read_as_one() {
        for multiplier in [0.5, -2.0, f64::NAN, f64::INFINITY] {
            let p = RetryPolicy {
                multiplier,
                ..RetryPolicy::default()
            };
            assert_eq!(p.backoff_ceiling(3), secs(1), "multiplier {multiplier}");
        }
    }

    #[test]
    fn final_statuses_are_never_retried() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        for status in [400, 401, 403, 404, 405, 409, 410, 422, 501] {
            assert_eq!(
                p.decide(1, &Outcome::Status(status), None, &mut rng),
                Decision::GiveUp,
                "status {status}"
            );
            // Not even when the server sends a Retry-After.
            assert_eq!(
                p.decide(1, &Outcome::Status(status), Some(secs(1)), &mut rng),
                Decision::GiveUp
            );
        }
        assert_eq!(
            p.decide(1, &Outcome::Success, None, &mut rng),
            Decision::GiveUp
        );
    }

    #[test]
    fn retryable_outcomes_are_retried() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        for outcome in [
            Outcome::Status(500),
            Outcome::Status(502),
            Outcome::Status(503),
            Outcome::Status(504),
            Outcome::Status(429),
            Outcome::Transport,
            Outcome::Timeout,
        ] {
            for attempt in 1..=3 {
                assert!(
                    matches!(
                        p.decide(attempt, &outcome, None, &mut rng),
                        Decision::Retry(_)
                    ),
                    "{outcome:?} attempt {attempt}"
                );
            }
            assert_eq!(p.decide(4, &outcome, None, &mut rng), Decision::GiveUp);
        }
    }

    #[test]
    fn custom_status_list_is_respected() {
        let p = RetryPolicy {
            retry_on_status: vec![408],
            ..RetryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert!(matches!(
            p.decide(1, &Outcome::Status(408), None, &mut rng),
            Decision::Retry(_)
        ));
        assert_eq!(
            p.decide(1, &Outcome::Status(503), None, &mut rng),
            Decision::GiveUp
        );
        // 429 is still retried: retry_on_rate_limit is on.
        assert!(matches!(
            p.decide(1, &Outcome::Status(429), None, &mut rng),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn max_retries_zero_means_one_attempt() {
        let p = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            p.decide(1, &Outcome::Status(503), None, &mut rng),
            Decision::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_and_floored_by_the_backoff() {
        let p = RetryPolicy::default();
        let mut rng = ConstRng(0); // jitter would say zero
        // Longer than the backoff: wait exactly what the server asked.
        assert_eq!(
            p.decide(1, &Outcome::Status(429), Some(secs(30)), &mut rng),
            Decision::Retry(secs(30))
        );
        assert_eq!(
            p.decide(1, &Outcome::Status(503), Some(secs(30)), &mut rng),
            Decision::Retry(secs(30))
        );
        // Shorter than the backoff: the un-jittered backoff wins.
        assert_eq!(
            p.decide(3, &Outcome::Status(429), Some(secs(1)), &mut rng),
            Decision::Retry(secs(4))
        );
    }

    #[test]
    fn retry_after_zero_still_waits_the_backoff() {
        let p = RetryPolicy::default();
        let mut rng = ConstRng(0);
        for (attempt, expected) in [(1, secs(1)), (2, secs(2)), (3, secs(4))] {
            let delay = retry_delay(p.decide(
                attempt,
                &Outcome::Status(429),
                Some(Duration::ZERO),
                &mut rng,
            ));
            assert!(delay > Duration::ZERO);
            assert_eq!(delay, expected);
        }
        // Still counts against max_retries.
        assert_eq!(
            p.decide(4, &Outcome::Status(429), Some(Duration::ZERO), &mut rng),
            Decision::GiveUp
        );
        // Even with a zero backoff configured, never a zero-delay storm.
        let zero = RetryPolicy {
            backoff: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(
            zero.decide(1, &Outcome::Status(429), Some(Duration::ZERO), &mut rng),
            Decision::Retry(MIN_SERVER_DIRECTED_WAIT)
        );
    }

    #[test]
    fn retry_after_is_capped() {
        let p = RetryPolicy::default();
        let mut rng = ConstRng(0);
        assert_eq!(
            p.decide(1, &Outcome::Status(429), Some(secs(86_400)), &mut rng),
            Decision::Retry(secs(3600))
        );
    }

    #[test]
    fn rate_limited_without_retry_after_waits_rate_limit_backoff() {
        let p = RetryPolicy::default();
        let mut rng = ConstRng(0);
        assert_eq!(
            p.decide(1, &Outcome::Status(429), None, &mut rng),
            Decision::Retry(secs(5))
        );
        // The exponential backoff still grows past it.
        let p = RetryPolicy {
            max_retries: 10,
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.decide(4, &Outcome::Status(429), None, &mut rng),
            Decision::Retry(secs(8))
        );
    }

    #[test]
    fn without_retry_on_rate_limit_429_follows_retry_on_status() {
        let listed = RetryPolicy {
            retry_on_rate_limit: false,
            ..RetryPolicy::default()
        };
        let mut rng = ConstRng(u64::MAX);
        // Listed: an ordinary retry with jitter, no rate_limit_backoff.
        assert_eq!(
            listed.decide(1, &Outcome::Status(429), None, &mut rng),
            Decision::Retry(secs(1))
        );
        let unlisted = RetryPolicy {
            retry_on_rate_limit: false,
            retry_on_status: vec![503],
            ..RetryPolicy::default()
        };
        assert_eq!(
            unlisted.decide(1, &Outcome::Status(429), Some(secs(2)), &mut rng),
            Decision::GiveUp
        );
    }

    #[test]
    fn attempt_zero_is_read_as_the_first() {
        let p = RetryPolicy::default();
        let mut top = ConstRng(u64::MAX);
        assert_eq!(
            p.decide(0, &Outcome::Transport, None, &mut top),
            Decision::Retry(secs(1))
        );
    }

    #[test]
    fn without_retry_uncertain_only_unsent_requests_and_listed_statuses_retry() {
        let p = RetryPolicy {
            retry_uncertain: false,
            ..RetryPolicy::default()
        };
        let mut top = ConstRng(u64::MAX);
        for outcome in [Outcome::Timeout, Outcome::Transport] {
            assert_eq!(
                p.decide(1, &outcome, None, &mut top),
                Decision::GiveUp,
                "{outcome:?}"
            );
        }
        for outcome in [Outcome::Unsent, Outcome::Status(503), Outcome::Status(429)] {
            assert!(
                matches!(p.decide(1, &outcome, None, &mut top), Decision::Retry(_)),
                "{outcome:?}"
            );
        }
        assert!(RetryPolicy::default().retry_uncertain);
    }

    #[test]
    fn outcome_from_status() {
        assert_eq!(Outcome::from_status(200), Outcome::Success);
        assert_eq!(Outcome::from_status(204), Outcome::Success);
        assert_eq!(Outcome::from_status(304), Outcome::Success);
        assert_eq!(Outcome::from_status(302), Outcome::Status(302));
        assert_eq!(Outcome::from_status(503), Outcome::Status(503));
    }
}
