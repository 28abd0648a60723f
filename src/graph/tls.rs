//! Certificate authorities trusted in addition to the system's store: a company's
//! TLS-inspecting firewall, or the simulated tenant's `sim --tls`. Given by `--ca-file`, the
//! plan's `ca_file` or [`CA_FILE_ENV`]; every HTTP client the wizard builds for Graph and the
//! login service trusts them (the system store stays in use: corporate firewalls rely on it).

use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Environment variable naming one more CA file (PEM or DER).
pub const CA_FILE_ENV: &str = "AUTOPILOT_WIZARD_CA_FILE";

/// Process-wide: a CA an administrator trusts holds for every tenant and client alike.
static EXTRA_ROOTS: RwLock<Vec<(PathBuf, Vec<reqwest::Certificate>)>> = RwLock::new(Vec::new());

#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("The certificate file {path} could not be read ({source}).")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no certificate. Give the CA certificate as PEM (-----BEGIN CERTIFICATE-----) or as a DER .cer file."
    )]
    NoCertificate { path: PathBuf },
    #[error("The certificate in {path} could not be read: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Parses a PEM bundle, or one DER certificate (Windows' "DER encoded binary X.509 (.CER)").
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let looks_pem = bytes.windows(10).any(|w| w == b"-----BEGIN");
    if looks_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(bytes).map_err(|e| CaFileError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(CaFileError::NoCertificate {
                path: path.to_path_buf(),
            });
        }
        return Ok(certs);
    }
    // DER is a SEQUENCE: 0x30 first. Anything else is neither form.
    if bytes.first() != Some(&0x30) {
        return Err(CaFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    reqwest::Certificate::from_der(bytes)
        .map(|c| vec![c])
        .map_err(|e| CaFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Trusts the CA certificates in `path` from now on (for clients built after this call).
/// Returns how many certificates the file held. The same file given twice is read once.
pub fn trust_ca_file(path: &Path) -> Result<usize, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = parse(path, &bytes)?;
    let n = certs.len();
    let mut roots = EXTRA_ROOTS.write().unwrap_or_else(|p| p.into_inner());
    if !roots.iter().any(|(p, _)| p == path) {
        tracing::info!(file = %path.display(), certificates = n, "trusting an extra certificate authority");
        roots.push((path.to_path_buf(), certs));
    }
    Ok(n)
}

/// Trusts the file [`CA_FILE_ENV`] names, if it is set.
pub fn trust_ca_from_env() -> Result<Option<usize>, CaFileError> {
    match std::env::var_os(CA_FILE_ENV) {
        Some(v) if !v.is_empty() => trust_ca_file(Path::new(&v)).map(Some),
        _ => Ok(None),
    }
}

/// The files trusted so far, for the log and the sign-in page.
pub fn trusted_files() -> Vec<PathBuf> {
    EXTRA_ROOTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

/// `builder` with the extra CAs added to (not replacing) the platform's trust store.
pub fn with_extra_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    let roots = EXTRA_ROOTS.read().unwrap_or_else(|p| p.into_inner());
    builder.tls_certs_merge(roots.iter().flat_map(|(_, c)| c.iter().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_pem_nor_der_is_refused_with_the_forms_named() {
        let e = parse(Path::new("x.txt"), b"hello").unwrap_err();
        assert!(matches!(e, CaFileError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("PEM"), "{e}");
        let e = parse(
            Path::new("x.pem"),
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(matches!(e, CaFileError::Parse { .. }), "{e}");
    }
}
