//! The email address as a key: trimmed, lowercased and validated.
//!
//! The rules are those a mail system accepts: one `@`, a local part and a
//! dotted domain, no spaces, at most 254 characters (RFC 5321's limit on a
//! path). A destination adds its own (ASCII only, say) with
//! [`EmailKey::ascii_only`].

use super::{KeyProblem, KeyRule, KEY_TOO_LONG, MISSING_KEY};

/// Longest address a mail system accepts (RFC 5321: a 256-octet path less
/// the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_LEN: usize = 64;

/// Reject code: the lookup value is not an email address a mail system accepts.
pub const INVALID_EMAIL: &str = "invalid_email";

/// Email addresses as keys: trimmed, lowercased (ASCII letters only: what
/// mail systems and hashing destinations agree on), validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailKey {
    /// Why addresses must be ASCII, when the destination says so.
    ascii_only: Option<&'static str>,
}

impl EmailKey {
    /// Addresses as a mail system accepts them.
    pub fn new() -> Self {
        EmailKey::default()
    }

    /// Refuse addresses with a non-ASCII character; `why` ends the message
    /// (e.g. "the destination accepts ASCII only").
    pub fn ascii_only(mut self, why: &'static str) -> Self {
        self.ascii_only = Some(why);
        self
    }
}

impl KeyRule for EmailKey {
    fn noun(&self) -> &str {
        "email"
    }

    fn normalise(&self, raw: &str) -> Result<String, KeyProblem> {
        normalise_email(raw, self.ascii_only)
    }
}

/// Trim, lowercase and validate an email address; with `ascii_only`,
/// refuse a non-ASCII one and say why.
///
/// The message never repeats the value, so it can go into logs and reports.
fn normalise_email(raw: &str, ascii_only: Option<&str>) -> Result<String, KeyProblem> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(KeyProblem::new(MISSING_KEY, "the email is empty"));
    }
    let invalid = |why: &str| {
        Err(KeyProblem::new(
            INVALID_EMAIL,
            format!("not a valid email address: {why}"),
        ))
    };
    if let Some(why) = ascii_only.filter(|_| !trimmed.is_ascii()) {
        return invalid(&format!("contains non-ASCII characters ({why})"));
    }
    // ASCII letters only: Unicode case rules differ between systems, so a
    // non-ASCII letter is kept as written.
    let email = trimmed.to_ascii_lowercase();
    if email.len() > MAX_EMAIL_LEN {
        return Err(KeyProblem::new(
            KEY_TOO_LONG,
            format!(
                "the email has {} characters, more than the {MAX_EMAIL_LEN} a mail system accepts",
                email.len()
            ),
        ));
    }
    if email
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return invalid("contains a space or a control character");
    }
    let mut parts = email.split('@');
    let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(d), None) => (l, d),
        (_, None, _) => return invalid("has no '@'"),
        _ => return invalid("has more than one '@'"),
    };
    if local.is_empty() {
        return invalid("nothing before the '@'");
    }
    if domain.is_empty() {
        return invalid("nothing after the '@'");
    }
    if local.len() > MAX_LOCAL_LEN {
        return invalid("the part before the '@' is longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return invalid("misplaced '.' before the '@'");
    }
    // Quoted local parts and these specials are legal in RFC 5322 but refused
    // by most mail systems and marketing tools; rejecting them early is safer
    // than a per-record failure at the destination.
    if let Some(c) = local.chars().find(|c| "\"(),:;<>[\\]".contains(*c)) {
        return invalid(&format!(
            "the character '{c}' is not allowed before the '@'"
        ));
    }
    if !domain.contains('.') {
        return invalid("the domain has no '.'");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return invalid("misplaced '.' in the domain");
        }
        if label.len() > 63 {
            return invalid("a domain label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid("the domain may hold only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("a domain label starts or ends with '-'");
        }
    }
    Ok(email)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ASCII: &str = "the destination accepts ASCII only";

    fn code(raw: &str) -> String {
        match EmailKey::new().ascii_only(ASCII).normalise(raw) {
            Ok(_) => "ok".into(),
            Err(p) => p.code.into_owned(),
        }
    }

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(
            EmailKey::new()
                .normalise("  Maria.Lopez@Contoso.COM \t")
                .ok()
                .as_deref(),
            Some("maria.lopez@contoso.com")
        );
    }

    #[test]
    fn accepts_common_shapes() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'brien@example.ie",
            "x_y-z@my-domain.io",
            "1234@123.com",
        ] {
            assert_eq!(code(ok), "ok", "{ok}");
        }
    }

    #[test]
    fn blank_is_missing() {
        assert_eq!(code(""), MISSING_KEY);
        assert_eq!(code("   "), MISSING_KEY);
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "plainaddress",
            "a@@b.com",
            "a@b@c.com",
            "@example.com",
            "user@",
            "user@localhost",
            "us er@example.com",
            "user@exa mple.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@example..com",
            "user@.example.com",
            "user@example.com.",
            "user@-example.com",
            "user@example-.com",
            "user@exam_ple.com",
            "\"quoted\"@example.com",
            "user(comment)@example.com",
            "josé@example.com",
            "user@exämple.com",
        ] {
            assert_eq!(code(bad), INVALID_EMAIL, "{bad}");
        }
    }

    #[test]
    fn overlong_is_key_too_long() {
        let long = format!(
            "{}@{}.com",
            "a".repeat(60),
            "b".repeat(63) + "." + &"c".repeat(63) + "." + &"d".repeat(63)
        );
        assert!(long.len() > MAX_EMAIL_LEN);
        assert_eq!(code(&long), KEY_TOO_LONG);
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(code(&long_local), INVALID_EMAIL);
    }

    #[test]
    fn messages_never_repeat_the_value() {
        for bad in [
            "secret.person@",
            "secret.person@nowhere",
            "secret person@x.com",
        ] {
            let p = EmailKey::new().normalise(bad).unwrap_err();
            assert!(!p.message.contains("secret"), "{}", p.message);
        }
    }

    #[test]
    fn non_ascii_is_refused_only_where_the_destination_says_so() {
        let p = EmailKey::new()
            .ascii_only(ASCII)
            .normalise("josé@example.com")
            .unwrap_err();
        assert_eq!(p.code, INVALID_EMAIL);
        assert!(
            p.message.ends_with("(the destination accepts ASCII only)"),
            "{}",
            p.message
        );
        assert_eq!(
            EmailKey::new()
                .normalise("José@Example.com")
                .ok()
                .as_deref(),
            Some("josé@example.com")
        );
        // A domain stays ASCII (an IDN is written in its punycode form).
        assert!(EmailKey::new().normalise("user@exämple.com").is_err());
    }
}
