//! The client-side rate limiter of a connection (SPEC §1.2 "Rate limiting":
//! `rate_limit_requests` per `rate_limit_window_ms`), shared by every table of the
//! connection and every page of a poll, plus a shared pause that a server's "slow down"
//! (rate-limit headers, a 429's `Retry-After`) imposes on all of them.
//!
//! The guarantee is the SPEC's "N requests in the window, not N+1": in any window of length
//! `window`, at most `requests` acquisitions return. It is a sliding-window log: the
//! instants of the last `requests` grants are kept, and a new grant waits until the oldest
//! of them is a full window old.
//!
//! Why not GCRA (the `governor` crate or a hand-written one): GCRA with burst N lets N
//! through at once and then one every `window / N`, so a window can hold up to 2N − 1
//! requests, which breaks the guarantee against a server that counts N per fixed or sliding
//! window; GCRA with burst 1 keeps the guarantee but spaces every request `window / N`
//! apart, so the ten pages of a poll under "100 per minute" would take six seconds instead
//! of going at once. The log gives both the burst and the exact guarantee, costs one
//! `Instant` per permitted request (N is a configured rate, hundreds or thousands), and
//! reads `tokio::time::Instant`, so paused tokio time drives it in tests without a custom
//! governor `Clock`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far "forever" is when a pause would overflow `Instant` (about 30 years, as tokio
/// itself uses for its far future).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A rate limiter shared (behind an `Arc`) by every user of one connection.
///
/// `Send + Sync`; all its methods take `&self`. Waiting never holds the lock.
#[derive(Debug)]
pub struct RateLimiter {
    /// At most this many grants in any `window`; `None` when only pauses apply.
    limit: Option<(usize, Duration)>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Instants of the most recent grants, oldest first, at most `limit.0` of them.
    granted: VecDeque<Instant>,
    /// No grant before this instant.
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// At most `requests` acquisitions in any window of length `window`, the first
    /// `requests` of them at once. A `requests` of 0 is read as 1 (a limiter never silently
    /// stops limiting); a zero `window` limits nothing, like [`RateLimiter::unlimited`].
    pub fn new(requests: u32, window: Duration) -> Self {
        let limit = (!window.is_zero()).then(|| (requests.max(1) as usize, window));
        Self {
            limit,
            state: Mutex::new(State::default()),
        }
    }

    /// No request-count limit; only [`RateLimiter::pause_until`] delays acquisitions. For
    /// connections without `rate_limit_requests`, so that a server's 429 still pauses all
    /// their tables.
    pub fn unlimited() -> Self {
        Self {
            limit: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Waits (with `tokio::time::sleep`) until a request may start, and counts it.
    ///
    /// Cancel-safe: a cancelled wait takes no permit. Waiters are not served in strict
    /// arrival order; each is served once a permit is free when it wakes.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        state.paused_until = None;
                        match self.limit {
                            None => return,
                            Some((requests, window)) => {
                                // A grant expires once it is a full window old: a window
                                // [t, t + window) then never holds more than `requests`.
                                while state.granted.front().is_some_and(|&g| g + window <= now) {
                                    state.granted.pop_front();
                                }
                                if state.granted.len() < requests {
                                    state.granted.push_back(now);
                                    return;
                                }
                                // Full: the oldest grant leaves the window first.
                                state.granted[0] + window - now
                            }
                        }
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Blocks every acquisition, by every user, until `until` (a server's rate-limit reset
    /// or a 429's `Retry-After`). Pauses only ever extend: an earlier `until` than the
    /// current pause changes nothing. Waiters already sleeping honour it when they wake.
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    /// [`RateLimiter::pause_until`] `now + wait`, saturating instead of overflowing on an
    /// absurd `wait`.
    pub fn pause_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(wait.min(FAR_FUTURE))
            .unwrap_or(now + FAR_FUTURE);
        self.pause_until(until);
    }

    /// The instant until which acquisitions are paused, if a pause is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        let state = self.lock();
        state.paused_until.filter(|&until| until > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_send_and_sync() {
        assert_send_sync::<RateLimiter>();
    }

    /// Every window [t, t + window) starting at a grant holds at most `limit` grants (a
    /// window holding the most grants can always be slid to start at one of them).
    fn max_in_any_window(instants: &[Instant], window: Duration) -> usize {
        instants
            .iter()
            .map(|&start| {
                instants
                    .iter()
                    .filter(|&&t| t >= start && t < start + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn five_per_second_never_six_in_any_window() {
        let limiter = RateLimiter::new(5, Duration::from_secs(1));
        let start = Instant::now();
        let mut instants = Vec::new();
        for _ in 0..20 {
            limiter.acquire().await;
            instants.push(Instant::now());
        }
        assert_eq!(max_in_any_window(&instants, Duration::from_secs(1)), 5);
        // The burst goes at once, then five a second: 20 grants take exactly 3 s.
        assert!(instants[..5].iter().all(|&t| t == start));
        assert_eq!(instants[5], start + Duration::from_secs(1));
        assert_eq!(*instants.last().unwrap(), start + Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_users_share_the_limit() {
        let limiter = Arc::new(RateLimiter::new(5, Duration::from_secs(1)));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let mut instants = Vec::new();
                for _ in 0..5 {
                    limiter.acquire().await;
                    instants.push(Instant::now());
                    // Irregular spacing between a user's requests.
                    tokio::time::sleep(Duration::from_millis(130)).await;
                }
                instants
            }));
        }
        let mut instants = Vec::new();
        for task in tasks {
            instants.extend(task.await.unwrap());
        }
        assert_eq!(instants.len(), 20);
        assert_eq!(max_in_any_window(&instants, Duration::from_secs(1)), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn spaced_requests_do_not_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(1));
        let start = Instant::now();
        for i in 0..6u32 {
            limiter.acquire().await;
            assert_eq!(Instant::now(), start + Duration::from_millis(500) * i);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pause_until_delays_everyone() {
        let limiter = Arc::new(RateLimiter::new(100, Duration::from_secs(1)));
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(Instant::now(), start);

        limiter.pause_until(start + Duration::from_secs(30));
        // A shorter pause does not shorten it.
        limiter.pause_until(start + Duration::from_secs(5));
        assert_eq!(
            limiter.paused_until(),
            Some(start + Duration::from_secs(30))
        );

        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), start + Duration::from_secs(30));
        }
        assert_eq!(limiter.paused_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_extended_while_waiting_is_honoured() {
        let limiter = Arc::new(RateLimiter::unlimited());
        let start = Instant::now();
        limiter.pause_for(Duration::from_secs(10));
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        limiter.pause_for(Duration::from_secs(20)); // until start + 25 s
        assert_eq!(waiter.await.unwrap(), start + Duration::from_secs(25));
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_pause_does_not_overflow() {
        let limiter = RateLimiter::unlimited();
        limiter.pause_for(Duration::MAX);
        assert!(limiter.paused_until().unwrap() > Instant::now() + Duration::from_secs(86_400));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_and_degenerate_limits() {
        let start = Instant::now();
        let unlimited = RateLimiter::unlimited();
        let zero_window = RateLimiter::new(1, Duration::ZERO);
        for _ in 0..1000 {
            unlimited.acquire().await;
            zero_window.acquire().await;
        }
        assert_eq!(Instant::now(), start);

        let zero_requests = RateLimiter::new(0, Duration::from_secs(1));
        zero_requests.acquire().await;
        zero_requests.acquire().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_acquire_takes_no_permit() {
        let limiter = RateLimiter::new(1, Duration::from_secs(10));
        let start = Instant::now();
        limiter.acquire().await;
        // Gives up waiting after 1 s.
        let timed_out = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(timed_out.is_err());
        limiter.acquire().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(10));
        // And the next one waits a full window after that grant, not after the cancelled one.
        limiter.acquire().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(20));
    }
}
