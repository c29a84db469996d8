//! Weights as every subgraph stores, checks and sends them: whole kilograms ([`Kilograms`]), so capacity
//! checks and running totals are exact integer arithmetic (floating point let `0.1 + 0.2` of cargo
//! disagree with `0.3` of room).
//!
//! Events recorded by the version that carried weights as floating-point numbers may still be in outboxes
//! and streams; [`deserialize_kilograms`] reads them rounded **up** to the next kilogram, so a consignment
//! never books less than it weighs.

use serde::{Deserialize, Deserializer};
use shippy_kit::error::Invalid;

/// Heaviest weight accepted anywhere (a vessel's max weight, a consignment's weight): 1,000,000,000 kg,
/// ten times the cargo of the largest ships, and well inside a GraphQL `Int`.
pub const KILOGRAMS_MAX: i64 = 1_000_000_000;

/// A weight in whole kilograms: 1 to [`KILOGRAMS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kilograms(i64);

impl Kilograms {
    /// Checks the range.
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if raw < 1 {
            return Err(Invalid("must be a positive number of kilograms"));
        }
        if raw > KILOGRAMS_MAX {
            return Err(Invalid("must be at most 1000000000 kg"));
        }
        Ok(Self(raw))
    }

    /// The kilograms.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A stored weight in kilograms as a GraphQL `Int` (32 bits). Weights accepted since kilograms are
/// bounded by [`KILOGRAMS_MAX`] and always fit; a larger one migrated from the floating-point era shows
/// as `i32::MAX`, a negative one as 0.
pub fn graphql_int(kilograms: i64) -> i32 {
    i32::try_from(kilograms.max(0)).unwrap_or(i32::MAX)
}

/// serde `deserialize_with` for a weight in kilograms: an integer as it is, a number with a fraction
/// (an event from the floating-point version) rounded up. Non-numbers, and numbers beyond `i64`, are
/// errors.
pub fn deserialize_kilograms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(kilograms) = number.as_i64() {
        return Ok(kilograms);
    }
    match number.as_f64() {
        // `as` saturates; the bound check makes sure it has nothing to saturate.
        Some(weight) if weight.is_finite() && weight.abs() < 9.0e18 => Ok(weight.ceil() as i64),
        _ => Err(D::Error::custom(format!(
            "weight {number} is not a number of kilograms"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilograms_are_bounded() {
        assert!(Kilograms::parse(0).is_err());
        assert!(Kilograms::parse(-5).is_err());
        assert_eq!(Kilograms::parse(1).unwrap().get(), 1);
        assert_eq!(
            Kilograms::parse(KILOGRAMS_MAX).unwrap().get(),
            1_000_000_000
        );
        assert_eq!(
            Kilograms::parse(KILOGRAMS_MAX + 1),
            Err(Invalid("must be at most 1000000000 kg"))
        );
        assert_eq!(graphql_int(KILOGRAMS_MAX), 1_000_000_000);
        assert_eq!(graphql_int(1_000_000_000_000), i32::MAX);
        assert_eq!(graphql_int(-3), 0);
    }

    #[derive(Debug, Deserialize)]
    struct W {
        #[serde(deserialize_with = "deserialize_kilograms")]
        weight: i64,
    }

    fn read(json: &str) -> Result<i64, serde_json::Error> {
        serde_json::from_str::<W>(json).map(|w| w.weight)
    }

    #[test]
    fn old_floating_point_weights_round_up() {
        assert_eq!(read(r#"{"weight": 800}"#).unwrap(), 800);
        assert_eq!(read(r#"{"weight": 800.0}"#).unwrap(), 800);
        assert_eq!(read(r#"{"weight": 0.2}"#).unwrap(), 1);
        assert_eq!(read(r#"{"weight": 2.5}"#).unwrap(), 3);
        assert_eq!(read(r#"{"weight": 99.000001}"#).unwrap(), 100);
        assert!(read(r#"{"weight": 1e300}"#).is_err());
        assert!(read(r#"{"weight": "12"}"#).is_err());
        assert!(read(r#"{"weight": 18446744073709551615}"#).is_err());
    }
}
