//! Sinks that need no database: memory (tests), fan-out, JSON-lines file, and the
//! refusal aggregator.

mod aggregate;
mod fanout;
mod file;
mod memory;

pub use aggregate::{AggregationConfig, RefusalAggregator};
pub use fanout::FanOutSink;
pub use file::JsonLinesFileSink;
pub use memory::{FailingSink, MemorySink};
