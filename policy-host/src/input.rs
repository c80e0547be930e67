//! Bounded reading of the files hosts are given (certificates, keys,
//! enrollment sets, configuration): a FIFO, `/dev/zero` or a file that grows
//! while being read costs at most `limit + 1` bytes of memory, never all of it.

use std::io::Read;
use std::path::Path;

/// Reads at most `limit` bytes of `path`; more is an error that says so,
/// and so is a directory. Works for pipes and devices (no size is
/// trusted: the read itself is bounded).
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory, not a file",
        ));
    }
    let mut out = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is larger than the {limit}-byte limit"),
        ));
    }
    Ok(out)
}

/// [`read_limited`], as UTF-8 text.
pub fn read_limited_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_is_cut_off_at_the_limit() {
        let err = read_limited(Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(err.to_string().contains("4096-byte limit"), "{err}");
        let err = read_limited(Path::new("/"), 10).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn a_file_within_the_limit_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("attest-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_limited(&path, 10).unwrap(), b"0123456789");
        assert!(read_limited(&path, 9).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
