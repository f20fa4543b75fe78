//! TLS: the server certificate, self-signed generation, and a small certificate authority for the
//! demo and the tests (one CA per federation signs each cluster's leaf; peers trust the CA, since
//! rustls refuses a CA certificate presented as a server's own).

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Where the self-signed certificate and its key live in data dir `dir`: (cert, key).
pub fn self_signed_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("tls-cert.pem"), dir.join("tls-key.pem"))
}

/// A self-signed certificate for `host` in `dir` (made once, reused after): (cert, key) paths.
pub fn ensure_self_signed(dir: &Path, host: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert_path, key_path) = self_signed_paths(dir);
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

/// The certificates of a PEM file: at least one, each well formed. Used for the files the
/// configuration names, so that a bad one stops the start before anything is written.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// The CA certificates of a PEM file, each usable as a trust anchor.
pub fn read_ca_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = read_certs(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| anyhow::anyhow!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(certs)
}

/// Why a server certificate and key cannot be used, and which of the two is at fault.
#[derive(Debug)]
pub enum ServerTlsError {
    /// The certificate file.
    Cert(anyhow::Error),
    /// The key file, or the key does not belong to the certificate.
    Key(anyhow::Error),
}

/// The server's TLS configuration (HTTP/2 and HTTP/1.1 by ALPN) from a PEM certificate chain and
/// its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    let chain = read_certs(cert).map_err(ServerTlsError::Cert)?;
    let pem =
        std::fs::read(key).map_err(|e| ServerTlsError::Key(anyhow::anyhow!("cannot read {}: {e}", key.display())))?;
    let private = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| ServerTlsError::Key(anyhow::anyhow!("{} holds no usable private key: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| ServerTlsError::Key(anyhow::anyhow!("{} does not fit {}: {e}", key.display(), cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
