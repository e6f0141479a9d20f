//! Sinks that need no database: memory (tests), fan-out, JSON-lines file.

mod fanout;
mod file;
mod memory;

pub use fanout::FanOutSink;
pub use file::JsonLinesFileSink;
pub use memory::{FailingSink, MemorySink};
