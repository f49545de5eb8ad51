//! Certificates made by the tests (rcgen): a CA, servers and clients it signs, valid
//! for at most 30 days from yesterday (never committed keys, never a year-long cert),
//! written as PEM files in a temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A test certificate authority and the directory its files go to.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate's PEM file.
    pub ca_file: PathBuf,
}

/// A certificate and key written to files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate's validity: `days_from_now` (`start`, `end`), days relative to today.
fn validity(params: &mut CertificateParams, (start, end): (i64, i64)) {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400;
    let date = |days: i64| {
        let (y, m, d) = civil_from_days(today + days);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = date(start);
    params.not_after = date(end);
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A subject alt name: `spiffe://...` and `https://...` are URIs, an address an IP,
/// anything else a DNS name.
fn san(name: &str) -> SanType {
    if name.contains("://") {
        SanType::URI(name.try_into().unwrap())
    } else if let Ok(ip) = name.parse() {
        SanType::IpAddress(ip)
    } else {
        SanType::DnsName(name.try_into().unwrap())
    }
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, (-1, 30));
        let key = KeyPair::generate().unwrap();
        // The CA's key too, for tools that sign as the CA (an OCSP response).
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).unwrap();
        let ca = CertifiedIssuer::self_signed(params, key).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki { dir, ca, ca_file }
    }

    /// A server certificate (ECDSA P-256) for `names`, valid from yesterday for 30 days.
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names, KeyPair::generate().unwrap(), (-1, 30), true)
    }

    /// A server certificate with an RSA-2048 key.
    pub fn server_rsa(&self, file: &str, names: &[&str]) -> Issued {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        self.issue(file, names, key, (-1, 30), true)
    }

    /// A server certificate that expired yesterday.
    pub fn expired_server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names, KeyPair::generate().unwrap(), (-10, -1), true)
    }

    /// A client certificate for `names` (a SPIFFE ID, say).
    pub fn client(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names, KeyPair::generate().unwrap(), (-1, 30), false)
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        key: KeyPair,
        days: (i64, i64),
        server: bool,
    ) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names.iter().map(|n| san(n)).collect();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(file));
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        validity(&mut params, days);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// Where a file of this PKI goes.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A rustls client configuration trusting `ca` (and presenting `client`, if given),
/// with the TLS versions `versions` and a session store kept across connections.
pub fn client_config(
    ca: &Path,
    client: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&str],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = CertificateDer::pem_file_iter(&c.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&c.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A blocking TLS connection (rustls over a std socket).
pub type TlsConn = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Connects and completes the handshake with `server_name`.
pub fn tls_connect(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    server_name: &str,
) -> std::io::Result<TlsConn> {
    let tcp = super::connect(addr)?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// One request on a TLS connection; the response.
pub fn tls_request(conn: &mut TlsConn, raw: &str) -> std::io::Result<super::Response> {
    use std::io::Write;
    conn.write_all(raw.as_bytes())?;
    conn.flush()?;
    super::read_response(&mut std::io::BufReader::new(conn), false)
}
