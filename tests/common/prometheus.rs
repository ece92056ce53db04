//! A real Prometheus server (Debian's `prometheus` package) for the metrics
//! tests: started on a free loopback port with its own config and storage
//! in a temporary folder, scraping the given targets every second (over
//! HTTPS when a job trusts a CA: see [`TestPki`]), queried through its HTTP
//! API. Killed (and its folder removed) on drop; its log is printed when a
//! test fails.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{free_port, wait_until};

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
const PROMTOOL_BIN: &str = "/usr/bin/promtool";

/// One scrape job: Prometheus's `job_name`, the target `host:port`, the
/// path, basic-auth credentials if any, and, for HTTPS, the CA it trusts.
#[derive(Debug, Clone, Default)]
pub struct ScrapeJob {
    pub job: String,
    pub target: String,
    pub path: String,
    pub basic_auth: Option<(String, String)>,
    /// `scheme: https`, trusting only this CA (PEM file).
    pub tls_ca: Option<PathBuf>,
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in a
/// temporary folder: what `metrics.tls_cert`/`tls_key` and a scraper's
/// `ca_file` take.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// A new CA called `name` and its certificate for 127.0.0.1.
    pub fn new(name: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let dir = tempfile::Builder::new().prefix("pki-").tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            fs::write(&path, pem).unwrap();
            path
        };
        TestPki {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The current time as Prometheus takes it in queries (Unix seconds).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every second; panics (with its
    /// log) if it is not ready within 60 s.
    pub fn start(jobs: &[ScrapeJob]) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS_BIN).exists(),
            "{PROMETHEUS_BIN} is missing (make deps installs Debian's prometheus package)"
        );
        let dir = tempfile::Builder::new()
            .prefix("prometheus-rig-")
            .tempdir()
            .unwrap();
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for j in jobs {
            config += &format!(
                "  - job_name: {}\n    metrics_path: {}\n    static_configs:\n      - targets: [\"{}\"]\n",
                j.job, j.path, j.target
            );
            if let Some(ca) = &j.tls_ca {
                config += &format!(
                    "    scheme: https\n    tls_config:\n      ca_file: {:?}\n",
                    ca.display().to_string()
                );
            }
            if let Some((user, password)) = &j.basic_auth {
                config += &format!(
                    "    basic_auth:\n      username: {user:?}\n      password: {password:?}\n"
                );
            }
        }
        let config_file = dir.path().join("prometheus.yml");
        fs::write(&config_file, &config).unwrap();
        let port = free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {PROMETHEUS_BIN}: {e}"));
        let p = Prometheus { child, port, dir };
        let ready = wait_until(
            || {
                ureq::get(&format!("{}/-/ready", p.url()))
                    .timeout(Duration::from_secs(1))
                    .call()
                    .is_ok()
            },
            Duration::from_secs(60),
        );
        assert!(ready, "Prometheus did not become ready:\n{}", p.log());
        p
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// An instant query at the current time; returns the result vector as
    /// (labels, value) pairs.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
        let url = format!("{}/api/v1/query", self.url());
        let reply: Value = ureq::get(&url)
            .query("query", promql)
            .query("time", &format!("{:.3}", unix_now()))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap_or_else(|e| panic!("query {promql}: {e}"))
            .into_string()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        assert_eq!(reply["status"], "success", "{promql}: {reply}");
        reply["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: {reply}"))
            .iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, v)
            })
            .collect()
    }

    /// The one value of `promql` (panics unless there is exactly one).
    pub fn value(&self, promql: &str) -> f64 {
        let r = self.query(promql);
        assert_eq!(r.len(), 1, "{promql}: {r:?}");
        r[0].1
    }

    /// Waits until Prometheus holds a sample of `series` scraped after
    /// `since` (Unix seconds): what a query answers then is what the
    /// target exposed at or after that time.
    pub fn wait_scraped_after(&self, series: &str, since: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(&format!("timestamp({series})"));
            if r.iter().any(|(_, ts)| *ts > since) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no sample of {series} scraped after {since} within {timeout:?}: {r:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("==== rig: prometheus.log\n{}==== end", self.log());
        }
    }
}

/// Runs `promtool check metrics` on an exposition; returns its verdict
/// (Ok, or its complaints).
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(PROMTOOL_BIN)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {PROMTOOL_BIN}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    }
}
