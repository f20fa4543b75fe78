//! TLS: the server certificate, self-signed generation, and a small certificate authority for the
//! demo and the tests (one CA per federation signs each cluster's leaf; peers trust the CA, since
//! rustls refuses a CA certificate presented as a server's own).

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// A certificate authority kept in memory.
pub struct LocalCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl LocalCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<LocalCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(LocalCa { cert_pem: cert.pem(), params, key })
    }

    /// The CA certificate (PEM), for peers' `ca_cert`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("hearth"));
        params.is_ca = IsCa::ExplicitNoCa;
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(self.params.clone(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes the CA certificate and a leaf for `names` into `dir`: (ca, cert, key) paths.
    pub fn write_leaf(&self, dir: &Path, names: &[&str]) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let (cert, key) = self.issue(names)?;
        let ca_path = dir.join("ca.pem");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&ca_path, &self.cert_pem)?;
        std::fs::write(&cert_path, cert)?;
        write_private(&key_path, key.as_bytes())?;
        Ok((ca_path, cert_path, key_path))
    }
}

/// Writes a file readable by its owner only (mode 0600).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// A self-signed certificate for `host` in `dir` (made once, reused after): (cert, key) paths.
pub fn ensure_self_signed(dir: &Path, host: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("tls-cert.pem");
    let key_path = dir.join("tls-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut names = vec![host.to_string()];
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(&cert_path, ck.cert.pem())?;
    write_private(&key_path, ck.signing_key.serialize_pem().as_bytes())?;
    Ok((cert_path, key_path))
}
