//! `sim --tls`: a certificate authority made at start, a server certificate for 127.0.0.1 and
//! localhost signed by it, and the rustls acceptor that serves it. The wizard trusts the CA
//! through `--ca-file` (or the plan key or AUTOPILOT_WIZARD_CA_FILE), the same way an office
//! behind a TLS-inspecting firewall adds its own.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The simulated tenant's TLS material: what clients must trust, and what the server presents.
#[derive(Clone)]
pub struct SimTls {
    /// The CA certificate, PEM, for clients to trust.
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("TLS certificate for the simulated tenant: {e}"))
}

/// A fresh CA and server certificate (new keys on every start: nothing to leak, nothing to
/// expire between runs).
pub fn generate() -> std::io::Result<SimTls> {
    let ca_key = KeyPair::generate().map_err(other)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Autopilot wizard simulated tenant CA");
    dn.push(DnType::OrganizationName, "autopilot-wizard (test only)");
    ca_params.distinguished_name = dn;
    // It signs only the one server certificate below.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(other)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(other)?;
    // rcgen turns "127.0.0.1" into an IP address name, which is what the URL names.
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(other)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "127.0.0.1");
    leaf_params.distinguished_name = dn;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(other)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
        .map_err(other)?;
    // axum is built here without HTTP/2: say so in ALPN, or clients that offer h2 would pick it.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SimTls {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    })
}
