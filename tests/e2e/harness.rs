//! Real parts for end-to-end tests: a tansu broker in its own process on a loopback port, the
//! real `sluice` binary, and a real Kafka consumer (rdkafka's `StreamConsumer`). Every wait is
//! bounded, and every process is killed when its handle drops.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;
use sluice::send::HttpClient;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the tansu binary is: `$SLUICEDEV_TANSU`, `tansu` on the PATH, or cargo's bin folder.
fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICEDEV_TANSU") {
        return PathBuf::from(p);
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    candidates
        .into_iter()
        .chain(cargo_home.map(|c| c.join("bin/tansu")))
        .find(|p| p.is_file())
        .expect(
            "the tansu broker is not installed: run scripts/install-tools.sh (or set SLUICEDEV_TANSU)",
        )
}

/// A tansu broker with in-memory storage, in its own process.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_advertising(None)
    }

    /// A broker that gives clients `advertised` (`host:port`, a proxy in front of it) as its
    /// address, or its own when `None`.
    pub fn start_advertising(advertised: Option<&str>) -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        let mut child = Command::new(tansu_binary())
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        wait_for_port(([127, 0, 0, 1], port).into(), &mut child, "tansu");
        Broker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        }
    }
}

impl Broker {
    /// Sends `signal` to the broker (`STOP`: it holds every connection and answers nothing,
    /// as a hung or partitioned broker does, and keeps its data for `CONT`).
    pub fn signal(&self, signal: &str) {
        signal_pid(self.child.id(), signal);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `sluice serve`, with a config written for the test.
pub struct Sluice {
    child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sluice-e2e-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Sluice {
    /// Starts sluice with `config` (TOML; `server.listen` and `kafka.brokers` are set here) and
    /// waits until it answers `/readyz`.
    pub fn start(tag: &str, brokers: &str, config: &str) -> Sluice {
        Sluice::start_with_env(tag, brokers, config, &[])
    }

    /// [`Sluice::start`] with extra environment variables.
    pub fn start_with_env(tag: &str, brokers: &str, config: &str, env: &[(&str, &str)]) -> Sluice {
        let dir = TempDir::new(tag);
        let path = dir.0.join("sluice.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.0.join("sluice.log");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_KAFKA_BROKERS", brokers)
            .env("SLUICE_LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for_port(addr, &mut child, "sluice");
        Sluice {
            child: Some(child),
            url: format!("http://{addr}"),
            log,
            _dir: dir,
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, nothing flushed (a crash or an OOM kill).
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The config file it was started with (rewrite it, then SIGHUP, to reload).
    pub fn config_path(&self) -> PathBuf {
        self._dir.0.join("sluice.toml")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        signal_pid(child.id(), signal);
    }
}

/// Sends `signal` (`STOP`, `CONT`, ...) to process `pid`.
pub fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as a consumer saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub partition: i32,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

fn decode(msg: &impl Message) -> Received {
    Received {
        key: String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned(),
        partition: msg.partition(),
        headers: msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        body: {
            let body = serde_json::from_slice(msg.payload().unwrap_or_default())
                .expect("message body is JSON");
            crate::schema::check_message(&body);
            body
        },
    }
}

/// A consumer-group member reading `topic` from the beginning.
pub struct Reader {
    consumer: StreamConsumer,
    /// Every message but the instances' liveness records.
    pub seen: Vec<Received>,
    /// The liveness records (`sluice.liveness.v1`), set aside as a consumer of incidents does.
    pub liveness: Vec<Received>,
}

impl Reader {
    pub fn new(brokers: &str, topic: &str) -> Reader {
        Reader::with_settings(brokers, topic, &[])
    }

    /// A reader with more librdkafka `settings` (TLS, SASL).
    pub fn with_settings(brokers: &str, topic: &str, settings: &[(&str, &str)]) -> Reader {
        let mut config = ClientConfig::new();
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let consumer: StreamConsumer = config
            .set("bootstrap.servers", brokers)
            .set(
                "group.id",
                format!("e2e-{}-{}", std::process::id(), free_port()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Reader {
            consumer,
            seen: Vec::new(),
            liveness: Vec::new(),
        }
    }

    fn take(&mut self, received: Received) {
        match received.body["schema"] == "sluice.liveness.v1" {
            true => self.liveness.push(received),
            false => self.seen.push(received),
        }
    }

    /// Reads until `done(&seen)` holds, or panics after [`WAIT`].
    pub async fn until(&mut self, what: &str, done: impl Fn(&[Received]) -> bool) {
        self.until_or(what, done, WAIT, String::new).await
    }

    /// [`Reader::until`] within `within`, with `context()` (a log, say) in the panic message.
    pub async fn until_or(
        &mut self,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
        within: Duration,
        context: impl Fn() -> String,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.seen) {
            let msg = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {what}; saw {:#?}\n{}",
                        self.seen,
                        context()
                    )
                });
            match msg {
                Ok(msg) => self.take(decode(&msg)),
                // A broker that was away reports transport errors before it delivers again.
                Err(e) => {
                    eprintln!("reader: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Reads for `quiet` more and returns whatever else arrived (to prove nothing extra came).
    pub async fn extra_within(&mut self, quiet: Duration) -> usize {
        let before = self.seen.len();
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(msg) = tokio::time::timeout_at(deadline, self.consumer.recv()).await {
            match msg {
                Ok(msg) => self.take(decode(&msg)),
                Err(e) => eprintln!("reader: {e}"),
            }
        }
        self.seen.len() - before
    }
}

/// The messages of each incident, in the order consumed.
pub fn by_incident(seen: &[Received]) -> BTreeMap<String, Vec<Received>> {
    let mut map: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for m in seen {
        map.entry(m.key.clone()).or_default().push(m.clone());
    }
    map
}

/// POSTs `body` to `url` + `path` on a fresh connection, with extra headers (a `Content-Type`
/// among them replaces `application/json`); returns the status and the body as JSON (as a JSON
/// string when it is not JSON).
pub async fn post(
    url: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> (u16, Value) {
    let mut client = HttpClient::connect(url).await.unwrap();
    let reply = client
        .request_with(Method::POST, path, headers, body)
        .await
        .unwrap();
    let value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply.body).into_owned()));
    (reply.status.as_u16(), value)
}

/// Posts `body` to `path` over `client` and asserts the answer's status (showing the answer
/// when it differs).
pub async fn post_expect(
    client: &mut HttpClient,
    path: &str,
    body: impl Into<bytes::Bytes>,
    status: u16,
) -> sluice::send::Reply {
    let reply = client.post(path, body).await.unwrap();
    assert_eq!(
        reply.status,
        status,
        "POST {path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// sluice in this process, bound on a free loopback port, and a client connected to it.
pub async fn in_process(
    config: sluice::config::Config,
) -> (sluice::app::Running, sluice::send::HttpClient) {
    let running = sluice::app::start(config, sluice::clock::Clock::system())
        .await
        .expect("sluice starts");
    let client = sluice::send::HttpClient::connect(&format!("http://{}", running.addr()))
        .await
        .expect("sluice accepts a connection");
    (running, client)
}

/// A config on port 0 with the embedded broker (one partition), plus `extra` TOML (rules,
/// integrations; not `[server]` or `[kafka]`).
pub fn embedded_config(extra: &str) -> sluice::config::Config {
    let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbrokers = \"embedded\"\npartitions = 1\n{extra}");
    sluice::config::Config::from_toml(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// POSTs one PagerDuty v2 event for routing key `svc-payments` (summary `<key> failing on
/// <source>`, critical) and checks the 202; returns the answer's JSON.
pub async fn pd_post(
    client: &mut sluice::send::HttpClient,
    action: &str,
    key: &str,
    source: &str,
) -> Value {
    pd_post_to(client, "svc-payments", action, key, source).await
}

/// [`pd_post`] for `routing_key`.
pub async fn pd_post_to(
    client: &mut sluice::send::HttpClient,
    routing_key: &str,
    action: &str,
    key: &str,
    source: &str,
) -> Value {
    let body = sluice::send::pd_event(
        routing_key,
        action,
        key,
        source,
        "critical",
        &format!("{key} failing on {source}"),
    );
    let reply = client.post("/v2/enqueue", body).await.unwrap();
    assert_eq!(
        reply.status,
        202,
        "{action} {key}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// Each message's `(type, seq)`.
pub fn types(msgs: &[Received]) -> Vec<(String, u64)> {
    msgs.iter()
        .map(|m| {
            (
                m.body["type"].as_str().unwrap().to_string(),
                m.body["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The value of the sample `name_and_labels` (`sluice_x_total{k="v"}`, as exposed) on `url`'s
/// `/metrics`; 0 when it is not there yet.
pub async fn metric(url: &str, name_and_labels: &str) -> f64 {
    let mut client = HttpClient::connect(url).await.unwrap();
    let body = client.get("/metrics").await.unwrap().body;
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.strip_prefix(name_and_labels))
        .find_map(|rest| rest.strip_prefix(' ').and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Waits up to `within` for `name_and_labels` on `url` to reach `at_least`.
pub async fn wait_for_metric(url: &str, name_and_labels: &str, at_least: f64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = metric(url, name_and_labels).await;
        if value >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name_and_labels} is {value} after {within:?}, not {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The time `after` from now in RFC 3339 (a silence's `ends_at`).
pub fn from_now(after: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    sluice::time::UnixMillis((now + after).as_millis() as u64).to_string()
}

/// librdkafka's mock cluster of `brokers` brokers with `topics` (name, partitions) created (it
/// does not implement CreateTopics), and its bootstrap servers.
pub fn mock_cluster(
    brokers: i32,
    topics: &[(&str, i32)],
) -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = rdkafka::mocking::MockCluster::new(brokers).unwrap();
    // The mock cluster does not create topics through the admin API: the commands topic every
    // sluice reads is made here, as the embedded broker makes it.
    let commands = [(sluice::config::defaults::COMMANDS_TOPIC, 1)];
    for (topic, partitions) in topics.iter().chain(&commands) {
        cluster.create_topic(topic, *partitions, brokers).unwrap();
    }
    let bootstrap = cluster.bootstrap_servers();
    (cluster, bootstrap)
}

/// A metric of this process's recorder (the in-process sluice instances of a test binary share
/// it: compare before and after, not absolute values).
pub fn process_metric(name_and_labels: &str) -> f64 {
    sluice::metrics::install()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Where Alertmanager is: `$SLUICEDEV_ALERTMANAGER`, or `alertmanager` / `prometheus-alertmanager`
/// (Debian's name) on the PATH.
pub fn alertmanager_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICEDEV_ALERTMANAGER") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .flat_map(|d| [d.join("alertmanager"), d.join("prometheus-alertmanager")])
        .find(|p| p.is_file())
        .expect(
            "Prometheus Alertmanager is not installed: run scripts/install-tools.sh (it runs \
             `apt-get install prometheus-alertmanager` on Debian/Ubuntu), or put `alertmanager` \
             on the PATH or set SLUICEDEV_ALERTMANAGER to its path",
        )
}

/// A real Alertmanager on loopback ports, gossip off, state in a temp dir; killed on drop.
pub struct Alertmanager {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl Alertmanager {
    /// One route grouped by `alertname`, 1 s waits, posting to `webhook_url` (resolves too).
    pub async fn start(webhook_url: &str) -> Alertmanager {
        Alertmanager::start_with(
            &format!(
                r#"
route:
  receiver: sluice
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sluice
    webhook_configs:
      - url: "{webhook_url}"
        send_resolved: true
"#
            ),
            &[],
        )
        .await
    }

    /// Alertmanager with `config` (its YAML) and `extra_args` (flags such as
    /// `--alerts.gc-interval=30s`).
    pub async fn start_with(config: &str, extra_args: &[String]) -> Alertmanager {
        let dir = TempDir::new("alertmanager");
        let config_file = dir.0.join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let child = Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("alertmanager.log")).unwrap())
            .spawn()
            .expect("alertmanager starts");
        let mut am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("alertmanager exited early with {status}: {}", self.log());
            }
            if let Ok(mut c) = HttpClient::connect(&self.url).await {
                if c.get("/-/ready").await.is_ok_and(|r| r.status == 200) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alertmanager was not ready within {WAIT:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `amtool` on the PATH (Debian's `prometheus-alertmanager` package has it) against
/// `url`, without its version check: whether it succeeded, its output and its errors.
pub fn amtool(
    url: &str,
    http_config: Option<&std::path::Path>,
    args: &[&str],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new("amtool");
    cmd.arg(format!("--alertmanager.url={url}"))
        .arg("--no-version-check")
        .arg("--timeout=10s");
    if let Some(file) = http_config {
        cmd.arg(format!("--http.config.file={}", file.display()));
    }
    let out = cmd
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("amtool runs: install Debian's prometheus-alertmanager package");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `POST /-/reload` on `client`, which must answer 200; its answer.
pub async fn reload(client: &mut HttpClient) -> Value {
    let reply = client.post("/-/reload", Vec::new()).await.unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}
