//! The cluster's ed25519 signing key on disk: a one-line file `ed25519-secret:<base64 of 32 bytes>`,
//! mode 0600, generated at first start when missing.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use federation_proto::ClusterSigningKey;
use rand::RngExt;
use std::path::Path;

const PREFIX: &str = "ed25519-secret:";

/// A fresh key from the operating system's CSPRNG.
pub fn generate() -> ClusterSigningKey {
    let mut secret = [0u8; 32];
    rand::rng().fill(&mut secret);
    ClusterSigningKey::from_secret_bytes(&secret)
}

/// Writes `key` to `path` with mode 0600.
pub fn write(path: &Path, key: &ClusterSigningKey) -> anyhow::Result<()> {
    let text = format!("{PREFIX}{}\n", STANDARD_NO_PAD.encode(key.secret_bytes()));
    crate::tls::write_private(path, text.as_bytes())
}

/// Reads the key at `path`.
pub fn read(path: &Path) -> anyhow::Result<ClusterSigningKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read signing key {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!("signing key {} must not be readable by group or others (chmod 600)", path.display());
    }
    let text = std::fs::read_to_string(path)?;
    let b64 =
        text.trim().strip_prefix(PREFIX).with_context(|| format!("{} is not a hearth signing key", path.display()))?;
    let bytes = STANDARD_NO_PAD.decode(b64.trim_end_matches('=')).context("signing key: bad base64")?;
    ClusterSigningKey::from_secret_slice(&bytes).map_err(|e| anyhow::anyhow!("signing key: {e}"))
}

/// Reads the key at `path` when that file exists (an unusable file is an error).
pub fn read_if_present(path: &Path) -> anyhow::Result<Option<ClusterSigningKey>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read(path).map(Some),
    }
}

/// Generates a key and writes it to `path` (mode 0600).
pub fn create(path: &Path) -> anyhow::Result<ClusterSigningKey> {
    let key = generate();
    write(path, &key)?;
    tracing::info!(path = %path.display(), public_key = %key.public(), "generated a new signing key");
    Ok(key)
}
