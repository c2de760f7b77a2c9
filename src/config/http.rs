//! The callback listener and the bounds it holds hostile or broken clients to.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, Env};
use crate::ingress::body::BodyLimits;

/// Where callbacks are taken, and from whom.
#[derive(Debug, Clone)]
pub struct Http {
    /// `RELAY_LISTEN`: the callback listener.
    pub listen: SocketAddr,
    /// `RELAY_CALLBACK_PATH`: the path Tencent posts to.
    pub callback_path: String,
    /// `RELAY_BODY_LIMIT_BYTES`: the largest accepted body.
    pub body_limit_bytes: usize,
    pub limits: Limits,
    /// `RELAY_WORKERS`: HTTP worker threads; `None`: one per CPU core.
    pub workers: Option<usize>,
    pub access: AccessRules,
    /// `RELAY_TLS_CERT_PATH` and `RELAY_TLS_KEY_PATH`: serve HTTPS with them.
    pub tls: Option<TlsPaths>,
}

/// Resource bounds for hostile or broken clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `RELAY_HEADER_TIMEOUT_MS`: time to send the request line and headers.
    pub header_timeout: Duration,
    /// `RELAY_BODY_TIMEOUT_MS`: time to send the body once the headers are in.
    pub body_timeout: Duration,
    /// `RELAY_KEEP_ALIVE_SECS`: how long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// `RELAY_MAX_CONNECTIONS`: most connections open at once (all workers together).
    pub max_connections: usize,
    /// `RELAY_MAX_PENDING_PUBLISHES`: most callbacks waiting on Kafka at once; beyond it, 503.
    pub max_pending_publishes: usize,
    /// `RELAY_MAX_CUSTOM_FIELDS`, `RELAY_MAX_FIELD_BYTES`.
    pub body: BodyLimits,
}

/// Who may post callbacks.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    /// `RELAY_ALLOWED_CIDRS`; empty: everyone.
    pub allowed: Vec<IpNet>,
    /// `RELAY_TRUSTED_PROXY_CIDRS`: proxies whose client-address header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `RELAY_CLIENT_IP_HEADER`.
    pub client_ip_header: String,
}

#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Http {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let callback_path = env.string("RELAY_CALLBACK_PATH", "/callback");
        if !callback_path.starts_with('/') {
            return Err(ConfigError::new("RELAY_CALLBACK_PATH", "must start with `/`"));
        }
        let defaults = BodyLimits::default();
        let limits = Limits {
            header_timeout: Duration::from_millis(env.positive("RELAY_HEADER_TIMEOUT_MS", 5000)?),
            body_timeout: Duration::from_millis(env.positive("RELAY_BODY_TIMEOUT_MS", 5000)?),
            keep_alive: env.secs("RELAY_KEEP_ALIVE_SECS", 60)?,
            max_connections: env.positive("RELAY_MAX_CONNECTIONS", 4096)? as usize,
            max_pending_publishes: env.positive("RELAY_MAX_PENDING_PUBLISHES", 512)? as usize,
            body: BodyLimits {
                max_custom_fields: env.number("RELAY_MAX_CUSTOM_FIELDS", defaults.max_custom_fields)?,
                max_field_bytes: env.positive("RELAY_MAX_FIELD_BYTES", defaults.max_field_bytes as u64)?
                    as usize,
            },
        };
        let workers = match env.get("RELAY_WORKERS") {
            None => None,
            Some(_) => Some(env.positive("RELAY_WORKERS", 1)? as usize),
        };
        let access = AccessRules {
            allowed: cidrs("RELAY_ALLOWED_CIDRS", env.get("RELAY_ALLOWED_CIDRS").as_deref())?,
            trusted_proxies: cidrs(
                "RELAY_TRUSTED_PROXY_CIDRS",
                env.get("RELAY_TRUSTED_PROXY_CIDRS").as_deref(),
            )?,
            client_ip_header: match env.get("RELAY_CLIENT_IP_HEADER") {
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
        };
        let tls = match (env.get("RELAY_TLS_CERT_PATH"), env.get("RELAY_TLS_KEY_PATH")) {
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
        Ok(Self {
            listen: env.parse(
                "RELAY_LISTEN",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
                "an address like 0.0.0.0:8080",
            )?,
            callback_path,
            body_limit_bytes: env.positive("RELAY_BODY_LIMIT_BYTES", 1024 * 1024)? as usize,
            limits,
            workers,
            access,
            tls,
        })
    }
}

impl fmt::Display for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        write!(
            f,
            "listen={} path={} body_limit={}B header_timeout={}ms body_timeout={}ms keep_alive={}s \
             max_connections={} max_pending_publishes={} max_custom_fields={} max_field_bytes={} \
             allowed_cidrs={} trusted_proxies={} tls={}",
            self.listen,
            self.callback_path,
            self.body_limit_bytes,
            l.header_timeout.as_millis(),
            l.body_timeout.as_millis(),
            l.keep_alive.as_secs(),
            l.max_connections,
            l.max_pending_publishes,
            l.body.max_custom_fields,
            l.body.max_field_bytes,
            list(&self.access.allowed, "any"),
            list(&self.access.trusted_proxies, "none"),
            if self.tls.is_some() { "on" } else { "off" },
        )
    }
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

/// The networks for the start-up line; `empty` says what an empty list means for this one.
fn list(nets: &[IpNet], empty: &str) -> String {
    if nets.is_empty() {
        return empty.into();
    }
    nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}
