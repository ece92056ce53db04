//! The `metrics` category: the Prometheus endpoint served from inside Janus.
//!
//! Self-contained (its own key reading), so that it stays one match arm in
//! [`super::Config::parse`].

use std::net::SocketAddr;
use std::path::Path;

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
    Ok(MetricsConfig {
        enabled,
        listen,
        path,
        user,
        password,
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
        ] {
            let e = read(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }
}
