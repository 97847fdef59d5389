//! Lease ids: `lbx_` followed by 12 lowercase hex digits, random, checked on every parse so an
//! id from a command line or a file can never name a path outside the state dir.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A lease id such as `lbx_0123456789ab`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaseId(String);

/// An id that is not of the form `lbx_` + 12 hex digits.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "`{0}` is not a lease id: expected `lbx_` followed by 12 hex digits, as `leasebox list` shows"
)]
pub struct LeaseIdError(pub String);

impl LeaseId {
    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        let bytes: [u8; 6] = rand::random();
        LeaseId(format!("lbx_{}", hex::encode(bytes)))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LeaseId {
    type Err = LeaseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 16
            && s.starts_with("lbx_")
            && s[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(LeaseId(s.to_owned()))
        } else {
            Err(LeaseIdError(s.to_owned()))
        }
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for LeaseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LeaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse() {
        let id = LeaseId::generate();
        assert_eq!(id.as_str().len(), 16);
        assert_eq!(id.as_str().parse::<LeaseId>().unwrap(), id);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "lbx_",
            "lbx_0123456789aB",
            "lbx_../../etc/pa",
            "xyz_0123456789ab",
            "lbx_0123456789abc",
        ] {
            assert!(bad.parse::<LeaseId>().is_err(), "{bad} parsed");
        }
    }
}
