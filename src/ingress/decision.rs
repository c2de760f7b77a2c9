//! Before-callbacks: asks the decision service (`RELAY_DECISION_URL`) whether Tencent may go
//! ahead and passes its answer on verbatim, or gives the configured fallback answer when the
//! service fails or is late. Nothing is published for these callbacks.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use reqwest::{header, redirect, StatusCode, Url};
use serde::Deserialize;

use crate::answer::OK_BODY;
use crate::config;
use crate::config::check_url;
use crate::ops::log_limit::{LogLimit, Verdict};
use crate::ops::metrics::Metrics;

/// Largest decision answer passed on; a rewritten `MsgBody` stays far below it.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Every `outcome` label `decide` returns, for metrics that start each at 0.
pub const OUTCOMES: [&str; 4] = ["allowed_default", "forwarded", "fallback_allow", "fallback_deny"];
/// Every [`Failure::label`], for a `reason` metric that starts each at 0.
pub const FAILURE_REASONS: [&str; 6] = [
    "timeout",
    "transport",
    "status",
    "too_large",
    "invalid",
    "bad_url",
];
/// Idle pooled connections are dropped before common servers drop them (5 s in Node and
/// uvicorn), so a callback is not sent on a connection the service is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
const FALLBACK_LOG_LINES_PER_SECOND: u32 = 20;

// Deny is `ActionStatus` OK with `ErrorCode` 1 (spec section 3). The reason is the relay's
// own: Tencent may show `ErrorInfo` to the sender, so it never carries request data.
const DENY_LATE: &str = r#"{"ActionStatus":"OK","ErrorInfo":"denied by tim-relay: the decision service did not answer in time","ErrorCode":1}"#;
const DENY_UNREACHABLE: &str = r#"{"ActionStatus":"OK","ErrorInfo":"denied by tim-relay: the decision service could not be reached","ErrorCode":1}"#;
const DENY_INVALID: &str = r#"{"ActionStatus":"OK","ErrorInfo":"denied by tim-relay: the decision service gave an invalid answer","ErrorCode":1}"#;

/// Answers before-callbacks; created once, shares one keep-alive pool across all workers.
///
/// The exchanges run on a runtime of their own: hyper drives each pooled connection from a
/// task on the runtime that opened it, and an actix worker's runtime is not one to share (a
/// worker that is busy, or stopping at shutdown, would stall or break the other workers'
/// decisions on its connections).
pub struct Decider {
    target: Target,
    timeout: Duration,
    fallback_allow: bool,
    fallback_log: LogLimit,
}

enum Target {
    /// No `RELAY_DECISION_URL`: allow at once.
    AllowAll,
    Service {
        client: reqwest::Client,
        url: Url,
        runtime: Runtime,
    },
    /// Set but unusable: every callback gets the fallback, with this reason.
    Unusable(String),
}

/// The answer to give Tencent (always HTTP 200, `application/json`) and how it was reached.
#[derive(Debug)]
pub struct Decision {
    pub body: Bytes,
    /// One of [`OUTCOMES`].
    pub outcome: &'static str,
    /// Why the fallback was given; `None` for `allowed_default` and `forwarded`.
    pub failure: Option<Failure>,
}

/// Why the decision service's answer was not used. Never carries the callback's query or body.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no complete answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("answered HTTP {0}, not 200")]
    Status(u16),
    #[error("answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("answer is not a Tencent answer: {0}")]
    Invalid(String),
    #[error("RELAY_DECISION_URL is not usable: {0}")]
    BadUrl(String),
}

impl Failure {
    /// A short label for a `reason` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Transport(_) => "transport",
            Failure::Status(_) => "status",
            Failure::TooLarge => "too_large",
            Failure::Invalid(_) => "invalid",
            Failure::BadUrl(_) => "bad_url",
        }
    }

    fn deny_body(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => DENY_LATE,
            Failure::Transport(_) | Failure::BadUrl(_) => DENY_UNREACHABLE,
            Failure::Status(_) | Failure::TooLarge | Failure::Invalid(_) => DENY_INVALID,
        }
    }
}

impl Decider {
    pub fn new(config: &config::Decision) -> Self {
        let target = match config.url.as_deref() {
            None => Target::AllowAll,
            Some(url) => {
                match check_url(url).and_then(|url| Ok((client()?, url, Runtime::start()?))) {
                    Ok((client, url, runtime)) => Target::Service { client, url, runtime },
                    Err(reason) => {
                        log::error!("RELAY_DECISION_URL is not usable, every before-callback gets the fallback: {reason}");
                        Target::Unusable(reason)
                    }
                }
            }
        };
        Self {
            target,
            timeout: config.timeout,
            fallback_allow: config.fallback_allow,
            fallback_log: LogLimit::new(FALLBACK_LOG_LINES_PER_SECOND),
        }
    }

    /// The answer to a before-callback with this raw query string and body; returns within
    /// the decision timeout whatever the service does.
    pub async fn decide(&self, query: &str, body: Bytes) -> Decision {
        let (client, url, runtime) = match &self.target {
            Target::AllowAll => return decision(OK_BODY, "allowed_default"),
            Target::Unusable(reason) => return self.fall_back(Failure::BadUrl(reason.clone())),
            Target::Service { client, url, runtime } => (client, url, runtime),
        };
        // One deadline over connect, send and the whole answer read, inside the task (which
        // ends even if this caller goes away) and here (which returns even if it is late).
        let exchange = tokio::time::timeout(self.timeout, ask(client.clone(), with_query(url, query), body));
        let mut task = AbortOnDrop(runtime.spawn(exchange));
        match tokio::time::timeout(self.timeout, &mut task.0).await {
            Ok(Ok(Ok(Ok(answer)))) => Decision {
                body: answer,
                outcome: "forwarded",
                failure: None,
            },
            Ok(Ok(Ok(Err(failure)))) => self.fall_back(failure),
            Ok(Err(e)) => self.fall_back(Failure::Transport(format!("the exchange failed: {e}"))),
            Ok(Ok(Err(_))) | Err(_) => self.fall_back(Failure::Timeout(self.timeout)),
        }
    }

    fn fall_back(&self, failure: Failure) -> Decision {
        let (body, outcome, answer) = if self.fallback_allow {
            (OK_BODY, "fallback_allow", "allow")
        } else {
            (failure.deny_body(), "fallback_deny", "deny")
        };
        if let Verdict::Log { suppressed } = self.fallback_log.check(Instant::now()) {
            let held_back = match suppressed {
                0 => String::new(),
                n => format!(" ({n} more fallbacks not logged)"),
            };
            log::warn!("decision service failed, answering {answer}: {failure}{held_back}");
        }
        Decision {
            failure: Some(failure),
            ..decision(body, outcome)
        }
    }
}

fn decision(body: &'static str, outcome: &'static str) -> Decision {
    Decision {
        body: Bytes::from_static(body.as_bytes()),
        outcome,
        failure: None,
    }
}

/// Makes every series of the decision metrics exist from the start, so rate() and alerts see a
/// 0, not nothing.
pub fn register_metrics(metrics: &Metrics) {
    for outcome in OUTCOMES {
        metrics.decisions.with_label_values(&[outcome]);
    }
    for reason in FAILURE_REASONS {
        metrics.decision_fallbacks.with_label_values(&[reason]);
    }
}

impl Decision {
    /// Counts this decision in `tim_relay_decisions_total` (and the fallback's reason).
    pub fn count(&self, metrics: &Metrics) {
        metrics.decisions.with_label_values(&[self.outcome]).inc();
        if let Some(failure) = &self.failure {
            metrics
                .decision_fallbacks
                .with_label_values(&[failure.label()])
                .inc();
        }
    }
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // The service is beside the relay: no HTTP_PROXY detour, and a 3xx is a wrong answer,
        // not a reason to resend the callback elsewhere.
        .no_proxy()
        .redirect(redirect::Policy::none())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .user_agent(concat!("tim-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| describe(&e))
}

/// `url` with Tencent's query appended verbatim, after the URL's own query if it has one.
fn with_query(base: &Url, query: &str) -> Url {
    let mut url = base.clone();
    if !query.is_empty() {
        match base.query() {
            Some(own) if !own.is_empty() => url.set_query(Some(&format!("{own}&{query}"))),
            _ => url.set_query(Some(query)),
        }
    }
    url
}

/// The runtime the decision exchanges and their pooled connections live on.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn start() -> Result<Self, String> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tim-relay-decision")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| format!("cannot start its runtime: {e}"))
    }

    fn spawn<F>(&self, exchange: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.as_ref().expect("runtime lives until drop").spawn(exchange)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // A plain drop blocks, which panics when the Decider is dropped inside async code.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Cancels the exchange when its caller stops waiting.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn ask(client: reqwest::Client, url: Url, body: Bytes) -> Result<Bytes, Failure> {
    let mut response = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    if response.status() != StatusCode::OK {
        return Err(Failure::Status(response.status().as_u16()));
    }
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_ANSWER_BYTES as u64 {
        return Err(Failure::TooLarge);
    }
    let mut answer = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::TooLarge);
        }
        answer.extend_from_slice(&chunk);
    }
    check_answer(&answer)?;
    Ok(Bytes::from(answer))
}

/// The fields Tencent reads; anything else (`MsgBody`, `CloudCustomData`,
/// `RefusedMembers_Account`, ...) is passed through unread.
#[derive(Deserialize)]
struct AnswerShape<'a> {
    #[serde(rename = "ActionStatus", borrow)]
    action_status: Cow<'a, str>,
    // Tencent's codes are non-negative (0, 1, 2, 10100..=10200, 120001..=130000).
    #[serde(rename = "ErrorCode")]
    _error_code: u32,
    #[serde(rename = "ErrorInfo", default, deserialize_with = "present_string")]
    _error_info: Option<String>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// A valid Tencent answer: a JSON object, `ActionStatus` "OK", `ErrorCode` an integer,
/// `ErrorInfo` a string when present. Duplicate keys are refused: Tencent might read either.
fn check_answer(answer: &[u8]) -> Result<(), Failure> {
    // serde would also read a JSON array into the struct, field by field.
    if answer.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Failure::Invalid("not a JSON object".into()));
    }
    let shape: AnswerShape = serde_json::from_slice(answer).map_err(|e| {
        let mut reason = e.to_string();
        // A type error quotes the offending value; keep the log line short.
        if let Some((cut, _)) = reason.char_indices().nth(160) {
            reason.truncate(cut);
        }
        Failure::Invalid(reason)
    })?;
    // Tencent documents a deny as OK + ErrorCode 1; a FAIL from the service is its own error,
    // and what Tencent does with FAIL is undocumented, so the configured fallback decides.
    if shape.action_status != "OK" {
        return Err(Failure::Invalid(
            "ActionStatus is not \"OK\" (a deny is OK with ErrorCode 1)".into(),
        ));
    }
    Ok(())
}

fn transport(e: reqwest::Error) -> Failure {
    // `without_url`: the URL carries Tencent's query, `Sign` included.
    Failure::Transport(describe(&e.without_url()))
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(400);
    const QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Group.CallbackBeforeSendMsg&contenttype=json&ClientIP=10.0.0.1&OptPlatform=RESTAPI&Sign=abc123&RequestTime=1700000000";
    const CALLBACK: &[u8] = br#"{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}"#;
    const REWRITE: &[u8] = br#"{ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "MsgBody": [{"MsgType":"TIMTextElem","MsgContent":{"Text":"h*"}}], "CloudCustomData": "x" }"#;

    /// How the test's decision service answers each request.
    #[derive(Clone)]
    struct Reply {
        status: &'static str,
        body: Vec<u8>,
        /// Before the status line.
        delay: Duration,
        /// Between the first body byte and the rest.
        stall: Duration,
        /// No Content-Length: the body ends when the connection closes.
        close_delimited: bool,
    }

    fn reply(status: &'static str, body: &[u8]) -> Reply {
        Reply {
            status,
            body: body.to_vec(),
            delay: Duration::ZERO,
            stall: Duration::ZERO,
            close_delimited: false,
        }
    }

    /// A request the service received.
    #[derive(Debug)]
    struct Seen {
        method: String,
        target: String,
        content_type: Option<String>,
        body: Vec<u8>,
    }

    struct Service {
        base: String,
        seen: mpsc::UnboundedReceiver<Seen>,
        connections: Arc<AtomicUsize>,
    }

    /// A raw HTTP/1.1 server on 127.0.0.1:0 giving `reply` to every request.
    async fn service(reply: Reply) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, seen) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, reply.clone(), tx.clone()));
            }
        });
        Service {
            base,
            seen,
            connections,
        }
    }

    async fn serve(stream: TcpStream, reply: Reply, seen: mpsc::UnboundedSender<Seen>) {
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let (mut length, mut content_type) = (0, None);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let Some((name, value)) = line.trim_end().split_once(':') else {
                    break;
                };
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            let mut parts = request_line.split(' ');
            let _ = seen.send(Seen {
                method: parts.next().unwrap().to_owned(),
                target: parts.next().unwrap().to_owned(),
                content_type,
                body,
            });
            tokio::time::sleep(reply.delay).await;
            let framing = if reply.close_delimited {
                "Connection: close".to_owned()
            } else {
                format!("Content-Length: {}", reply.body.len())
            };
            let head = format!("HTTP/1.1 {}\r\n{framing}\r\n\r\n", reply.status);
            let stream = reader.get_mut();
            let (first, rest) = reply.body.split_at(reply.body.len().min(1));
            if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(first).await.is_err() {
                return;
            }
            tokio::time::sleep(reply.stall).await;
            if stream.write_all(rest).await.is_err() || reply.close_delimited {
                return;
            }
        }
    }

    fn decider(url: Option<String>, fallback_allow: bool) -> Decider {
        Decider::new(&config::Decision {
            url,
            timeout: TIMEOUT,
            fallback_allow,
        })
    }

    async fn decide(decider: &Decider) -> Decision {
        decider.decide(QUERY, Bytes::from_static(CALLBACK)).await
    }

    /// A port nothing listens on.
    async fn refused_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/decide", listener.local_addr().unwrap())
    }

    #[tokio::test]
    async fn without_a_url_every_callback_is_allowed_at_once() {
        let decision = decide(&decider(None, false)).await;
        assert_eq!(decision.body, OK_BODY.as_bytes());
        assert_eq!(decision.outcome, "allowed_default");
        assert!(decision.failure.is_none());
    }

    #[tokio::test]
    async fn a_valid_answer_is_returned_byte_for_byte_and_the_service_sees_the_callback_as_sent() {
        let mut svc = service(reply("200 OK", REWRITE)).await;
        for (path, expected_target) in [
            ("/decide", format!("/decide?{QUERY}")),
            ("/decide?tenant=a", format!("/decide?tenant=a&{QUERY}")),
        ] {
            let decision = decide(&decider(Some(format!("{}{path}", svc.base)), false)).await;
            assert_eq!(decision.body, REWRITE);
            assert_eq!(decision.outcome, "forwarded");
            let seen = svc.seen.recv().await.unwrap();
            assert_eq!(seen.method, "POST");
            assert_eq!(seen.target, expected_target);
            assert_eq!(seen.content_type.as_deref(), Some("application/json"));
            assert_eq!(seen.body, CALLBACK);
        }
    }

    #[tokio::test]
    async fn a_deny_and_a_custom_code_are_returned_verbatim() {
        for answer in [
            &br#"{"ActionStatus":"OK","ErrorInfo":"no swearing","ErrorCode":1}"#[..],
            br#"{"ActionStatus":"OK","ErrorCode":10100,"ErrorInfo":"custom"}"#,
            br#"{"ActionStatus":"OK","ErrorCode":0,"RefusedMembers_Account":["bob"]}"#,
        ] {
            let svc = service(reply("200 OK", answer)).await;
            let decision = decide(&decider(Some(svc.base), true)).await;
            assert_eq!(decision.body, answer);
            assert_eq!(decision.outcome, "forwarded");
        }
    }

    #[tokio::test]
    async fn a_late_answer_gets_the_fallback_within_the_timeout() {
        let slow = Reply {
            delay: TIMEOUT * 3,
            ..reply("200 OK", OK_BODY.as_bytes())
        };
        // The status line comes in time, the rest of the answer does not.
        let trickling = Reply {
            stall: TIMEOUT * 3,
            ..reply("200 OK", OK_BODY.as_bytes())
        };
        for reply in [slow, trickling] {
            let svc = service(reply).await;
            for (fallback_allow, body, outcome) in [
                (true, OK_BODY, "fallback_allow"),
                (false, DENY_LATE, "fallback_deny"),
            ] {
                let started = Instant::now();
                let decision = decide(&decider(Some(svc.base.clone()), fallback_allow)).await;
                assert!(
                    started.elapsed() < TIMEOUT + Duration::from_millis(300),
                    "{:?}",
                    started.elapsed()
                );
                assert_eq!(decision.body, body);
                assert_eq!(decision.outcome, outcome);
                assert_eq!(decision.failure.unwrap().label(), "timeout");
            }
        }
    }

    #[tokio::test]
    async fn a_failed_or_invalid_answer_gets_the_fallback() {
        let big = format!(
            r#"{{"ActionStatus":"OK","ErrorCode":0,"Pad":"{}"}}"#,
            "x".repeat(MAX_ANSWER_BYTES)
        );
        let cases = [
            (reply("500 Internal Server Error", OK_BODY.as_bytes()), "status"),
            (reply("302 Found", OK_BODY.as_bytes()), "status"),
            (reply("200 OK", b"allow"), "invalid"),
            (reply("200 OK", b""), "invalid"),
            (
                reply(
                    "200 OK",
                    br#"{"ActionStatus":"FAIL","ErrorInfo":"x","ErrorCode":1}"#,
                ),
                "invalid",
            ),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorInfo":""}"#),
                "invalid",
            ),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorCode":"1"}"#),
                "invalid",
            ),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorCode":1.5}"#),
                "invalid",
            ),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorCode":-1}"#),
                "invalid",
            ),
            (
                reply(
                    "200 OK",
                    br#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":null}"#,
                ),
                "invalid",
            ),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorCode":0,"ErrorCode":1}"#),
                "invalid",
            ),
            (reply("200 OK", br#"["OK",0,""]"#), "invalid"),
            (
                reply("200 OK", br#"{"ActionStatus":"OK","ErrorCode":0} x"#),
                "invalid",
            ),
            (reply("200 OK", big.as_bytes()), "too_large"),
            (
                Reply {
                    close_delimited: true,
                    ..reply("200 OK", big.as_bytes())
                },
                "too_large",
            ),
        ];
        for (reply, label) in cases {
            let svc = service(reply).await;
            for (fallback_allow, body, outcome) in [
                (true, OK_BODY, "fallback_allow"),
                (false, DENY_INVALID, "fallback_deny"),
            ] {
                let decision = decide(&decider(Some(svc.base.clone()), fallback_allow)).await;
                assert_eq!(decision.body, body);
                assert_eq!(decision.outcome, outcome);
                assert_eq!(decision.failure.unwrap().label(), label);
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_service_gets_the_fallback_and_the_reason_carries_no_request_data() {
        let url = refused_url().await;
        for (fallback_allow, body, outcome) in [
            (true, OK_BODY, "fallback_allow"),
            (false, DENY_UNREACHABLE, "fallback_deny"),
        ] {
            let decision = decide(&decider(Some(url.clone()), fallback_allow)).await;
            assert_eq!(decision.body, body);
            assert_eq!(decision.outcome, outcome);
            let reason = decision.failure.unwrap().to_string();
            assert!(reason.contains("refused"), "{reason}");
            assert!(!reason.contains("Sign") && !reason.contains("abc123"), "{reason}");
        }
    }

    #[tokio::test]
    async fn an_unusable_url_gets_the_fallback() {
        for url in [
            "http://",
            "https://decider:8081/",
            "http://decider:8081/#x",
            "not a url",
        ] {
            assert!(check_url(url).is_err(), "{url}");
            let decision = decide(&decider(Some(url.into()), false)).await;
            assert_eq!(decision.outcome, "fallback_deny");
            assert_eq!(decision.failure.unwrap().label(), "bad_url");
        }
    }

    #[tokio::test]
    async fn decisions_reuse_one_kept_alive_connection() {
        let svc = service(reply("200 OK", OK_BODY.as_bytes())).await;
        let decider = decider(Some(svc.base.clone()), false);
        for _ in 0..3 {
            assert_eq!(decide(&decider).await.outcome, "forwarded");
        }
        assert_eq!(svc.connections.load(Ordering::SeqCst), 1);
    }

    /// actix runs one single-threaded runtime per worker; a connection opened from one
    /// worker must still serve another while the first is busy (here: not running at all).
    #[test]
    fn a_decision_does_not_depend_on_the_runtime_that_opened_the_connection() {
        let server = tokio::runtime::Runtime::new().unwrap();
        let svc = server.block_on(service(reply("200 OK", OK_BODY.as_bytes())));
        let decider = decider(Some(svc.base.clone()), false);
        let worker = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let (first, second) = (worker(), worker());
        assert_eq!(first.block_on(decide(&decider)).outcome, "forwarded");
        for _ in 0..2 {
            assert_eq!(second.block_on(decide(&decider)).outcome, "forwarded");
        }
        assert_eq!(svc.connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_fallback_deny_answers_are_valid_tencent_denies() {
        for body in [DENY_LATE, DENY_UNREACHABLE, DENY_INVALID] {
            check_answer(body.as_bytes()).unwrap();
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["ErrorCode"], 1);
        }
        check_answer(OK_BODY.as_bytes()).unwrap();
    }
}
