//! Integration tests of ferry-genesys: the protocol types against literal JSON, and the guest
//! client against the ferry-sandbox Genesys emulator over real loopback sockets.

mod delivery;
mod fuzz_guest_frame;
mod guest;
mod platform;
mod protocol;
