//! Resilience policies for the polling source: how long to wait before retrying a failed
//! request, how to stay under an API's rate limit, and when to stop polling a source that
//! keeps failing (SPEC §1.2, "Rate limiting", "Retries", "Circuit breaker").
//!
//! This layer does no HTTP and owns no task: it only decides. The polling source calls it
//! around each request, and every clock it reads is `tokio::time::Instant` (or a
//! `SystemTime` passed in), so the whole layer is testable with paused tokio time.
//!
//! One concept per module:
//! * [`retry`]: [`RetryPolicy::decide`] turns the outcome of one attempt into "retry after
//!   this delay" or "give up" (full-jitter exponential backoff, `Retry-After`, 429 handling).
//! * [`rate_limit`]: [`RateLimiter`], shared by every table of a connection, lets at most
//!   N requests start in any window and can be paused for everyone by a server's signal.
//! * [`circuit`]: [`CircuitBreaker`], per source, stops polling after N consecutive failed
//!   polls and lets one trial poll through after a timeout.
//! * [`headers`]: parsing `Retry-After` and the rate-limit headers servers send.
//!
//! How a poll is expected to use them, for one request (one page):
//!
//! ```text
//! breaker.try_acquire()?                      // once per poll, before its first request
//! for attempt in 1.. {
//!     limiter.acquire().await;
//!     let response = send().await;            // -> Outcome, headers
//!     if let Some(wait) = headers::rate_limit_wait(&headers, SystemTime::now()) {
//!         limiter.pause_for(wait.min(policy.max_retry_after)); // quota spent: pause everyone
//!     }
//!     match policy.decide(attempt, &outcome, headers::retry_after(&headers, now), &mut rng) {
//!         Decision::Retry(delay) => {
//!             if outcome == Outcome::Status(429) { limiter.pause_for(delay) }
//!             tokio::time::sleep(delay).await
//!         }
//!         Decision::GiveUp => break,          // success, or a final failure
//!     }
//! }
//! breaker.on_success() / breaker.on_failure()  // once per poll, when it ends
//! ```

pub mod circuit;
pub mod headers;
pub mod rate_limit;
pub mod retry;

pub use circuit::{CircuitBreaker, CircuitState};
pub use rate_limit::RateLimiter;
pub use retry::{Decision, Outcome, RetryPolicy};
