//! TLS termination with rustls: certificates by SNI, TLS 1.2 and 1.3, ALPN for HTTP/2.

use rampart_policy::{TlsSettings, TlsVersion};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// "*.example.com" stored as ".example.com".
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        for (suffix, k) in &self.wildcard {
            if let Some(label) = name.strip_suffix(suffix.as_str()) {
                if !label.is_empty() && !label.contains('.') {
                    return Some(k.clone());
                }
            }
        }
        Some(self.default.clone())
    }
}

pub fn server_config(settings: &TlsSettings) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut exact = HashMap::new();
    let mut wildcard = Vec::new();
    let mut default = None;
    for cert in &settings.certificates {
        let chain = rustls_pemfile::certs(&mut cert.chain_pem.as_slice()).collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            anyhow::bail!("{}: no certificate in file", cert.cert_path.display());
        }
        let key = rustls_pemfile::private_key(&mut cert.key_pem.as_slice())?.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no private key found for this certificate",
                cert.cert_path.display()
            )
        })?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| anyhow::anyhow!("{}: unusable private key: {e}", cert.cert_path.display()))?;
        let certified = Arc::new(CertifiedKey::new(chain, signing));
        certified
            .keys_match()
            .map_err(|e| anyhow::anyhow!("{}: key does not match certificate: {e}", cert.cert_path.display()))?;
        default.get_or_insert_with(|| certified.clone());
        for name in &cert.server_names {
            match name.strip_prefix('*') {
                Some(suffix) => wildcard.push((suffix.to_string(), certified.clone())),
                None => {
                    exact.insert(name.clone(), certified.clone());
                }
            }
        }
    }
    let default = default.ok_or_else(|| anyhow::anyhow!("a TLS listener needs at least one certificate"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            exact,
            wildcard,
            default,
        }));
    config.alpn_protocols = if settings.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}
