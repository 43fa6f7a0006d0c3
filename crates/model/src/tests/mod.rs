//! Tier-0 tests of the model crate: the §2 conventions, each object kind and
//! every policy type, using documents shaped like those real clients send.

mod conventions;
mod modify;
mod objects;
mod options;
mod policies;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ErrorCode, HcnError};
use crate::from_json;

/// Decode `json` as `T`, panicking with the error message on failure.
fn wire<T: DeserializeOwned>(json: &str) -> T {
    from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Assert that serialising `v` and decoding the output gives `v` back.
fn assert_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let out = serde_json::to_vec(v).unwrap();
    let back: T = from_json(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&back, v, "round trip of {}", String::from_utf8_lossy(&out));
}

/// Serialise to a `Value` for structural comparison.
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Assert an error has `code` and its message contains every fragment.
fn assert_err<T: std::fmt::Debug>(r: Result<T, HcnError>, code: ErrorCode, fragments: &[&str]) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.code, code, "unexpected code for: {}", e.message);
    for f in fragments {
        assert!(e.message.contains(f), "message {:?} lacks {f:?}", e.message);
    }
}
