//! The guest session client: acts on behalf of a customer's existing Web Messaging session to
//! deliver a file into the conversation, natively or as a link.
//!
//! [`GuestClient::validate`] opens a short connection, configures the session, reads its limits
//! and closes: use it while a file is still arriving, so ferry never holds one of the three
//! connections a token allows for longer than needed. [`GuestClient::connect`] opens a
//! [`GuestSession`] for the delivery itself.
//!
//! A native delivery is `onAttachment` → `PUT` the body to the presigned URL → wait for the
//! `UploadSuccessEvent` of that attachment id → `onMessage` naming the attachment. The message is
//! never sent for an attachment whose upload was not confirmed (by the event, or after a
//! reconnect by `getAttachment`).
//!
//! The module is split by concern: [`GuestConfig`] (`config`), the values it takes and returns
//! (`types`), [`GuestClient`] (`client`: connecting, `configureSession`, rate-limit waits),
//! [`GuestSession`] (`session`: the actions), its recovery of dropped sockets (`recovery`), the
//! socket driver (`connection`), the upload body (`body`), why a native delivery failed
//! ([`NativeFailure`], `outcome`) and the look-up of ferry's own message (`lookup`).

mod body;
mod client;
mod config;
mod connection;
mod lookup;
mod outcome;
mod recovery;
mod routing;
mod session;
mod types;

pub use body::{ByteStream, UploadBody};
pub use client::GuestClient;
pub use config::GuestConfig;
pub use lookup::FoundMessage;
pub use outcome::{NativeFailure, NativeStep, SessionEnd};
pub use session::GuestSession;
pub use types::{
    DeliveredAttachment, DeliveredMessage, Delivery, Fallback, FileMeta, GuestJwt, SessionInfo, human_size,
};
