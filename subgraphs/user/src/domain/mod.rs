//! User input, parsed once into types that cannot hold invalid values, and how passwords are kept
//! ([`password`]).

pub mod password;

use std::fmt;

/// Why a value was refused (kit's, shared by every subgraph's input types).
pub use shippy_kit::error::Invalid;

/// Shortest accepted password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest accepted password, in characters (bounds hashing cost).
pub const PASSWORD_MAX: usize = 128;
/// Longest name or company, in characters.
pub const NAME_MAX: usize = 100;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// An email address as the user typed it (trimmed). Uniqueness uses [`Email::normalized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld`: one `@`, non-empty parts, a dot inside the domain, no spaces.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if email.chars().count() > EMAIL_MAX {
            return Err(Invalid("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(Invalid("is not an email address"));
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty()
            || !domain_ok
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
            || shippy_kit::text::spoofing_char(email).is_some()
        {
            return Err(Invalid("is not an email address"));
        }
        Ok(Self(email.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-cased: two addresses differing only in case belong to one account.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

fn short_text(raw: &str) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid("must not be empty"));
    }
    if text.chars().count() > NAME_MAX {
        return Err(Invalid("must be at most 100 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid("must not contain control characters"));
    }
    if shippy_kit::text::spoofing_char(text).is_some() {
        return Err(Invalid(
            "must not contain invisible or text-direction characters",
        ));
    }
    Ok(text.to_owned())
}

/// A person's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Checks and trims.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        short_text(raw).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A company name, same rules as [`PersonName`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company(String);

impl Company {
    /// Checks and trims.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        short_text(raw).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length; spaces are allowed and kept (pass phrases).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < PASSWORD_MIN {
            return Err(Invalid("must be at least 8 characters"));
        }
        if len > PASSWORD_MAX {
            return Err(Invalid("must be at most 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.normalized(), "ada.lovelace@example.com");
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@.com",
            "ada@example.",
            "a b@c.de",
            "a@b@c.de",
            "ada@exa..mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(PersonName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse(" ").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
        assert!(PersonName::parse(&"é".repeat(100)).is_ok());
        assert!(Company::parse("Acme\u{0}").is_err());
        assert_eq!(
            PersonName::parse("Ada\u{202E}ecalevoL"),
            Err(Invalid(
                "must not contain invisible or text-direction characters"
            ))
        );
        assert!(Company::parse("Ac\u{200B}me").is_err());
        assert!(Email::parse("ad\u{200D}a@example.com").is_err());
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-secret").unwrap()),
            "Password(****)"
        );
    }
}
