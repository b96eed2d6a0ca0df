//! Certificates and the TLS server config.
//!
//! At start the emulator makes a throw-away CA (ECDSA P-256), a serving
//! certificate for `127.0.0.1`, `::1` and `localhost`, and on request client
//! certificates. As with the API server's x509 authenticator, a client
//! certificate's subject CN is the user name and every O attribute is a
//! group. rcgen keeps one value per attribute type, so client certificates
//! (which need several O attributes) are assembled here with yasna and signed
//! with the CA key.
//!
//! The server asks for a client certificate but does not require one (bearer
//! tokens also authenticate). A certificate not signed by the emulator's CA
//! fails the TLS handshake — the real server would instead answer 401.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SigningKey,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use yasna::models::{ObjectIdentifier, UTCTime};

use crate::auth::UserInfo;

/// Errors making certificates or the TLS config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls rejected the config.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Our own CA certificate could not be parsed.
    #[error("cannot parse the CA certificate")]
    ParseCa,
}

/// A client certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// `-----BEGIN CERTIFICATE-----` ...
    pub cert_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8) ...
    pub key_pem: String,
}

/// The emulator's certificate authority.
pub struct Authority {
    ca_key: KeyPair,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_subject_der: Vec<u8>,
    server_cert: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

const OID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const OID_ORGANIZATION: &[u64] = &[2, 5, 4, 10];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

impl Authority {
    /// Makes a new CA and a serving certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "opsdeck-k8s-emulator-ca");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        ca_params.not_before = now - Duration::hours(1);
        ca_params.not_after = now + Duration::days(365);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_der = ca_cert.der().clone();
        let ca_pem = ca_cert.pem();
        let ca_subject_der = X509Certificate::from_der(&ca_der)
            .map_err(|_| TlsError::ParseCa)?
            .1
            .tbs_certificate
            .subject
            .as_raw()
            .to_vec();

        let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()])?;
        server_params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        let mut server_name = DistinguishedName::new();
        server_name.push(DnType::CommonName, "kube-apiserver");
        server_params.distinguished_name = server_name;
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.not_before = now - Duration::hours(1);
        server_params.not_after = now + Duration::days(365);
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        Ok(Authority {
            ca_key,
            ca_der,
            ca_pem,
            ca_subject_der,
            server_cert: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issues a client certificate with subject `CN=<user>, O=<group>...`.
    pub fn client_identity(&self, user: &str, groups: &[&str]) -> Result<ClientIdentity, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        // UTCTime has whole seconds only.
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let mut serial: [u8; 16] = rand::random();
        serial[0] &= 0x7f;
        serial[0] |= 0x01;

        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_tagged(yasna::Tag::context(0), |w| w.write_u8(2));
                w.next().write_bigint_bytes(&serial, true);
                write_algorithm(w.next());
                w.next().write_der(&self.ca_subject_der);
                w.next().write_sequence(|w| {
                    w.next()
                        .write_utctime(&UTCTime::from_datetime(now - Duration::hours(1)));
                    w.next()
                        .write_utctime(&UTCTime::from_datetime(now + Duration::days(365)));
                });
                w.next().write_sequence(|w| {
                    for group in groups {
                        write_rdn(w.next(), OID_ORGANIZATION, group);
                    }
                    write_rdn(w.next(), OID_COMMON_NAME, user);
                });
                w.next().write_der(&key.subject_public_key_info());
                w.next().write_tagged(yasna::Tag::context(3), |w| {
                    w.write_sequence(|w| {
                        write_extension(w.next(), OID_KEY_USAGE, true, |w| {
                            // digitalSignature (bit 0)
                            w.write_bitvec_bytes(&[0x80], 1)
                        });
                        write_extension(w.next(), OID_EXT_KEY_USAGE, false, |w| {
                            w.write_sequence(|w| {
                                w.next()
                                    .write_oid(&ObjectIdentifier::from_slice(OID_CLIENT_AUTH))
                            })
                        });
                        write_extension(w.next(), OID_BASIC_CONSTRAINTS, true, |w| {
                            w.write_sequence(|_| {})
                        });
                    })
                });
            })
        });
        let signature = self.ca_key.sign(&tbs)?;
        let cert_der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                write_algorithm(w.next());
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            })
        });
        Ok(ClientIdentity {
            cert_pem: to_pem("CERTIFICATE", &cert_der),
            key_pem: key.serialize_pem(),
        })
    }

    /// The rustls server config: TLS 1.2/1.3, ring, HTTP/1.1 via ALPN,
    /// optional client certificates verified against the CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server_cert.clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// One relative distinguished name: `SET { SEQUENCE { oid, UTF8String } }`.
fn write_rdn(w: yasna::DERWriter<'_>, oid: &[u64], value: &str) {
    w.write_set(|w| {
        w.next().write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
            w.next().write_utf8_string(value);
        })
    });
}

fn write_algorithm(w: yasna::DERWriter<'_>) {
    w.write_sequence(|w| {
        w.next()
            .write_oid(&ObjectIdentifier::from_slice(OID_ECDSA_WITH_SHA256))
    });
}

fn write_extension(
    w: yasna::DERWriter<'_>,
    oid: &[u64],
    critical: bool,
    value: impl FnOnce(yasna::DERWriter<'_>),
) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(&yasna::construct_der(value));
    });
}

fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The identity of a verified client certificate: CN → user, O → groups
/// (the x509 request authenticator's `CommonNameUserConversion`).
pub fn identity_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_owned();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(UserInfo::authenticated(name, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_carries_user_and_every_group() {
        let authority = Authority::generate().unwrap();
        let identity = authority.client_identity("alice", &["dev", "ops"]).unwrap();
        let der = rustls_pemfile_like(&identity.cert_pem);
        let user = identity_from_certificate(&der).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(
            user.groups,
            vec![
                "dev".to_string(),
                "ops".to_string(),
                "system:authenticated".to_string()
            ]
        );
    }

    #[test]
    fn client_certificate_verifies_against_the_ca() {
        let authority = Authority::generate().unwrap();
        let identity = authority.client_identity("bob", &[]).unwrap();
        let der = rustls_pemfile_like(&identity.cert_pem);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(authority.ca_der().to_vec()))
            .unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        verifier
            .verify_client_cert(
                &CertificateDer::from(der),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }

    fn rustls_pemfile_like(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
