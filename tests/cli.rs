//! The binary as an operator runs it: start-up errors, the start-up line, and a clean SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::relay::{binary, free_port, signal, wait_exit};

fn relay(vars: &[(&str, &str)]) -> Command {
    let mut cmd = binary();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn fails_naming(vars: &[(&str, &str)], var: &str) {
    let out = relay(vars).output().expect("binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].contains(var), "{var} not named in: {stderr}");
}

#[test]
fn start_up_stops_with_one_line_naming_a_missing_or_bad_variable() {
    fails_naming(&[], "TIM_SDK_APP_ID");
    fails_naming(
        &[("TIM_SDK_APP_ID", "1"), ("TIM_SIGN_MAX_SKEW_SECS", "-5")],
        "TIM_SIGN_MAX_SKEW_SECS",
    );
    fails_naming(
        &[("TIM_SDK_APP_ID", "1"), ("RELAY_LISTEN", "nowhere")],
        "RELAY_LISTEN",
    );
    fails_naming(
        &[("TIM_SDK_APP_ID", "1"), ("KAFKA_PRODUCER_NO_SUCH_PROPERTY", "1")],
        "KAFKA_PRODUCER_NO_SUCH_PROPERTY",
    );
    fails_naming(
        &[("TIM_SDK_APP_ID", "1"), ("KAFKA_PRODUCER_ACKS", "maybe")],
        "KAFKA_PRODUCER_ACKS",
    );
}

/// Sends the signal and returns the exit code, failing the test if the relay outlives `within`.
async fn stop_with(child: &mut Running, sig: &str, within: Duration) -> Option<i32> {
    signal(&child.0, sig);
    let exit = wait_exit(&mut child.0, within);
    exit.unwrap_or_else(|| panic!("no exit after SIG{sig}")).code()
}

/// The first answer of the relay's `/healthz`, within 10 s.
async fn first_health_answer(client: &reqwest::Client, admin: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(format!("http://{admin}/healthz")).send().await {
            return r;
        }
        assert!(Instant::now() < deadline, "relay did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The relay on `listen` and `admin`, on the default broker, with a topic (`<topic_prefix>_<uuid>`)
/// and a spool dir of its own and `vars` besides; its stderr piped.
fn spawn_relay(
    listen: &str,
    admin: &str,
    topic_prefix: &str,
    vars: &[(&str, &str)],
) -> (Running, tempfile::TempDir) {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let spool = tempfile::tempdir().unwrap();
    let topic = format!("{topic_prefix}_{}", uuid::Uuid::new_v4().simple());
    let child = relay(&[
        ("TIM_SDK_APP_ID", "1400000000"),
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("RELAY_LISTEN", listen),
        ("RELAY_ADMIN_LISTEN", admin),
        ("RELAY_SPOOL_DIR", spool.path().to_str().unwrap()),
        ("KAFKA_TOPIC", &topic),
    ])
    .envs(vars.iter().copied())
    .stderr(Stdio::piped())
    .spawn()
    .expect("binary starts");
    (Running(child), spool)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn sigterm_lets_the_relay_finish_and_exit_0_with_secrets_masked_in_its_log() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port());
    let (mut child, _spool) = spawn_relay(
        &listen,
        &admin,
        "__tim_relay_cli",
        &[
            ("TIM_CALLBACK_TOKEN", "very-secret-token"),
            ("KAFKA_PRODUCER_SASL_PASSWORD", "very-secret-password"),
            ("RUST_LOG", "debug"),
        ],
    );
    let client = reqwest::Client::new();
    assert_eq!(first_health_answer(&client, &admin).await.status(), 200);
    // A callback whose values try to forge a log line, one with a wrong Sign, one for another app.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sign = tim_relay::ingress::auth::sign_for("very-secret-token", &now);
    let base = format!(
        "http://{listen}/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged\
         &ClientIP=1.2.3.4%0AFAKE%20client&OptPlatform=Web%0D%0AFAKE"
    );
    let forged = serde_json::json!({"GroupId": "g\nFAKE LINE\r\u{1b}[31m", "Operator_Account": "op\nFAKE"});
    for (url, expect) in [
        (format!("{base}&Sign={sign}&RequestTime={now}"), 200),
        (format!("{base}&Sign={}&RequestTime={now}", "0".repeat(64)), 401),
        (base.replace("1400000000", "1\nFAKE"), 403),
    ] {
        let response = client.post(url).body(forged.to_string()).send().await.unwrap();
        assert_eq!(response.status(), expect);
    }
    assert_eq!(
        stop_with(&mut child, "TERM", Duration::from_secs(20)).await,
        Some(0)
    );
    let log: Vec<String> = BufReader::new(child.0.stderr.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let log = log.join("\n");
    assert!(log.contains("started tim-relay"), "{log}");
    assert!(log.contains("token=set (masked)"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("very-secret"), "a secret reached the log:\n{log}");
    assert!(log.contains("callback refused"), "{log}");
    for line in log.lines() {
        assert!(
            !line.starts_with("FAKE") && !line.contains('\u{1b}'),
            "a request value broke a log line: {line:?}"
        );
    }
}

#[tokio::test]
async fn sigint_stops_the_relay_as_gracefully_as_sigterm_and_json_logs_are_one_object_per_line() {
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let (mut child, _spool) = spawn_relay(
        &listen,
        &admin,
        "__tim_relay_cli_int",
        &[("RELAY_LOG_FORMAT", "json")],
    );
    let client = reqwest::Client::new();
    first_health_answer(&client, &admin).await;
    let url = format!(
        "http://{listen}/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged"
    );
    let answer = client
        .post(&url)
        .body(r#"{"GroupId":"g-int"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        stop_with(&mut child, "INT", Duration::from_secs(30)).await,
        Some(0)
    );
    let lines: Vec<serde_json::Value> = BufReader::new(child.0.stderr.take().unwrap())
        .lines()
        .map(|l| {
            let l = l.unwrap();
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["ts"].is_string()),
        "{lines:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("started tim-relay")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("SIGINT: no new callbacks")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("stopped: producer flushed")),
        "{messages:?}"
    );
}
