//! HTTPS for the endpoint (`metrics.tls_cert`, `metrics.tls_key`), as the
//! Prometheus exporter-toolkit serves it: the certificate and key are read
//! again when either file changes (checked at each handshake), so a renewed
//! certificate is served without restarting Janus. A pair that cannot be
//! used (a key written before its certificate, a bad file) leaves the last
//! good pair in service, said in the log and in `info.warnings`.

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Shared;
use crate::config::exporter::TlsFiles;
use crate::log::RateLimit;
use crate::sync::lock;

/// What identifies a version of a file: its size, change time and inode.
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

/// The certificate in service, read again when its files change.
struct Reloading {
    files: TlsFiles,
    current: Mutex<((Stamp, Stamp), Arc<CertifiedKey>)>,
    shared: Arc<Shared>,
    errors: Mutex<RateLimit>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let now = (stamp(&self.files.cert), stamp(&self.files.key));
        let mut current = lock(&self.current);
        if current.0 != now {
            match self.files.load() {
                Ok(key) => {
                    *current = (now, key);
                    *lock(&self.shared.tls_problem) = None;
                    crate::jlog!(
                        Info,
                        "metrics: read {} and {} again (changed)",
                        self.files.cert.display(),
                        self.files.key.display()
                    );
                }
                // Tried again at the next handshake: the other file of a
                // renewal may not be written yet.
                Err(e) => {
                    let why = format!(
                        "metrics.{}: {}; still serving the certificate read before",
                        e.key, e.problem
                    );
                    if let Some(more) = lock(&self.errors).allow() {
                        crate::jlog!(Warn, "metrics: {why} ({more} more since the last report)");
                    }
                    *lock(&self.shared.tls_problem) = Some(why);
                }
            }
        }
        Some(current.1.clone())
    }
}

/// A TLS server config serving `files` (HTTP/1.1 only), or why not.
pub fn server_config(files: &TlsFiles, shared: Arc<Shared>) -> Result<Arc<ServerConfig>, String> {
    let stamps = (stamp(&files.cert), stamp(&files.key));
    let key = files
        .load()
        .map_err(|e| format!("metrics.{}: {}", e.key, e.problem))?;
    let resolver = Reloading {
        files: files.clone(),
        current: Mutex::new((stamps, key)),
        shared,
        errors: Mutex::new(RateLimit::new(Duration::from_secs(60))),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
