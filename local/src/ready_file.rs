//! The ready file: where the local server tells a script its endpoint and access key once
//! it listens. It holds the access key, so it is created owner-only and exclusively: a
//! file or link planted at its path beforehand never receives the key. The TLS
//! certificate clients are told to trust is written the same way.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to `path` whole: first to `<path>.partial`, created new (a planted
/// file or symlink there is removed, never written through), mode 0600, then renamed over
/// `path` (a rename replaces a link at `path` rather than following it).
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = Path::new(&partial);
    match std::fs::remove_file(partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true) // O_CREAT | O_EXCL: fails on anything there, links included
        .mode(0o600)
        .open(partial)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(partial, path)
}
