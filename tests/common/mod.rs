//! Test support: starts the AWS emulator harness and the real exporter
//! binary, scrapes it over HTTP and reads the exposition.
//!
//! The harness runs with the Python found in `IAM_EXPORTER_TEST_PYTHON`, or
//! else the project's `.venv` that `scripts/test.sh` creates.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything in a test may take to become true.
pub const PATIENCE: Duration = Duration::from_secs(60);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("iam-exporter-it-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("IAM_EXPORTER_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the AWS emulator: run scripts/test.sh (it creates .venv) \
         or set IAM_EXPORTER_TEST_PYTHON"
    );
    venv
}

/// Reads lines of a child's output on a thread, so waits can time out.
fn line_reader(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The AWS emulator (moto plus what it lacks), on a free loopback port.
pub struct Harness {
    child: Child,
    /// Kept open: the harness exits when its standard input closes.
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: PathBuf,
}

impl Harness {
    /// Starts the harness with a scenario written in YAML.
    pub fn start(scenario_yaml: &str) -> Self {
        let dir = temp_dir("harness");
        let scenario = dir.join("scenario.yaml");
        std::fs::write(&scenario, scenario_yaml).expect("write scenario");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/harness/emulator.py"))
            .arg("--scenario")
            .arg(&scenario)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the AWS emulator harness");
        let stdin = child.stdin.take().expect("harness stdin");
        let lines = line_reader(child.stdout.take().expect("harness stdout"));
        let ready = lines
            .recv_timeout(PATIENCE)
            .expect("the harness did not print its READY line in time");
        let url = ready
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected first harness line: {ready}"))
            .trim()
            .to_owned();
        Self {
            child,
            _stdin: stdin,
            url,
            dir,
        }
    }

    /// Replaces the emulated account's state with a new scenario.
    pub fn apply(&self, scenario_yaml: &str) {
        let json = yaml_to_json(scenario_yaml);
        let (status, body) = http("PUT", &self.url, "/_harness/scenario", Some(&json));
        assert_eq!(status, 200, "applying a scenario failed: {body}");
    }

    /// AWS calls received so far, by `service:Operation`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let (status, body) = http("GET", &self.url, "/_harness/calls", None);
        assert_eq!(status, 200, "{body}");
        parse_flat_json_counts(&body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Converts a scenario to JSON with the harness's own Python, so tests can
/// write scenarios in YAML like the files under `tests/scenarios/`.
fn yaml_to_json(yaml: &str) -> String {
    let mut child = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write yaml");
    let output = child.wait_with_output().expect("python output");
    assert!(output.status.success(), "scenario is not valid YAML");
    String::from_utf8(output.stdout).expect("utf-8")
}

fn parse_flat_json_counts(body: &str) -> BTreeMap<String, u64> {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("calls are not JSON ({e}): {body}"))
}

/// The exporter binary, running against a harness.
pub struct Exporter {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

/// A free loopback port (the listener is closed again before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Environment for the exporter that points every AWS client at `url`.
pub fn emulator_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

impl Exporter {
    /// Starts the exporter against `harness` with extra flags, and waits
    /// until its first refresh finished.
    pub fn start(harness: &Harness, args: &[&str]) -> Self {
        let exporter = Self::spawn(&emulator_env(&harness.url), args);
        exporter.wait_ready();
        exporter
    }

    /// Starts the exporter with exactly `env` (nothing inherited but PATH).
    pub fn spawn(env: &[(&str, String)], args: &[&str]) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let home = temp_dir("home");
        // Empty AWS config files: nothing from the machine's own ~/.aws leaks in.
        std::fs::write(home.join("config"), "").expect("write AWS config");
        std::fs::write(home.join("credentials"), "").expect("write AWS credentials");
        let mut command = Command::new(env!("CARGO_BIN_EXE_iam-credentials-exporter"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .arg(format!("--web.listen-address={address}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the exporter binary");
        let stderr = line_reader(child.stderr.take().expect("stderr"));
        Self {
            child,
            address,
            stderr,
            log: Vec::new(),
        }
    }

    /// Waits until `/-/ready` answers 200.
    pub fn wait_ready(&self) {
        wait_until("the exporter to be ready", || {
            self.get("/-/ready")
                .is_some_and(|(status, _)| status == 200)
        });
    }

    /// A GET request to the exporter; `None` when it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        try_http("GET", &self.address, path, None, &[])
    }

    /// Scrapes `/metrics` in the classic text format.
    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics").expect("the exporter answers");
        assert_eq!(status, 200);
        Scrape::parse(&body)
    }

    /// The log lines written so far.
    pub fn log(&mut self) -> &[String] {
        while let Ok(line) = self.stderr.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`HUP`, `TERM`...) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds, or panics after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels, sorted.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed scrape in the classic text format.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The raw body.
    pub body: String,
    /// Every sample.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format (as far as this exporter uses it).
    pub fn parse(body: &str) -> Self {
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(parse_sample)
            .collect();
        Self {
            body: body.to_owned(),
            samples,
        }
    }

    /// Samples of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single value of `name` with `labels`; `None` when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(found.len() <= 1, "{name}{labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }

    /// Whether any series of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("sample has a value");
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
        None => (series, BTreeMap::new()),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value: value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}")),
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// A minimal HTTP/1.1 client: method, path, optional body; panics when the
/// server does not answer.
pub fn http(method: &str, base: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    try_http(method, address, path, body, &[])
        .unwrap_or_else(|| panic!("{method} {base}{path}: no answer"))
}

/// Like [`http`], with headers, and `None` when the server does not answer.
pub fn try_http(
    method: &str,
    address: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let (status, _, body) = try_http_bytes(method, address, path, body, headers)?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Like [`try_http`], returning the response head (lower-cased) and the raw body.
pub fn try_http_bytes(
    method: &str,
    address: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some((status, head, body))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let rest = &body[line_end + 2..];
        match size {
            Some(size) if size > 0 && rest.len() >= size => {
                out.extend_from_slice(&rest[..size]);
                body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
            }
            _ => break,
        }
    }
    out
}

/// Runs `promtool check metrics` on an exposition and returns its output
/// (promtool prints lint findings on stdout or stderr and exits 1 on any).
pub fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write exposition");
    let output = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}
