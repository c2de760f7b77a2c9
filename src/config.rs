//! Start-up configuration: read once from the environment, checked before anything binds.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::ingress::body::BodyLimits;

/// Prefix of the variables that are passed through to librdkafka verbatim.
pub const PRODUCER_PREFIX: &str = "KAFKA_PRODUCER_";

/// The environment as envy sees it; every field maps to the upper-cased variable name.
#[derive(Debug, Deserialize)]
struct Env {
    /// Tencent IM SDKAppID this relay accepts callbacks for (decimal digits).
    tim_sdk_app_id: String,
    /// Callback token from the IM console; when set, `Sign`/`RequestTime` are required.
    tim_callback_token: Option<String>,
    /// How far `RequestTime` may lie from the relay's clock, in seconds.
    #[serde(default = "default_skew")]
    tim_sign_max_skew_secs: u64,
    /// Address the HTTP server for callbacks binds.
    #[serde(default = "default_listen")]
    relay_listen: String,
    /// Address the operators' HTTP server binds: `/healthz`, `/readyz`, `/metrics`.
    #[serde(default = "default_admin_listen")]
    relay_admin_listen: String,
    /// `text` (default) or `json`: one JSON object per log line.
    #[serde(default = "default_log_format")]
    relay_log_format: String,
    /// How long, after SIGTERM/SIGINT, the relay keeps forwarding its spool to Kafka.
    #[serde(default = "default_drain")]
    relay_shutdown_drain_secs: u64,
    /// Path Tencent posts callbacks to.
    #[serde(default = "default_path")]
    relay_callback_path: String,
    /// Largest accepted callback body.
    #[serde(default = "default_body_limit")]
    relay_body_limit_bytes: usize,
    /// How long a callback waits for the broker's acknowledgement before it is answered FAIL.
    #[serde(default = "default_ack_timeout")]
    relay_ack_timeout_ms: u64,
    /// Kafka bootstrap servers, comma separated.
    #[serde(default = "default_bootstrap")]
    kafka_bootstrap_servers: String,
    /// Topic of the group state events (created, info changed, members, ...); empty: off.
    #[serde(default = "default_topic")]
    kafka_topic: String,
    /// Topic of the group message events (sent, recalled, read receipts, ...); empty: off.
    #[serde(default = "default_messages_topic")]
    kafka_messages_topic: String,
    /// Topic of every other after/notify callback, verbatim (`tim.webhook`); empty: off.
    #[serde(default = "default_other_topic")]
    kafka_other_topic: String,
    /// Where before-callbacks are forwarded for a decision; unset: answer allow at once.
    relay_decision_url: Option<String>,
    /// How long the decision service may take before the fallback answer is given.
    #[serde(default = "default_ack_timeout")]
    relay_decision_timeout_ms: u64,
    /// `allow` or `deny`: the answer when the decision service fails or is late.
    #[serde(default = "default_fallback")]
    relay_decision_fallback: String,
    /// Directory of the durable spool that holds events Kafka has not acknowledged yet.
    #[serde(default = "default_spool_dir")]
    relay_spool_dir: String,
    /// Largest size of the spool; when reached, callbacks are answered FAIL.
    #[serde(default = "default_spool_max")]
    relay_spool_max_bytes: u64,
    /// Most the spool's file may take on disk; unset: 2.5 times `RELAY_SPOOL_MAX_BYTES`.
    relay_spool_max_file_bytes: Option<u64>,
    /// Time a client has to send the request line and headers.
    #[serde(default = "default_5000")]
    relay_header_timeout_ms: u64,
    /// Time a client has to send the body once the headers are in.
    #[serde(default = "default_5000")]
    relay_body_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open.
    #[serde(default = "default_keep_alive")]
    relay_keep_alive_secs: u64,
    /// Most connections open at once (all workers together).
    #[serde(default = "default_max_connections")]
    relay_max_connections: usize,
    /// Most callbacks waiting on Kafka's acknowledgement at once; beyond it, 503 at once.
    #[serde(default = "default_max_pending")]
    relay_max_pending_publishes: usize,
    /// Most `UserDefinedDataList` entries in one callback.
    #[serde(default = "default_max_custom_fields")]
    relay_max_custom_fields: usize,
    /// Longest string accepted in a known field.
    #[serde(default = "default_max_field_bytes")]
    relay_max_field_bytes: usize,
    /// HTTP worker threads (default: one per CPU core).
    relay_workers: Option<usize>,
    /// Comma-separated CIDRs allowed to post callbacks (default: anyone).
    relay_allowed_cidrs: Option<String>,
    /// Comma-separated CIDRs of proxies whose client-address header is believed.
    relay_trusted_proxy_cidrs: Option<String>,
    /// Header carrying the client address from a trusted proxy.
    relay_client_ip_header: Option<String>,
    /// PEM certificate chain; with the key, the relay serves HTTPS itself.
    relay_tls_cert_path: Option<String>,
    /// PEM private key for `RELAY_TLS_CERT_PATH`.
    relay_tls_key_path: Option<String>,
    /// The other replicas' admin listeners, `host:port`, comma separated (a name may resolve to
    /// several addresses, e.g. a headless Service): their older spooled events go to Kafka first.
    relay_peers: Option<String>,
    /// How long a peer's spool may stand still, while Kafka takes this relay's records, before
    /// it is no longer waited for.
    #[serde(default = "default_peer_max_wait")]
    relay_peer_max_wait_ms: u64,
}

fn default_peer_max_wait() -> u64 {
    10_000
}
fn default_skew() -> u64 {
    60
}
fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_admin_listen() -> String {
    "0.0.0.0:9090".into()
}
fn default_log_format() -> String {
    "text".into()
}
fn default_drain() -> u64 {
    20
}
fn default_path() -> String {
    "/callback".into()
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_ack_timeout() -> u64 {
    1500
}
fn default_bootstrap() -> String {
    "127.0.0.1:9092".into()
}
fn default_topic() -> String {
    "tim.group-changes".into()
}
fn default_messages_topic() -> String {
    "tim.group-messages".into()
}
fn default_other_topic() -> String {
    "tim.webhooks".into()
}
fn default_fallback() -> String {
    "allow".into()
}
fn default_5000() -> u64 {
    5000
}
fn default_keep_alive() -> u64 {
    60
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_pending() -> usize {
    512
}
fn default_max_custom_fields() -> usize {
    BodyLimits::default().max_custom_fields
}
fn default_max_field_bytes() -> usize {
    BodyLimits::default().max_field_bytes
}
fn default_spool_dir() -> String {
    "spool".into()
}
fn default_spool_max() -> u64 {
    1 << 30
}

/// The validated configuration the application is built from.
#[derive(Clone)]
pub struct Config {
    pub sdk_app_id: String,
    pub callback_token: Option<String>,
    pub sign_max_skew: Duration,
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served, apart from the callbacks.
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    /// After SIGTERM/SIGINT: how long the spool is still forwarded before the relay exits.
    pub shutdown_drain: Duration,
    pub callback_path: String,
    pub body_limit_bytes: usize,
    pub ack_timeout: Duration,
    pub bootstrap_servers: String,
    /// `KAFKA_TOPIC`: the group state events; empty when that class is switched off.
    pub topic: String,
    /// `KAFKA_MESSAGES_TOPIC`: the group message events; empty when switched off.
    pub messages_topic: String,
    /// `KAFKA_OTHER_TOPIC`: every other after/notify callback; empty when switched off.
    pub other_topic: String,
    /// Before-callbacks: where decisions come from, and what to answer without one.
    pub decision: Decision,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// `RELAY_SPOOL_MAX_FILE_BYTES`: the spool's file never grows past it.
    pub spool_max_file_bytes: u64,
    /// librdkafka properties from `KAFKA_PRODUCER_*`, keyed by property name.
    pub producer_properties: BTreeMap<String, String>,
    pub limits: Limits,
    pub workers: Option<usize>,
    pub access: AccessRules,
    pub tls: Option<TlsPaths>,
    /// `RELAY_PEERS`: `host:port` of the other replicas' admin listeners; empty: no waiting.
    pub peers: Vec<String>,
    pub peer_max_wait: Duration,
}

/// Resource bounds for hostile or broken clients.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
    pub max_pending_publishes: usize,
    pub body: BodyLimits,
}

/// Who may post callbacks.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    /// Empty: everyone.
    pub allowed: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip_header: String,
}

/// How before-callbacks are answered.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `RELAY_DECISION_URL`; `None`: every before-callback is answered allow at once.
    pub url: Option<String>,
    pub timeout: Duration,
    /// The answer when the decision service fails or is late: true = allow.
    pub fallback_allow: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message`.
    Json,
}

#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A start-up configuration problem; its message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads configuration from the given variables (tests pass their own).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let env: Env = envy::from_iter(vars.iter().cloned()).map_err(envy_error)?;
        let producer_properties = vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(PRODUCER_PREFIX)?;
                Some((name.to_ascii_lowercase().replace('_', "."), v.clone()))
            })
            .collect();
        Self::validate(env, producer_properties)
    }

    fn validate(env: Env, producer_properties: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let app_id = env.tim_sdk_app_id.trim().to_string();
        if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new("TIM_SDK_APP_ID", "must be the decimal SDKAppID"));
        }
        let token = env.tim_callback_token.filter(|t| !t.is_empty());
        let listen = env.relay_listen.parse().map_err(|_| {
            ConfigError::new(
                "RELAY_LISTEN",
                format!("`{}` is not an address like 0.0.0.0:8080", env.relay_listen),
            )
        })?;
        let admin_listen: SocketAddr = env.relay_admin_listen.parse().map_err(|_| {
            ConfigError::new(
                "RELAY_ADMIN_LISTEN",
                format!("`{}` is not an address like 0.0.0.0:9090", env.relay_admin_listen),
            )
        })?;
        if admin_listen == listen && listen.port() != 0 {
            return Err(ConfigError::new(
                "RELAY_ADMIN_LISTEN",
                "must differ from RELAY_LISTEN: operator endpoints stay off the callback listener",
            ));
        }
        let log_format = match env.relay_log_format.trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(ConfigError::new("RELAY_LOG_FORMAT", "must be `text` or `json`")),
        };
        if !env.relay_callback_path.starts_with('/') {
            return Err(ConfigError::new("RELAY_CALLBACK_PATH", "must start with `/`"));
        }
        if env.relay_body_limit_bytes == 0 {
            return Err(ConfigError::new(
                "RELAY_BODY_LIMIT_BYTES",
                "must be greater than 0",
            ));
        }
        if !(1..2000).contains(&env.relay_ack_timeout_ms) {
            return Err(ConfigError::new(
                "RELAY_ACK_TIMEOUT_MS",
                "must be between 1 and 1999: Tencent waits 2000 ms for the answer",
            ));
        }
        if env.kafka_bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", "must not be empty"));
        }
        for (var, topic) in [
            ("KAFKA_TOPIC", &env.kafka_topic),
            ("KAFKA_MESSAGES_TOPIC", &env.kafka_messages_topic),
            ("KAFKA_OTHER_TOPIC", &env.kafka_other_topic),
        ] {
            if !topic.is_empty() && !is_topic_name(topic) {
                return Err(ConfigError::new(
                    var,
                    "must be a Kafka topic name (letters, digits, `.`, `_`, `-`; at most 249), \
                     or empty to switch its callbacks off",
                ));
            }
        }
        let decision_url = env.relay_decision_url.filter(|u| !u.trim().is_empty());
        if let Some(url) = &decision_url {
            check_url(url).map_err(|e| {
                ConfigError::new(
                    "RELAY_DECISION_URL",
                    format!("must be an http:// URL of a decision service beside the relay: {e}"),
                )
            })?;
        }
        if !(1..2000).contains(&env.relay_decision_timeout_ms) {
            return Err(ConfigError::new(
                "RELAY_DECISION_TIMEOUT_MS",
                "must be between 1 and 1999: Tencent waits 2000 ms for the answer",
            ));
        }
        let fallback_allow = match env.relay_decision_fallback.trim().to_ascii_lowercase().as_str() {
            "allow" => true,
            "deny" => false,
            _ => {
                return Err(ConfigError::new(
                    "RELAY_DECISION_FALLBACK",
                    "must be `allow` or `deny`",
                ))
            }
        };
        if env.relay_spool_dir.trim().is_empty() {
            return Err(ConfigError::new("RELAY_SPOOL_DIR", "must not be empty"));
        }
        if env.relay_spool_max_bytes < 1 << 20 {
            return Err(ConfigError::new(
                "RELAY_SPOOL_MAX_BYTES",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let spool_max_file_bytes = env
            .relay_spool_max_file_bytes
            .unwrap_or_else(|| crate::delivery::spool::default_max_file_bytes(env.relay_spool_max_bytes));
        if spool_max_file_bytes < crate::delivery::spool::MIN_FILE_BYTES {
            return Err(ConfigError::new(
                "RELAY_SPOOL_MAX_FILE_BYTES",
                format!(
                    "must be at least {} (8 MiB)",
                    crate::delivery::spool::MIN_FILE_BYTES
                ),
            ));
        }
        let positive = |var: &str, v: u64| {
            if v == 0 {
                Err(ConfigError::new(var, "must be greater than 0"))
            } else {
                Ok(v)
            }
        };
        let limits = Limits {
            header_timeout: Duration::from_millis(positive(
                "RELAY_HEADER_TIMEOUT_MS",
                env.relay_header_timeout_ms,
            )?),
            body_timeout: Duration::from_millis(positive(
                "RELAY_BODY_TIMEOUT_MS",
                env.relay_body_timeout_ms,
            )?),
            keep_alive: Duration::from_secs(env.relay_keep_alive_secs),
            max_connections: positive("RELAY_MAX_CONNECTIONS", env.relay_max_connections as u64)? as usize,
            max_pending_publishes: positive(
                "RELAY_MAX_PENDING_PUBLISHES",
                env.relay_max_pending_publishes as u64,
            )? as usize,
            body: BodyLimits {
                max_custom_fields: env.relay_max_custom_fields,
                max_field_bytes: positive("RELAY_MAX_FIELD_BYTES", env.relay_max_field_bytes as u64)?
                    as usize,
            },
        };
        if env.relay_workers == Some(0) {
            return Err(ConfigError::new("RELAY_WORKERS", "must be greater than 0"));
        }
        let trusted_proxies = cidrs(
            "RELAY_TRUSTED_PROXY_CIDRS",
            env.relay_trusted_proxy_cidrs.as_deref(),
        )?;
        let access = AccessRules {
            allowed: cidrs("RELAY_ALLOWED_CIDRS", env.relay_allowed_cidrs.as_deref())?,
            client_ip_header: match env.relay_client_ip_header {
                Some(h)
                    if h.trim().is_empty()
                        || actix_web::http::header::HeaderName::try_from(h.trim()).is_err() =>
                {
                    return Err(ConfigError::new(
                        "RELAY_CLIENT_IP_HEADER",
                        "is not a valid header name",
                    ))
                }
                Some(h) => h.trim().to_string(),
                None => "X-Forwarded-For".into(),
            },
            trusted_proxies,
        };
        let tls = match (env.relay_tls_cert_path, env.relay_tls_key_path) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsPaths {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "RELAY_TLS_KEY_PATH",
                    "is required with RELAY_TLS_CERT_PATH",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "RELAY_TLS_CERT_PATH",
                    "is required with RELAY_TLS_KEY_PATH",
                ))
            }
        };
        let ack_timeout = Duration::from_millis(env.relay_ack_timeout_ms);
        guard_producer_properties(&producer_properties, ack_timeout)?;
        let peers = peer_list(env.relay_peers.as_deref())?;
        if env.relay_peer_max_wait_ms == 0 {
            return Err(ConfigError::new(
                "RELAY_PEER_MAX_WAIT_MS",
                "must be greater than 0",
            ));
        }
        Ok(Config {
            sdk_app_id: app_id,
            callback_token: token,
            sign_max_skew: Duration::from_secs(env.tim_sign_max_skew_secs),
            listen,
            admin_listen,
            log_format,
            shutdown_drain: Duration::from_secs(env.relay_shutdown_drain_secs),
            callback_path: env.relay_callback_path,
            body_limit_bytes: env.relay_body_limit_bytes,
            ack_timeout,
            bootstrap_servers: env.kafka_bootstrap_servers,
            topic: env.kafka_topic,
            messages_topic: env.kafka_messages_topic,
            other_topic: env.kafka_other_topic,
            decision: Decision {
                url: decision_url,
                timeout: Duration::from_millis(env.relay_decision_timeout_ms),
                fallback_allow,
            },
            spool_dir: PathBuf::from(env.relay_spool_dir),
            spool_max_bytes: env.relay_spool_max_bytes,
            spool_max_file_bytes,
            producer_properties,
            limits,
            workers: env.relay_workers,
            access,
            tls,
            peers,
            peer_max_wait: Duration::from_millis(env.relay_peer_max_wait_ms),
        })
    }

    /// The environment variable a librdkafka property came from.
    pub fn producer_var(property: &str) -> String {
        format!(
            "{PRODUCER_PREFIX}{}",
            property.replace('.', "_").to_ascii_uppercase()
        )
    }
}

/// Refuses `KAFKA_PRODUCER_*` overrides that would let an OK answer mean less than
/// "acknowledged by every in-sync replica, or spooled", or would break one group's order.
fn guard_producer_properties(
    props: &BTreeMap<String, String>,
    ack_timeout: Duration,
) -> Result<(), ConfigError> {
    for (name, value) in props {
        let v = value.trim().to_ascii_lowercase();
        let refused = match name.as_str() {
            "acks" | "request.required.acks" => (v != "all" && v != "-1")
                .then_some("must stay `all`: OK means every in-sync replica has the event"),
            "enable.idempotence" => (!matches!(v.as_str(), "true" | "1"))
                .then_some("must stay true: retries must not duplicate or reorder a group's events"),
            "message.timeout.ms" | "delivery.timeout.ms" => match v.parse::<u64>() {
                Ok(ms) if ms > 0 && ms <= ack_timeout.as_millis() as u64 => None,
                _ => Some(
                    "must be between 1 and RELAY_ACK_TIMEOUT_MS: a record must not reach Kafka \
                     after the relay spooled a copy of it",
                ),
            },
            "transactional.id" => Some("is not supported: the relay's producer is not transactional"),
            "partitioner" => matches!(v.as_str(), "random")
                .then_some("must keep one GroupId in one partition (not `random`)"),
            "max.in.flight.requests.per.connection" | "max.in.flight" => match v.parse::<u64>() {
                Ok(n) if (1..=5).contains(&n) => None,
                _ => Some("must be 1 to 5: the idempotent producer keeps order only up to 5"),
            },
            "retries" | "message.send.max.retries" => {
                (v == "0").then_some("must not be 0: a transient broker error would turn into a spool write")
            }
            _ => None,
        };
        if let Some(reason) = refused {
            return Err(ConfigError::new(Config::producer_var(name), reason));
        }
    }
    Ok(())
}

/// `RELAY_PEERS`: comma-separated `host:port`, each with a port number.
fn peer_list(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(s.to_string())
            }
            _ => Err(ConfigError::new(
                "RELAY_PEERS",
                format!("`{s}` is not host:port, like tim-relay-headless:9090"),
            )),
        })
        .collect()
}

/// Whether Kafka accepts `topic` as a topic name.
pub(crate) fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && topic != "."
        && topic != ".."
}

/// Parses a comma-separated CIDR list; a bare address means just that address.
fn cidrs(var: &str, value: Option<&str>) -> Result<Vec<IpNet>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::new(var, format!("`{s}` is not a CIDR like 10.0.0.0/8")))
        })
        .collect()
}

/// Whether a producer property holds a secret that must never be printed.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "sasl", "key", "token", "credential"]
        .iter()
        .any(|s| name.contains(s))
}

/// envy's error as a configuration error naming the variable.
pub(crate) fn envy_error(err: envy::Error) -> ConfigError {
    match err {
        envy::Error::MissingValue(field) => {
            ConfigError::new(field.to_ascii_uppercase(), "is required but not set")
        }
        // envy's message already names the variable ("... provided by VAR").
        envy::Error::Custom(msg) => {
            let var = msg.rsplit(' ').next().unwrap_or("environment").to_string();
            ConfigError::new(var, msg)
        }
    }
}

/// The effective configuration for the start-up log line, secrets masked.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sdk_app_id={} token={} sign_max_skew={}s listen={} admin_listen={} shutdown_drain={}s path={} body_limit={}B ack_timeout={}ms \
             bootstrap={} topic={} messages_topic={} other_topic={} decision_url={} decision_timeout={}ms \
             decision_fallback={} spool={} spool_max={}B spool_max_file={}B header_timeout={}ms body_timeout={}ms keep_alive={}s \
             max_connections={} max_pending_publishes={} max_custom_fields={} max_field_bytes={} allowed_cidrs={} \
             trusted_proxies={} tls={} peers={} peer_max_wait={}ms",
            self.sdk_app_id,
            if self.callback_token.is_some() {
                "set (masked)"
            } else {
                "unset (Sign not checked)"
            },
            self.sign_max_skew.as_secs(),
            self.listen,
            self.admin_listen,
            self.shutdown_drain.as_secs(),
            self.callback_path,
            self.body_limit_bytes,
            self.ack_timeout.as_millis(),
            self.bootstrap_servers,
            shown_topic(&self.topic),
            shown_topic(&self.messages_topic),
            shown_topic(&self.other_topic),
            self.decision
                .url
                .as_deref()
                .map_or("unset (before-callbacks answered allow)".into(), shown_url),
            self.decision.timeout.as_millis(),
            if self.decision.fallback_allow { "allow" } else { "deny" },
            self.spool_dir.display(),
            self.spool_max_bytes,
            self.spool_max_file_bytes,
            self.limits.header_timeout.as_millis(),
            self.limits.body_timeout.as_millis(),
            self.limits.keep_alive.as_secs(),
            self.limits.max_connections,
            self.limits.max_pending_publishes,
            self.limits.body.max_custom_fields,
            self.limits.body.max_field_bytes,
            list(&self.access.allowed, "any"),
            list(&self.access.trusted_proxies, "none"),
            if self.tls.is_some() { "on" } else { "off" },
            if self.peers.is_empty() {
                "none".to_string()
            } else {
                self.peers.join(",")
            },
            self.peer_max_wait.as_millis(),
        )?;
        for (k, v) in &self.producer_properties {
            let shown = if is_secret_property(k) { "***" } else { v.as_str() };
            write!(f, " {k}={shown}")?;
        }
        Ok(())
    }
}

/// A URL for the start-up line: scheme, host, port and path; user, password and query masked.
fn shown_url(url: &str) -> String {
    match check_url(url) {
        Ok(u) => format!(
            "{}://{}{}{}{}",
            u.scheme(),
            if u.username().is_empty() && u.password().is_none() {
                ""
            } else {
                "***@"
            },
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path().to_string() + if u.query().is_some() { "?***" } else { "" },
        ),
        Err(_) => "(invalid)".into(),
    }
}

/// A topic for the start-up line: empty means its callbacks are answered OK and not published.
fn shown_topic(topic: &str) -> &str {
    if topic.is_empty() {
        "off"
    } else {
        topic
    }
}

/// The networks for the start-up line; `empty` says what an empty list means for this one.
fn list(nets: &[IpNet], empty: &str) -> String {
    if nets.is_empty() {
        return empty.into();
    }
    nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Debug output is the masked Display form, so a stray `{:?}` cannot leak a secret.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The decision URL as the relay can use it: http://, a host, no fragment. Errors never repeat
/// the URL: it may carry a password or a key.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "http" || !parsed.has_host() {
        return Err("not an http:// URL with a host".into());
    }
    if parsed.fragment().is_some() {
        return Err("has a #fragment".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_only_the_app_id_is_set() {
        let c = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1400000000")])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.callback_path, "/callback");
        assert_eq!(c.ack_timeout, Duration::from_millis(1500));
        assert_eq!(c.body_limit_bytes, 1 << 20);
        assert_eq!(c.topic, "tim.group-changes");
        assert_eq!(c.messages_topic, "tim.group-messages");
        assert_eq!(c.other_topic, "tim.webhooks");
        assert!(c.decision.url.is_none() && c.decision.fallback_allow);
        assert_eq!(c.decision.timeout, Duration::from_millis(1500));
        assert!(c.callback_token.is_none());
        assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.shutdown_drain, Duration::from_secs(20));
    }

    #[test]
    fn producer_overrides_that_weaken_the_promise_are_refused_naming_the_variable() {
        for (var, value) in [
            ("KAFKA_PRODUCER_ACKS", "1"),
            ("KAFKA_PRODUCER_REQUEST_REQUIRED_ACKS", "0"),
            ("KAFKA_PRODUCER_ENABLE_IDEMPOTENCE", "false"),
            ("KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS", "0"),
            ("KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS", "30000"),
            ("KAFKA_PRODUCER_DELIVERY_TIMEOUT_MS", "120000"),
            ("KAFKA_PRODUCER_TRANSACTIONAL_ID", "relay"),
            ("KAFKA_PRODUCER_PARTITIONER", "random"),
            ("KAFKA_PRODUCER_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION", "10"),
            ("KAFKA_PRODUCER_RETRIES", "0"),
        ] {
            let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), (var, value)]))
                .expect_err(&format!("{var}={value} refused"));
            assert_eq!(err.var, var, "{err}");
        }
        for (var, value) in [
            ("KAFKA_PRODUCER_ACKS", "all"),
            ("KAFKA_PRODUCER_ACKS", "-1"),
            ("KAFKA_PRODUCER_ENABLE_IDEMPOTENCE", "true"),
            ("KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS", "1000"),
            ("KAFKA_PRODUCER_LINGER_MS", "0"),
            ("KAFKA_PRODUCER_PARTITIONER", "murmur2_random"),
            ("KAFKA_PRODUCER_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION", "1"),
        ] {
            Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), (var, value)]))
                .unwrap_or_else(|e| panic!("{var}={value} accepted: {e}"));
        }
    }

    #[test]
    fn topics_may_be_switched_off_but_not_misnamed_and_the_decision_settings_are_checked() {
        let c = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("KAFKA_OTHER_TOPIC", "")])).unwrap();
        assert_eq!(c.other_topic, "");
        for (var, value) in [
            ("KAFKA_TOPIC", "a b"),
            ("KAFKA_MESSAGES_TOPIC", ".."),
            ("RELAY_DECISION_URL", "ftp://x"),
            ("RELAY_DECISION_TIMEOUT_MS", "2000"),
            ("RELAY_DECISION_FALLBACK", "maybe"),
            ("RELAY_DECISION_URL", "https://user:hunter2@decider/"),
        ] {
            let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), (var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let c = Config::from_vars(vars(&[
            ("TIM_SDK_APP_ID", "1"),
            (
                "RELAY_DECISION_URL",
                "http://user:hunter2@decider:8080/decide?key=k3y",
            ),
        ]))
        .unwrap();
        let shown = c.to_string();
        assert!(
            shown.contains("decision_url=http://***@decider:8080/decide?***"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2") && !shown.contains("k3y"), "{shown}");
    }

    #[test]
    fn the_admin_listener_and_log_format_are_checked() {
        let err =
            Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ADMIN_LISTEN", "x")])).unwrap_err();
        assert_eq!(err.var, "RELAY_ADMIN_LISTEN");
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LISTEN", "0.0.0.0:9090")]))
            .unwrap_err();
        assert_eq!(err.var, "RELAY_ADMIN_LISTEN");
        let err =
            Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LOG_FORMAT", "xml")])).unwrap_err();
        assert_eq!(err.var, "RELAY_LOG_FORMAT");
        let c = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LOG_FORMAT", "JSON")])).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn a_missing_app_id_names_the_variable() {
        let err = Config::from_vars(vars(&[])).unwrap_err();
        assert_eq!(err.var, "TIM_SDK_APP_ID");
    }

    #[test]
    fn an_unparsable_number_names_the_variable() {
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ACK_TIMEOUT_MS", "soon")]))
            .unwrap_err();
        assert_eq!(err.var, "RELAY_ACK_TIMEOUT_MS", "{err}");
    }

    #[test]
    fn peers_are_host_port_pairs_and_a_bad_one_names_relay_peers() {
        let c = Config::from_vars(vars(&[
            ("TIM_SDK_APP_ID", "1"),
            ("RELAY_PEERS", " tim-relay-headless:9090, 10.0.0.7:9090 "),
        ]))
        .unwrap();
        assert_eq!(c.peers, ["tim-relay-headless:9090", "10.0.0.7:9090"]);
        assert_eq!(c.peer_max_wait, Duration::from_secs(10));
        assert!(Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1")]))
            .unwrap()
            .peers
            .is_empty());
        for bad in ["tim-relay-headless", "host:", ":9090", "host:http", "host:0"] {
            let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_PEERS", bad)]))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(err.var, "RELAY_PEERS", "{err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_PEER_MAX_WAIT_MS", "0")]))
            .err()
            .unwrap();
        assert_eq!(err.var, "RELAY_PEER_MAX_WAIT_MS");
    }

    #[test]
    fn an_ack_timeout_past_tencents_budget_is_refused() {
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ACK_TIMEOUT_MS", "2500")]))
            .unwrap_err();
        assert_eq!(err.var, "RELAY_ACK_TIMEOUT_MS");
    }

    #[test]
    fn cidr_lists_are_parsed_and_a_bad_one_names_its_variable() {
        let c = Config::from_vars(vars(&[
            ("TIM_SDK_APP_ID", "1"),
            ("RELAY_ALLOWED_CIDRS", "10.0.0.0/8, 127.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(c.access.allowed.len(), 2);
        assert_eq!(c.access.allowed[1].to_string(), "127.0.0.1/32");
        let err = Config::from_vars(vars(&[
            ("TIM_SDK_APP_ID", "1"),
            ("RELAY_TRUSTED_PROXY_CIDRS", "10.0.0.0/33"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "RELAY_TRUSTED_PROXY_CIDRS");
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_TLS_CERT_PATH", "c.pem")]))
            .unwrap_err();
        assert_eq!(err.var, "RELAY_TLS_KEY_PATH");
    }

    #[test]
    fn a_non_numeric_app_id_is_refused() {
        let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "abc")])).unwrap_err();
        assert_eq!(err.var, "TIM_SDK_APP_ID");
    }

    #[test]
    fn producer_variables_become_librdkafka_properties_and_secrets_are_masked() {
        let c = Config::from_vars(vars(&[
            ("TIM_SDK_APP_ID", "1"),
            ("TIM_CALLBACK_TOKEN", "hunter2"),
            ("KAFKA_PRODUCER_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_PRODUCER_SASL_PASSWORD", "pa55"),
        ]))
        .unwrap();
        assert_eq!(c.producer_properties["security.protocol"], "SASL_SSL");
        assert_eq!(
            Config::producer_var("sasl.password"),
            "KAFKA_PRODUCER_SASL_PASSWORD"
        );
        let shown = c.to_string();
        assert!(shown.contains("security.protocol=SASL_SSL"), "{shown}");
        assert!(!shown.contains("pa55") && !shown.contains("hunter2"), "{shown}");
    }
}
