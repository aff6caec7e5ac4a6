//! The memory bound.
