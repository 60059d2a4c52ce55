//! One classifier for Marketo's three error levels (facts §4):
//! 1. HTTP status (413, 414, Identity 401, 5xx),
//! 2. response-level string codes in `errors[]` of an HTTP 200 (`success:false`),
//! 3. record-level `skipped` reasons inside a successful response.
//!
//! It decides only what a failure means; the retry loop decides what to do
//! with the decision (and whether the operation may be repeated at all).

use audex_core::ErrorClass;

/// What a failure calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A fault that may pass: retry with backoff (idempotent calls only).
    Retry,
    /// The instance is throttling (606 rate, 615 concurrency, HTTP 429): wait
    /// at least the given kind of pause, then retry.
    Throttled(Throttle),
    /// The token was refused (601/602): authenticate again once, then retry.
    Reauth,
    /// The daily quota is spent (607): stop; a later run resumes.
    QuotaExhausted,
    /// The URI was too long (414): resend as `POST` with `_method=GET`.
    ResendAsPost,
    /// No data found (702): an empty result, not a failure.
    Empty,
    /// Retrying cannot help.
    Fatal(ErrorClass),
    /// One record was refused; the rest of the call stands.
    RecordRejected,
}

/// Which instance limit another caller (or we) ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// 606: more than the allowed calls in the rolling window. Adobe advises
    /// waiting out the window.
    Rate,
    /// 615: too many calls in flight. A short pause suffices.
    Concurrency,
}

/// A failure at the HTTP level. `None` means the status is a success and the
/// body must be read (Marketo reports most errors inside HTTP 200).
pub fn http_status(status: u16) -> Option<Verdict> {
    use Verdict::*;
    Some(match status {
        200..=299 => return None,
        // Identity refused the credentials, or a proxy demands them.
        401 | 403 => Fatal(ErrorClass::Auth),
        // Body over 1 MB (10 MB bulk): our batching is wrong, resending the
        // same body cannot help.
        413 => Fatal(ErrorClass::Internal),
        414 => ResendAsPost,
        // Not a documented Marketo status, but gateways use it.
        429 => Throttled(Throttle::Rate),
        408 => Retry,
        // 500 "may mean a malformed URL" but is also a plain server fault;
        // the retry budget bounds the cost of guessing wrong.
        500..=599 => Retry,
        _ => Fatal(ErrorClass::Internal),
    })
}

/// A response-level code from `errors[].code` (a string in Marketo's JSON).
/// Job-creation codes (1016/1019/1029) also arrive here, since a job has no
/// per-record result.
pub fn response_code(code: &str) -> Verdict {
    use ErrorClass::{Auth, Config, Internal, Rejected};
    use Verdict::*;
    match code.trim() {
        "601" | "602" => Reauth,
        // 600 "empty access token" is only known from third-party lists; a
        // fresh token is the only sensible answer.
        "600" => Reauth,
        "603" => Fatal(Auth),
        "604" | "608" | "611" | "713" | "719" => Retry,
        // "Usually temporary" per Adobe.
        "614" => Retry,
        "605" | "609" | "612" | "613" => Fatal(Internal),
        "610" => Fatal(Internal),
        "606" => Throttled(Throttle::Rate),
        "615" => Throttled(Throttle::Concurrency),
        "607" => QuotaExhausted,
        "616" => Fatal(Auth),
        "702" => Empty,
        "703" => Fatal(Config),
        "701" | "704" | "709" | "710" | "711" | "712" | "714" | "718" => Fatal(Rejected),
        // Bulk job queue full, list already being imported, too many jobs:
        // they clear as jobs finish.
        "1016" | "1019" | "1029" => Retry,
        // Unknown field (mapping) and unknown list: the config names
        // something the instance does not have.
        "1006" | "1013" => Fatal(Config),
        c if c.starts_with('6') && c.len() == 3 => Fatal(Internal),
        _ => Fatal(Rejected),
    }
}

/// A record-level reason code (`result[i].reasons[].code` of a `skipped`
/// entry). Every one refuses that record only.
pub fn record_code(_code: &str) -> Verdict {
    Verdict::RecordRejected
}

/// Marketo record codes with a meaning the membership calls rely on.
pub mod record {
    /// Lead not found.
    pub const LEAD_NOT_FOUND: &str = "1004";
    /// Lead not in list: removing a non-member, which is what we wanted.
    pub const NOT_IN_LIST: &str = "1015";
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::{Auth, Config, Internal, Rejected};
    use Verdict::*;

    #[test]
    fn http_statuses() {
        let table: &[(u16, Option<Verdict>)] = &[
            (200, None),
            (204, None),
            (401, Some(Fatal(Auth))),
            (403, Some(Fatal(Auth))),
            (404, Some(Fatal(Internal))),
            (408, Some(Retry)),
            (413, Some(Fatal(Internal))),
            (414, Some(ResendAsPost)),
            (429, Some(Throttled(Throttle::Rate))),
            (500, Some(Retry)),
            (502, Some(Retry)),
            (503, Some(Retry)),
            (504, Some(Retry)),
        ];
        for (status, want) in table {
            assert_eq!(http_status(*status), *want, "HTTP {status}");
        }
    }

    /// Every code of facts §4, with the action the facts give it.
    #[test]
    fn response_codes() {
        let table: &[(&str, Verdict)] = &[
            ("600", Reauth),
            ("601", Reauth),
            ("602", Reauth),
            ("603", Fatal(Auth)),
            ("604", Retry),
            ("605", Fatal(Internal)),
            ("606", Throttled(Throttle::Rate)),
            ("607", QuotaExhausted),
            ("608", Retry),
            ("609", Fatal(Internal)),
            ("610", Fatal(Internal)),
            ("611", Retry),
            ("612", Fatal(Internal)),
            ("613", Fatal(Internal)),
            ("614", Retry),
            ("615", Throttled(Throttle::Concurrency)),
            ("616", Fatal(Auth)),
            ("701", Fatal(Rejected)),
            ("702", Empty),
            ("703", Fatal(Config)),
            ("704", Fatal(Rejected)),
            ("709", Fatal(Rejected)),
            ("710", Fatal(Rejected)),
            ("711", Fatal(Rejected)),
            ("712", Fatal(Rejected)),
            ("713", Retry),
            ("714", Fatal(Rejected)),
            ("718", Fatal(Rejected)),
            ("719", Retry),
            ("1003", Fatal(Rejected)),
            ("1006", Fatal(Config)),
            ("1013", Fatal(Config)),
            ("1016", Retry),
            ("1019", Retry),
            ("1029", Retry),
            ("699", Fatal(Internal)),
            ("799", Fatal(Rejected)),
            (" 606 ", Throttled(Throttle::Rate)),
        ];
        for (code, want) in table {
            assert_eq!(response_code(code), *want, "code {code:?}");
        }
    }

    #[test]
    fn record_codes_reject_only_their_record() {
        for code in [
            "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011",
            "1012", "1013", "1014", "1015", "1017", "1018", "1020", "1021", "1022", "1025", "1026",
            "1027", "1028", "1035", "1036", "1037", "1042", "1048", "1049", "1076", "1077", "1078",
            "1079",
        ] {
            assert_eq!(record_code(code), RecordRejected, "record code {code}");
        }
    }

    /// The retry sets in real clients (facts §4) agree on these; none of
    /// them may be classified fatal.
    #[test]
    fn consensus_retry_set_is_never_fatal() {
        for code in ["604", "606", "608", "611", "615", "713"] {
            assert!(!matches!(response_code(code), Fatal(_)), "{code}");
        }
        assert_eq!(http_status(502), Some(Retry));
    }
}
