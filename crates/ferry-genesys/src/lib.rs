//! Typed Genesys Cloud client for ferry (being built: see docs/architecture.md).
