//! The CNI spec versions hostnet-cni answers for, and what each one has.

use crate::error::{codes, CniError};

/// A supported `cniVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    /// Every supported version, oldest first.
    pub const ALL: [Version; 4] = [
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest: what VERSION and errors without a config speak.
    pub const LATEST: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// `cniVersion` of a config; an unsupported one is error 1.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        Version::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| {
                CniError::new(
                    codes::INCOMPATIBLE_VERSION,
                    format!(
                        "cniVersion {s:?} is not supported by hostnet-cni: use one of {}",
                        supported().join(", ")
                    ),
                )
            })
    }

    /// CHECK exists from 0.4.0 on.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Results before 1.0.0 say `"version":"4"` in each IP.
    pub fn ip_has_version_field(self) -> bool {
        self < Version::V1_0_0
    }

    /// 1.1.0 results may carry `mtu` on interfaces and `priority` on routes.
    pub fn has_mtu_and_priority(self) -> bool {
        self >= Version::V1_1_0
    }
}

/// The supported versions as strings, oldest first.
pub fn supported() -> Vec<&'static str> {
    Version::ALL.iter().map(|v| v.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_versions_and_refuses_others() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()).unwrap(), v);
        }
        for bad in ["0.3.0", "0.2.0", "1.2.0", "", "v1.0.0"] {
            let e = Version::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
            assert!(e.msg.contains("0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{}", e.msg);
        }
    }

    #[test]
    fn verbs_by_version() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(Version::V0_4_0.ip_has_version_field());
        assert!(!Version::V1_0_0.ip_has_version_field());
    }
}
