//! Benches live in `benches/`; this library holds what several of them share.
//!
//! * [`http_load`]: driving a loopback HTTP server with `wrk` and sampling it with `perf`
//!   (the request bench, `benches/benches/request.rs`).
#![forbid(unsafe_code)]

pub mod http_load;
