//! siphon-connect: everything that talks to the outside world over HTTP and turns what it
//! receives into typed Arrow records. It knows nothing about storage or SQL: the engine hands
//! it a bound configuration and a saved state, and receives decoded records and the next
//! state back, to commit together.

pub mod boundary;
pub mod config;
pub mod decode;
pub mod duration;
pub mod oauth2;
pub mod pagination;
pub mod redirect;
pub mod resilience;
pub mod schema;
pub mod secret;
pub mod source;
pub mod state;
pub mod template;
pub mod transform;

/// The error and its causes, joined: reqwest's top-level message alone ("error sending
/// request") hides the useful part ("connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
