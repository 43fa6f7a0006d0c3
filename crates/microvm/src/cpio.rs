//! A writer of `newc` cpio archives, the format the kernel unpacks as an
//! initramfs. Written here rather than by running `cpio` so the archive's
//! layout (paths, modes, symlinks) is decided in one place and needs no
//! staging directory.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &str = "070701";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// An archive being written: directories, files and symlinks in the
/// order they are added (a directory must come before what it holds).
pub struct Archive<W: Write> {
    out: W,
    inode: u32,
    written: u64,
}

impl Archive<BufWriter<File>> {
    /// An archive written to a new file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(BufWriter::new(File::create(path)?)))
    }
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            inode: 1,
            written: 0,
        }
    }

    /// A directory at `path` (absolute in the archive, e.g. `/lib`).
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | mode, 2, &[])
    }

    /// A regular file holding `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | mode, 1, data)
    }

    /// A regular file copied from `source` on this machine.
    pub fn copy(&mut self, path: &str, mode: u32, source: &Path) -> io::Result<()> {
        let mut data = Vec::new();
        File::open(source)?.read_to_end(&mut data)?;
        self.file(path, mode, &data)
    }

    /// A symlink at `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let ino = self.inode;
        self.inode += 1;
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file over 4 GiB"))?;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            0, // rdev major
            0, // rdev minor
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::with_capacity(110);
        header.push_str(MAGIC);
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// newc aligns every header and every file's data to 4 bytes.
    fn pad(&mut self) -> io::Result<()> {
        let zeros = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..zeros])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], i: usize) -> u32 {
        let at = 6 + 8 * i;
        u32::from_str_radix(std::str::from_utf8(&header[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn entries_are_newc_headers_with_names_and_data_aligned_to_four() {
        let mut a = Archive::new(Vec::new());
        a.dir("/bin", 0o755).unwrap();
        a.file("/bin/x", 0o755, b"hello").unwrap();
        a.symlink("/sh", "bin/x").unwrap();
        let out = a.finish().unwrap();

        assert_eq!(&out[..6], b"070701");
        assert_eq!(field(&out, 1), S_IFDIR | 0o755);
        assert_eq!(field(&out, 11), 4, "name size counts the NUL");
        assert_eq!(&out[110..114], b"bin\0");
        // 110 + 4 = 114, padded to 116; a directory has no data.
        let file = &out[116..];
        assert_eq!(&file[..6], b"070701");
        assert_eq!(field(file, 1), S_IFREG | 0o755);
        assert_eq!(field(file, 6), 5);
        assert_eq!(&file[110..116], b"bin/x\0");
        assert_eq!(&file[116..121], b"hello");
        // Data padded to 4: 116 + 5 = 121 -> 124.
        let link = &file[124..];
        assert_eq!(field(link, 1), S_IFLNK | 0o777);
        assert_eq!(&link[110..113], b"sh\0");
        assert_eq!(&link[116..121], b"bin/x");
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
    }

    /// Debian's `cpio` reads what this writes back with the same names.
    #[test]
    fn cpio_lists_what_was_written() {
        if !Path::new("/usr/bin/cpio").exists() && !Path::new("/bin/cpio").exists() {
            eprintln!("skipped: cpio is not installed");
            return;
        }
        let mut a = Archive::new(Vec::new());
        a.dir("/etc", 0o755).unwrap();
        a.file("/etc/hostname", 0o644, b"guest\n").unwrap();
        a.symlink("/etc/link", "hostname").unwrap();
        let out = a.finish().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let listed = child.wait_with_output().unwrap();
        assert!(listed.status.success());
        assert_eq!(
            String::from_utf8(listed.stdout).unwrap(),
            "etc\netc/hostname\netc/link\n"
        );
    }
}
