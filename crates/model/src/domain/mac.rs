//! MAC addresses and MAC ranges (reference/hcn-schema.md §2 "MACs", §4 `MacPool`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, HcnError};

/// A MAC address. Parses `00-15-5D-52-C0-00` and `00:15:5d:3a:1c:07` in any
/// case; displays upper-case with dashes, as HNS does. Serialises as that string.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The address as a 48-bit number (for range arithmetic).
    pub fn to_u64(self) -> u64 {
        self.0.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// The address from the low 48 bits of `v`.
    pub fn from_u64(v: u64) -> Self {
        let b = v.to_be_bytes();
        Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a MAC address: give six hex pairs such as 00-15-5D-52-C0-00 or 00:15:5d:52:c0:00"
)]
pub struct ParseMacError(pub String);

impl FromStr for Mac {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let t = s.trim();
        let sep = if t.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = t.split(sep);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive MAC range with `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacRange {
    /// First address.
    pub start: Mac,
    /// Last address.
    pub end: Mac,
}

impl MacRange {
    /// A range, or `InvalidNetwork` if `start > end`.
    pub fn new(start: Mac, end: Mac) -> Result<Self, HcnError> {
        if start > end {
            return Err(HcnError::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "MacPool range starts at {start}, after its end {end}: \
                     give StartMacAddress <= EndMacAddress"
                ),
            ));
        }
        Ok(MacRange { start, end })
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        self.end.to_u64() - self.start.to_u64() + 1
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when `mac` lies in the range.
    pub fn contains(&self, mac: Mac) -> bool {
        self.start <= mac && mac <= self.end
    }
}
