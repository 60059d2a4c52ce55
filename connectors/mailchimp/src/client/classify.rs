//! What an answer's HTTP status means, with or without a body (facts §7):
//! Mailchimp under load may answer 429 or 403 with no body at all, and a
//! CDN in front of it answers 502 with an HTML page.
//!
//! It decides only what a failure means; the call loop decides what to do
//! with it (and whether the call may be made again at all).

use audex_core::ErrorClass;

/// What a failed call calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A fault that may pass (5xx, a dropped connection): back off, retry.
    Retry,
    /// Too many connections for the account (429, or a bodiless 403 under
    /// load): back off, retry.
    Throttled,
    /// Retrying cannot help: fail with this class.
    Fatal(ErrorClass),
}

/// The verdict on a non-success status; `None` for a success. `has_body`
/// tells a 403 Mailchimp explains (a refused key or role) from the bare
/// 403 it sends when overloaded.
pub fn http_status(status: u16, has_body: bool) -> Option<Verdict> {
    use ErrorClass::{Auth, Config, Internal, Rejected};
    use Verdict::*;
    Some(match status {
        200..=299 => return None,
        401 => Fatal(Auth),
        403 if has_body => Fatal(Auth),
        403 => Throttled,
        // An audience or tag that does not exist: the config names it.
        404 => Fatal(Config),
        408 => Retry,
        429 => Throttled,
        // The request itself was refused (Invalid Resource, JSON Parse
        // Exception, Invalid Action): the same body fails again.
        400 | 422 => Fatal(Rejected),
        // 405, 413, 414, 426: audex built a request Mailchimp cannot take.
        400..=499 => Fatal(Internal),
        500..=599 => Retry,
        _ => Fatal(Internal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::{Auth, Config, Internal, Rejected};
    use Verdict::*;

    #[test]
    fn statuses_with_and_without_a_body() {
        let table: &[(u16, bool, Option<Verdict>)] = &[
            (200, true, None),
            (204, false, None),
            (400, true, Some(Fatal(Rejected))),
            (401, true, Some(Fatal(Auth))),
            (401, false, Some(Fatal(Auth))),
            (403, true, Some(Fatal(Auth))),
            (403, false, Some(Throttled)),
            (404, true, Some(Fatal(Config))),
            (405, true, Some(Fatal(Internal))),
            (408, false, Some(Retry)),
            (413, false, Some(Fatal(Internal))),
            (426, true, Some(Fatal(Internal))),
            (429, true, Some(Throttled)),
            (429, false, Some(Throttled)),
            (500, true, Some(Retry)),
            (502, true, Some(Retry)),
            (503, false, Some(Retry)),
            (504, false, Some(Retry)),
            (302, false, Some(Fatal(Internal))),
        ];
        for (status, body, want) in table {
            assert_eq!(http_status(*status, *body), *want, "{status} body={body}");
        }
    }
}
