//! TLS settings: loading the PEM certificate and key into a rustls `ServerConfig`, and the
//! self-signed pair a new data dir starts with.
//!
//! Each executor loads its own `Arc<ServerConfig>` (at start and again on SIGHUP), so a reload
//! needs no state shared between cores. Sessions already running keep the config they started
//! with, as rustls intends.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Why the TLS configuration could not be loaded; the message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be opened.
    #[error("cannot read TLS {what} {path}: {source} (check [tls] {what} in the config and the file's permissions)")]
    Read {
        /// "cert" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds no usable PEM item.
    #[error("TLS {what} {path} holds no {expected} in PEM form (check [tls] {what})")]
    Empty {
        /// "cert" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
    },
    /// rustls refused the pair (key does not match, unsupported key type, ...).
    #[error("TLS certificate {cert} and key {key} are not usable together: {message}")]
    Rejected {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
    /// The self-signed certificate could not be generated or written.
    #[error("cannot create a self-signed certificate in {dir}: {message}")]
    Generate {
        /// Target directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Loads a certificate chain and private key into a server config for TLS 1.2/1.3
/// (`min_version` "1.2" or "1.3").
pub fn load(cert: &Path, key: &Path, min_version: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(cert)?;
    let private_key = read_key(key)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if min_version == "1.3" {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|e| TlsError::Rejected {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = File::open(path).map_err(|source| TlsError::Read {
        what: "cert",
        path: path.to_owned(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what: "cert",
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "cert",
            path: path.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = File::open(path).map_err(|source| TlsError::Read {
        what: "key",
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsError::Read {
            what: "key",
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            what: "key",
            path: path.to_owned(),
            expected: "PRIVATE KEY",
        })
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1` and its key (mode
/// 0600) when neither file exists yet.
pub fn create_self_signed(cert: &Path, key: &Path) -> Result<bool, TlsError> {
    if cert.exists() || key.exists() {
        return Ok(false);
    }
    let dir = cert.parent().unwrap_or(Path::new(".")).to_owned();
    let fail = |message: String| TlsError::Generate {
        dir: dir.clone(),
        message,
    };
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    if let Some(key_dir) = key.parent() {
        std::fs::create_dir_all(key_dir).map_err(|e| fail(e.to_string()))?;
    }
    write_private(key, certified.key_pair.serialize_pem().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(cert, certified.cert.pem()).map_err(|e| fail(e.to_string()))?;
    Ok(true)
}

/// Creates `path` readable by its owner only and writes `data` to it.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls/cert.pem");
        let key = dir.path().join("tls/key.pem");
        assert!(create_self_signed(&cert, &key).unwrap());
        assert!(
            !create_self_signed(&cert, &key).unwrap(),
            "never overwrites"
        );
        load(&cert, &key, "1.2").unwrap();
        load(&cert, &key, "1.3").unwrap();
    }

    #[test]
    fn missing_and_wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = load(&cert, &key, "1.2").unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not pem").unwrap();
        let err = load(&cert, &key, "1.2").unwrap_err().to_string();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
