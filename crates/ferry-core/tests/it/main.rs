//! Property and known-answer tests of ferry-core's public API.

mod chunker;
mod fuzz_chunker;
