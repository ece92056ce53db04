//! The `metrics` category: the settings of the Prometheus endpoint served
//! from inside Janus (`crate::exporter`). The types keep the category's
//! name, as the other categories' do (`FileConfig` for `file`).
//!
//! Self-contained (its own key reading), so that it stays one match arm in
//! [`super::Config::parse`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::ConfigError;
use super::jcfg::{Setting, Value};
use super::keys::{self, Default as KeyDefault};

/// A default of the table of keys (`super::keys::METRICS`).
fn default_of(name: &str) -> Option<&'static str> {
    match keys::find(keys::METRICS, name).map(|k| k.default) {
        Some(KeyDefault::Is(v)) => Some(v),
        _ => None,
    }
}

/// `metrics` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Where the endpoint listens (loopback by default).
    pub listen: SocketAddr,
    /// The path of the exposition, e.g. `/metrics`.
    pub path: String,
    /// Basic authentication: both set, or neither.
    pub user: Option<String>,
    pub password: Option<String>,
    /// HTTPS instead of plain HTTP (`tls_cert` and `tls_key`).
    pub tls: Option<TlsFiles>,
}

impl MetricsConfig {
    /// Why `listen` exposes the metrics beyond this host to anyone, if it
    /// does: an address other than loopback (`0.0.0.0`, `[::]`, an
    /// interface's) and no `user`/`password`.
    pub fn exposure_warning(&self) -> Option<String> {
        let ip = self.listen.ip().to_canonical();
        if ip.is_loopback() || self.user.is_some() {
            return None;
        }
        let reach = if ip.is_unspecified() {
            "every interface"
        } else {
            "a non-loopback address"
        };
        Some(format!(
            "metrics.listen = {} is {reach} and metrics.user and metrics.password are not set: anyone who can reach this port reads the metrics (set user and password, with tls_cert and tls_key off this host, or listen on 127.0.0.1)",
            self.listen
        ))
    }
}

/// The endpoint's certificate chain and private key, PEM files as the
/// Prometheus exporter-toolkit takes them (`cert_file`, `key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate or key file cannot be used: the key (`tls_cert` or
/// `tls_key`) and the problem, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFileError {
    pub key: &'static str,
    pub problem: String,
}

impl TlsFiles {
    /// Reads both files: the first is a chain of one or more certificates
    /// (the server's first), the second its private key (PKCS#8, PKCS#1 or
    /// SEC1), which must belong to the first certificate.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsFileError> {
        let cert_error = |problem: String| TlsFileError {
            key: "tls_cert",
            problem,
        };
        let key_error = |problem: String| TlsFileError {
            key: "tls_key",
            problem,
        };
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| cert_error(pem_problem(&self.cert, e)))?;
        if chain.is_empty() {
            return Err(cert_error(format!(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in {}",
                self.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| match e {
            pem::Error::NoItemsFound => key_error(format!(
                "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY) in {}",
                self.key.display()
            )),
            e => key_error(pem_problem(&self.key, e)),
        })?;
        let signing = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| {
                key_error(format!(
                    "the private key in {} cannot be used: {e}",
                    self.key.display()
                ))
            })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(key_error(format!(
                    "the private key in {} does not belong to the certificate in {}",
                    self.key.display(),
                    self.cert.display()
                )))
            }
            // Ok, or a key whose public half cannot be compared: rustls
            // then finds out at the first handshake.
            _ => Ok(Arc::new(certified)),
        }
    }
}

fn pem_problem(file: &Path, e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read {}: {e}", file.display()),
        e => format!("{} is not a usable PEM file: {e:?}", file.display()),
    }
}

impl Default for MetricsConfig {
    /// The defaults of the table of keys.
    fn default() -> Self {
        MetricsConfig {
            enabled: default_of("enabled") == Some("true"),
            listen: default_of("listen")
                .and_then(|a| a.parse().ok())
                .expect("the table's default listen address parses"),
            path: default_of("path").unwrap_or("/metrics").into(),
            user: default_of("user").map(String::from),
            password: default_of("password").map(String::from),
            tls: None,
        }
    }
}

/// Reads the `metrics` category of `file`.
pub fn read_metrics(file: &Path, items: &[Setting]) -> Result<MetricsConfig, ConfigError> {
    let error = |key: &str, problem: String| ConfigError {
        file: file.to_path_buf(),
        key: format!("metrics.{key}"),
        problem,
    };
    if let Some(s) = items
        .iter()
        .find(|s| keys::find(keys::METRICS, &s.name).is_none())
    {
        return Err(error(&s.name, format!("unknown key (line {})", s.line)));
    }
    let get = |key: &str| items.iter().find(|s| s.name == key);
    let string = |key: &str| -> Result<Option<String>, ConfigError> {
        match get(key) {
            None => Ok(None),
            Some(Setting {
                value: Value::Str(t),
                ..
            }) => Ok(Some(t.clone())),
            Some(s) => Err(error(
                key,
                format!(
                    "expected a quoted string, found a {} (line {})",
                    s.value.type_name(),
                    s.line
                ),
            )),
        }
    };
    let d = MetricsConfig::default();
    let enabled = match get("enabled") {
        None => d.enabled,
        Some(s) => match s.value.as_text().map(|t| t.to_ascii_lowercase()).as_deref() {
            Some("true" | "yes" | "1") => true,
            Some("false" | "no" | "0") => false,
            _ => {
                return Err(error(
                    "enabled",
                    format!("expected true or false (line {})", s.line),
                ));
            }
        },
    };
    let listen = match string("listen")? {
        None => d.listen,
        Some(t) => t.trim().parse::<SocketAddr>().map_err(|_| {
            error(
                "listen",
                format!(
                    "expected an IP address and a port, like 127.0.0.1:7090, [::1]:7090 or 0.0.0.0:7090; found {t:?}"
                ),
            )
        })?,
    };
    let path = match string("path")? {
        None => d.path,
        Some(p)
            if p.starts_with('/')
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') =>
        {
            p
        }
        Some(p) => {
            return Err(error(
                "path",
                format!("expected a path starting with / (no spaces, ? or #), found {p:?}"),
            ));
        }
    };
    let user = string("user")?;
    let password = string("password")?;
    match (&user, &password) {
        (Some(u), _) if u.is_empty() || u.contains(':') => {
            return Err(error("user", "must not be empty or contain ':'".into()));
        }
        (_, Some(p)) if p.is_empty() => {
            return Err(error("password", "must not be empty".into()));
        }
        (Some(_), None) => {
            return Err(error(
                "password",
                "missing: user and password go together".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(error(
                "user",
                "missing: user and password go together".into(),
            ));
        }
        _ => {}
    }
    let path_of = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match string(key)? {
            Some(p) if p.is_empty() => Err(error(key, "expected a path, found \"\"".into())),
            p => Ok(p.map(PathBuf::from)),
        }
    };
    let tls = match (path_of("tls_cert")?, path_of("tls_key")?) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(error(
                "tls_key",
                "missing: tls_cert and tls_key go together".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(error(
                "tls_cert",
                "missing: tls_cert and tls_key go together".into(),
            ));
        }
        (Some(cert), Some(key)) => {
            let files = TlsFiles { cert, key };
            // Read now, so that a bad file is a config error; the endpoint
            // reads them again when it starts, and whenever they change.
            files.load().map_err(|e| error(e.key, e.problem))?;
            Some(files)
        }
    };
    Ok(MetricsConfig {
        enabled,
        listen,
        path,
        user,
        password,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<MetricsConfig, ConfigError> {
        let doc = super::super::jcfg::parse(&format!("metrics: {{ {text} }}")).unwrap();
        read_metrics(Path::new("/x.jcfg"), doc.category("metrics").unwrap())
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(read("").unwrap(), MetricsConfig::default());
        assert_eq!(
            MetricsConfig::default().listen.to_string(),
            "127.0.0.1:7090"
        );
        let c = read(
            r#"enabled = true, listen = "[::]:9999", path = "/x/metrics", user = "prom", password = "p:w""#,
        )
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.listen.to_string(), "[::]:9999");
        assert_eq!(c.path, "/x/metrics");
        assert_eq!(c.user.as_deref(), Some("prom"));
        assert_eq!(c.password.as_deref(), Some("p:w"));
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (text, key) in [
            ("listen = \"localhost:7090\"", "metrics.listen"),
            ("listen = \"127.0.0.1\"", "metrics.listen"),
            ("listen = 7090", "metrics.listen"),
            ("path = \"metrics\"", "metrics.path"),
            ("path = \"/a b\"", "metrics.path"),
            ("user = \"a:b\", password = \"x\"", "metrics.user"),
            ("user = \"a\"", "metrics.password"),
            ("password = \"x\"", "metrics.user"),
            ("password = \"\", user = \"a\"", "metrics.password"),
            ("enabled = \"maybe\"", "metrics.enabled"),
            ("port = 1", "metrics.port"),
            ("tls_cert = \"/x.pem\"", "metrics.tls_key"),
            ("tls_key = \"/x.pem\"", "metrics.tls_cert"),
            ("tls_cert = \"\", tls_key = \"/x.pem\"", "metrics.tls_cert"),
        ] {
            let e = read(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    /// A certificate for 127.0.0.1 and its key, as PEM.
    fn certificate() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn tls_files_are_read_as_the_config_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let (cert, key) = certificate();
        let (_, other_key) = certificate();
        let cert_file = file("cert.pem", &cert);
        let key_file = file("key.pem", &key);
        let pair = |c: &str, k: &str| read(&format!("tls_cert = \"{c}\", tls_key = \"{k}\""));
        let c = pair(&cert_file, &key_file).unwrap();
        let files = c.tls.unwrap();
        assert_eq!(files.cert.display().to_string(), cert_file);
        assert_eq!(files.key.display().to_string(), key_file);
        assert_eq!(files.load().unwrap().cert.len(), 1);
        // Each bad file is named with its key.
        let missing = dir.path().join("missing.pem").display().to_string();
        for (c, k, key, says) in [
            (
                missing.as_str(),
                key_file.as_str(),
                "metrics.tls_cert",
                "cannot read",
            ),
            (
                cert_file.as_str(),
                missing.as_str(),
                "metrics.tls_key",
                "cannot read",
            ),
            (
                key_file.as_str(),
                key_file.as_str(),
                "metrics.tls_cert",
                "no PEM certificate",
            ),
            (
                cert_file.as_str(),
                cert_file.as_str(),
                "metrics.tls_key",
                "no PEM private key",
            ),
            (
                cert_file.as_str(),
                &file("other.pem", &other_key),
                "metrics.tls_key",
                "does not belong to the certificate",
            ),
            (
                &file("junk.pem", "junk"),
                key_file.as_str(),
                "metrics.tls_cert",
                "no PEM certificate",
            ),
        ] {
            let e = pair(c, k).expect_err(says);
            assert_eq!(e.key, key, "{e}");
            assert!(e.problem.contains(says), "{e}");
            let named = if key == "metrics.tls_cert" { c } else { k };
            assert!(e.problem.contains(named), "{e}");
            assert!(e.to_string().starts_with("/x.jcfg: "), "{e}");
        }
    }

    #[test]
    fn an_open_listen_without_credentials_is_a_warning() {
        let warning = |listen: &str, user: bool| {
            MetricsConfig {
                listen: listen.parse().unwrap(),
                user: user.then(|| "u".into()),
                password: user.then(|| "p".into()),
                ..MetricsConfig::default()
            }
            .exposure_warning()
        };
        for open in ["0.0.0.0:7090", "[::]:7090"] {
            let w = warning(open, false).expect(open);
            assert!(
                w.contains(&format!("metrics.listen = {open} is every interface")),
                "{w}"
            );
            assert_eq!(warning(open, true), None);
        }
        let w = warning("192.0.2.7:7090", false).unwrap();
        assert!(w.contains("is a non-loopback address"), "{w}");
        for closed in [
            "127.0.0.1:7090",
            "127.0.0.2:7090",
            "[::1]:7090",
            "[::ffff:127.0.0.1]:7090",
        ] {
            assert_eq!(warning(closed, false), None, "{closed}");
        }
    }
}
