//! siphon-connect: everything that talks to the outside world over HTTP and turns what it
//! receives into typed Arrow records. It knows nothing about storage or SQL: the engine hands
//! it a bound configuration and a saved state, and receives decoded records and the next
//! state back, to commit together.

pub mod config;
pub mod decode;
pub mod oauth2;
pub mod pagination;
pub mod resilience;
pub mod schema;
pub mod secret;
pub mod source;
pub mod state;
pub mod template;
