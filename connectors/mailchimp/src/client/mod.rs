//! The Mailchimp Marketing API v3 client, one file per role: what an answer
//! means (`classify`), how long to wait before trying again (`backoff`), the
//! per-account connection cap (`limiter`), the answers' shapes and the
//! scrubbing of their texts (`wire`), the call loop (`service`) and the
//! operations audex makes (`api`).

pub mod api;
pub mod backoff;
pub mod classify;
pub mod limiter;
pub mod service;
pub mod wire;

pub use api::{Audience, MergeField, SegmentInfo, MAX_BATCH, MAX_PAGE};
pub use backoff::Backoff;
pub use limiter::ConnectionCap;
pub use service::{ClientOptions, MailchimpClient};
