//! The Marketo REST client, one file per role: authentication, error
//! classification, the instance-wide limiter, retries, request building, the
//! wire envelope, the call loop and the operations.

pub mod api;
pub mod auth;
pub mod classify;
pub mod limiter;
pub mod request;
pub mod retry;
pub mod service;
pub mod wire;

#[cfg(test)]
mod robustness;

pub use api::{
    ImportStatus, LeadRef, ListInfo, ListLookup, MembershipResult, Page, UpsertResult, MAX_BATCH,
};
pub use limiter::{LimitSettings, Limiter};
pub use service::{ClientOptions, MarketoClient};
