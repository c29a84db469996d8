//! Vessel input, parsed once into types that cannot hold invalid values.

/// Why a value was refused (kit's, shared by every subgraph's input types).
pub use shippy_kit::error::Invalid;

/// Largest vessel, in containers (the biggest ships carry ~25 000 TEU; leave room).
pub const CAPACITY_MAX: i32 = 1_000_000;
/// Longest vessel name, in characters.
pub const NAME_MAX: usize = 100;

/// A vessel's name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VesselName(String);

impl VesselName {
    /// Checks and trims.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if name.chars().count() > NAME_MAX {
            return Err(Invalid("must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid("must not contain control characters"));
        }
        if shippy_kit::text::spoofing_char(name).is_some() {
            return Err(Invalid(
                "must not contain invisible or text-direction characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A number of containers: 1 to [`CAPACITY_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity(i32);

impl Capacity {
    /// Checks the range.
    pub fn parse(raw: i32) -> Result<Self, Invalid> {
        if raw < 1 {
            return Err(Invalid("must be a positive number of containers"));
        }
        if raw > CAPACITY_MAX {
            return Err(Invalid("must be at most 1000000 containers"));
        }
        Ok(Self(raw))
    }

    /// The count.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// A weight in whole kilograms, 1 to 1,000,000,000 (the unit every subgraph shares).
pub use shippy_contracts::weight::Kilograms as Weight;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            VesselName::parse("  Ever Given ").unwrap().as_str(),
            "Ever Given"
        );
        assert!(VesselName::parse("").is_err());
        assert!(VesselName::parse(&"x".repeat(101)).is_err());
        assert!(VesselName::parse("bad\nname").is_err());
        assert_eq!(
            VesselName::parse("Ever\u{202E}neviG"),
            Err(Invalid(
                "must not contain invisible or text-direction characters"
            ))
        );
        assert!(VesselName::parse("Ever\u{200B}Given").is_err());
    }

    #[test]
    fn numbers() {
        assert!(Capacity::parse(0).is_err());
        assert!(Capacity::parse(-5).is_err());
        assert_eq!(Capacity::parse(1).unwrap().get(), 1);
        assert!(Capacity::parse(CAPACITY_MAX + 1).is_err());
        assert!(Weight::parse(0).is_err());
        assert!(Weight::parse(-1).is_err());
        assert!(Weight::parse(1_000_000_001).is_err());
        assert_eq!(Weight::parse(1_000_000_000).unwrap().get(), 1_000_000_000);
    }
}
