//! Injected faults through the sandbox proxy.
