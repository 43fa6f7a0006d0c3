//! Writing results: the `--format` choice, JSON, and readable blocks.
//!
//! Output goes through [`emit`] so that `hostnet network ls | head` ends
//! quietly instead of panicking on a closed pipe.

use serde_json::Value;
use std::io::Write;

/// `--format`: how to print objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The objects as the daemon returned them, pretty-printed JSON.
    Json,
    /// A human-readable table (ls) or block (inspect).
    Table,
}

/// Writes `text` to stdout; a closed pipe is not an error worth reporting.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Pretty JSON followed by a newline.
pub fn json_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// One object as `Key: value` lines, keys aligned. Scalars are shown bare,
/// lists of scalars comma-separated, nested objects as compact JSON.
pub fn block_text(object: &Value) -> String {
    let Some(map) = object.as_object() else {
        return json_text(object);
    };
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in map {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        let pad = width - key.chars().count();
        let line = format!("{key}:{} {shown}", " ".repeat(pad));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Several objects as blocks separated by blank lines.
pub fn blocks_text(objects: &[Value]) -> String {
    objects
        .iter()
        .map(block_text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks() {
        let text = blocks_text(&[
            json!({"ID":"N1","Name":"nat","Flags":0,"Ipams":[{"Type":"Static"}],"Tags":["a","b"]}),
            json!({"ID":"N2","Resources":[]}),
        ]);
        assert_eq!(
            text,
            "Flags: 0\nID:    N1\nIpams: [{\"Type\":\"Static\"}]\nName:  nat\nTags:  a, b\n\nID:        N2\nResources:\n"
        );
    }
}
