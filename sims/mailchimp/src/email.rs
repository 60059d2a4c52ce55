//! Email addresses: Mailchimp's subscriber hash and the two refusals a
//! client meets ("Please provide a valid email address." and "… looks fake
//! or invalid, please enter a real email address.").

use md5::{Digest, Md5};

/// A subscriber hash: the MD5 of the lowercased email.
pub type Hash = [u8; 16];

/// MD5 of the lowercased address, as bytes.
pub fn hash(email: &str) -> Hash {
    Md5::digest(email.to_lowercase().as_bytes()).into()
}

/// MD5 of the lowercased address, as the lowercase hex Mailchimp uses.
pub fn hash_hex(email: &str) -> String {
    to_hex(&hash(email))
}

/// Lowercase hex of a hash.
pub fn to_hex(h: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in h {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A path's subscriber hash: exactly 32 lowercase hex digits.
pub fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 32 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let (hi, lo) = (nibble(*pair.first()?)?, nibble(*pair.get(1)?)?);
        *out.get_mut(i)? = (hi << 4) | lo;
    }
    Some(out)
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an address at all.
    Invalid,
    /// Well formed, but Mailchimp calls it fake (a refused domain).
    Fake,
}

impl Refusal {
    /// Mailchimp's message for this address.
    pub fn message(self, email: &str) -> String {
        match self {
            Refusal::Invalid => "Please provide a valid email address.".to_string(),
            Refusal::Fake => {
                format!("{email} looks fake or invalid, please enter a real email address.")
            }
        }
    }
}

/// Checks an address as Mailchimp would (stricter where unknown: ASCII
/// only, no surrounding spaces, a dotted domain).
pub fn check(email: &str, fake_domains: &[String]) -> Result<(), Refusal> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err(Refusal::Invalid);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2);
    if !local_ok || !domain_ok || email.len() > 254 {
        return Err(Refusal::Invalid);
    }
    let domain = domain.to_ascii_lowercase();
    if fake_domains.contains(&domain) {
        return Err(Refusal::Fake);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_of_lowercase() {
        // md5("test@example.com")
        assert_eq!(
            hash_hex("Test@Example.COM"),
            "55502f40dc8b7c769880b10874abc9d0"
        );
        assert_eq!(
            parse_hex("55502f40dc8b7c769880b10874abc9d0"),
            Some(hash("test@example.com"))
        );
        assert_eq!(parse_hex("55502F40DC8B7C769880B10874ABC9D0"), None);
        assert_eq!(parse_hex("test@example.com"), None);
    }

    #[test]
    fn validity() {
        let fake = vec!["gmil.com".to_string()];
        for ok in ["a@b.co", "first.last+tag@mail.example.com", "o'neil@x.org"] {
            assert_eq!(check(ok, &fake), Ok(()), "{ok}");
        }
        for bad in [
            "not-an-email",
            "john.smith@",
            "@example.com",
            "two@@example.com",
            "space in@example.com",
            "missing-domain@.com",
            " a@b.com",
            "a@b",
            "ü@b.com",
            "a..b@c.com",
        ] {
            assert_eq!(check(bad, &fake), Err(Refusal::Invalid), "{bad}");
        }
        assert_eq!(check("x@GMIL.com", &fake), Err(Refusal::Fake));
        assert_eq!(
            Refusal::Fake.message("x@gmil.com"),
            "x@gmil.com looks fake or invalid, please enter a real email address."
        );
    }
}
