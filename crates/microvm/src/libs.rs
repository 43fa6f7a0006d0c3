//! The shared libraries a dynamically linked program needs, so a guest
//! gets this machine's programs with exactly the libraries they were
//! linked against.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The absolute paths `ldd` prints for `binary` (its libraries and the
/// dynamic loader); empty for a static program.
pub fn needed(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("not a dynamic executable") {
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("not a dynamic executable") {
            return Err(format!("ldd {}: {err}", binary.display()));
        }
    }
    parse_ldd(&text)
}

/// The library paths of `ldd`'s output; a library it could not find is
/// an error (the program would not start in the guest).
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("=> not found") {
            return Err(format!("missing library: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(p));
        }
    }
    Ok(out)
}

/// Every library any of `binaries` needs, each once.
pub fn closure(binaries: &[PathBuf]) -> Result<BTreeSet<PathBuf>, String> {
    let mut all = BTreeSet::new();
    for b in binaries {
        all.extend(needed(b)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_libraries_and_the_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007f86fb13b000)\n\
                    \tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f86fae24000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f86fb13d000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libmnl.so.0"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn a_static_program_needs_nothing_and_a_missing_library_is_an_error() {
        assert!(parse_ldd("\tnot a dynamic executable\n")
            .unwrap()
            .is_empty());
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.contains("libfoo"), "{err}");
    }
}
