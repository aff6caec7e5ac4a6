//! Request validation through `oneshot`.
