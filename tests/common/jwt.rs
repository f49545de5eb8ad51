//! Test tokens: keys made in the test (never committed), JWKS documents built from them,
//! and tokens signed by an independent library (`jsonwebtoken`), so ringway's verifier
//! is checked against someone else's signer.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A signing key and its public JWK.
pub struct Signer {
    pub alg: Algorithm,
    pub kid: String,
    key: EncodingKey,
    pub jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    /// A fresh key for `alg` (HS*, RS*, PS*, ES256, ES384, EdDSA) named `kid`.
    pub fn new(alg: Algorithm, kid: &str) -> Signer {
        use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
        let (key, mut jwk) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret: Vec<u8> = (0..64).map(|_| fastrand::u8(..)).collect();
                let key = EncodingKey::from_secret(&secret);
                (key, json!({ "kty": "oct", "k": b64(&secret) }))
            }
            Algorithm::EdDSA => {
                let pair = KeyPair::generate_for(&PKCS_ED25519).unwrap();
                let key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
                let x = b64(pair.public_key_raw());
                (key, json!({ "kty": "OKP", "crv": "Ed25519", "x": x }))
            }
            _ => {
                let pem = match alg {
                    Algorithm::ES256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
                    Algorithm::ES384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
                    _ => {
                        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    }
                }
                .unwrap()
                .serialize_pem();
                let key = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => {
                        EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
                    }
                    _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                };
                let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).unwrap();
                (key, serde_json::to_value(jwk).unwrap())
            }
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(format!("{alg:?}"));
        jwk["use"] = json!("sig");
        Signer {
            alg,
            kid: kid.into(),
            key,
            jwk,
        }
    }

    /// A token with `claims`, this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A token without a `kid` in its header.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.key).unwrap()
    }
}

/// A JWKS document of these keys.
pub fn jwks(signers: &[&Signer]) -> String {
    json!({ "keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims valid for an hour: `iss`, `aud`, `sub` and `exp`, plus `extra`.
pub fn claims(iss: &str, aud: &str, sub: &str, extra: Value) -> Value {
    let mut c = json!({ "iss": iss, "aud": aud, "sub": sub, "iat": now(), "exp": now() + 3600 });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64(claims.to_string().as_bytes()))
}

/// A JWKS server: answers every GET with the document it was last given (`None`: 503).
pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    docs: std::sync::mpsc::Sender<Option<String>>,
    pub fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    pub fn start(doc: Option<String>) -> JwksServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (docs, updates) = std::sync::mpsc::channel::<Option<String>>();
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&fetches);
        std::thread::spawn(move || {
            let mut current = doc;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                while let Ok(next) = updates.try_recv() {
                    current = next;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let reply = match &current {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        JwksServer {
            addr,
            docs,
            fetches,
        }
    }

    /// Serves `doc` from the next request on (`None`: 503).
    pub fn serve(&self, doc: Option<String>) {
        let _ = self.docs.send(doc);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}
