//! Resource bounds against hostile or broken clients, with real callbacks flowing beside them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::{launch, query, spawn_app_with, TestApp, APP_ID, COMMAND};

fn raw_connection(app: &TestApp) -> TcpStream {
    let stream = TcpStream::connect(app.address.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

fn request_head(content_length: usize) -> String {
    format!(
        "POST /callback?{} HTTP/1.1\r\nHost: relay\r\nContent-Length: {content_length}\r\n\r\n",
        query()
    )
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
fn read_to_close(mut stream: TcpStream) -> (String, Instant) {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), Instant::now())
}

#[tokio::test]
async fn a_slow_sender_of_headers_is_cut_off_while_others_are_answered() {
    let app = spawn_app_with("slowhead", &[("RELAY_HEADER_TIMEOUT_MS", "500")]).await;
    let mut slow = raw_connection(&app);
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"POST /callback HTTP/1.1\r\nHost: relay\r\nX-Slow: ".iter() {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        read_to_close(slow)
    });
    let answer = app.post(&query(), r#"{"GroupId":"g1"}"#).await;
    assert_eq!(answer.status, 200);
    let (_, closed_at) = tokio::task::spawn_blocking(move || trickle.join().unwrap())
        .await
        .unwrap();
    let lived = closed_at - started;
    assert!(
        lived < Duration::from_secs(5),
        "slow sender kept its connection for {lived:?}"
    );
    assert_eq!(app.consume(1).await[0].value["group_id"], "g1");
}

#[tokio::test]
async fn a_slow_body_gets_408_fail_and_publishes_nothing() {
    let app = spawn_app_with("slowbody", &[("RELAY_BODY_TIMEOUT_MS", "500")]).await;
    let mut slow = raw_connection(&app);
    let body = r#"{"GroupId":"never","Name":"x"}"#;
    slow.write_all(request_head(body.len()).as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..10]).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = slow.read(&mut buf).unwrap();
    let response = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains(r#""ErrorCode":4081"#), "{response}");
    assert_eq!(app.post(&query(), r#"{"GroupId":"sentinel"}"#).await.status, 200);
    assert_eq!(app.consume(1).await[0].value["group_id"], "sentinel");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with("keepalive", &[("RELAY_KEEP_ALIVE_SECS", "1")]).await;
    let mut conn = raw_connection(&app);
    conn.write_all(b"GET /nope HTTP/1.1\r\nHost: relay\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
    let idle_from = Instant::now();
    let (rest, closed_at) = read_to_close(conn);
    assert!(rest.is_empty(), "{rest}");
    let idle = closed_at - idle_from;
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_maximum_wait_until_one_closes() {
    let app = spawn_app_with(
        "maxconn",
        &[
            ("RELAY_WORKERS", "1"),
            ("RELAY_MAX_CONNECTIONS", "2"),
            ("RELAY_HEADER_TIMEOUT_MS", "20000"),
        ],
    )
    .await;
    let first = raw_connection(&app);
    let second = raw_connection(&app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let url = format!("{}/nope", app.address);
    assert!(
        client.get(&url).send().await.is_err(),
        "a third connection was served"
    );
    drop(first);
    let response = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(response.status(), 404);
    drop(second);
}

#[tokio::test]
async fn a_flood_of_bad_requests_leaves_real_callbacks_answered_in_time_and_nothing_extra_published() {
    let app = spawn_app_with("flood", &[("RELAY_BODY_LIMIT_BYTES", "65536")]).await;
    let address = app.address.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for worker in 0..16 {
        let (address, stop) = (address.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (q, body) = match (worker + sent) % 6 {
                    0 => (query(), "x".repeat(200_000)),
                    1 => (query(), "{\"GroupId\":".repeat(1000)),
                    2 => (query().replace(APP_ID, "1"), r#"{"GroupId":"evil"}"#.to_string()),
                    3 => (query(), "[".repeat(10_000)),
                    4 => (
                        query().replace(COMMAND, "Nope"),
                        r#"{"GroupId":"evil"}"#.to_string(),
                    ),
                    _ => (
                        query(),
                        format!(
                            r#"{{"GroupId":"evil","UserDefinedDataList":[{}]}}"#,
                            r#"{"Key":"k","Value":"v"},"#.repeat(100) + "{}"
                        ),
                    ),
                };
                let _ = client
                    .post(format!("{address}/callback?{q}"))
                    .body(body)
                    .send()
                    .await;
                sent += 1;
            }
            sent
        }));
    }
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let started = Instant::now();
        let answer = app
            .post(&query(), format!(r#"{{"GroupId":"real","Name":"n{i}"}}"#))
            .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut bad = 0;
    for f in flooders {
        bad += f.await.unwrap();
    }
    assert!(bad > 100, "the flood sent only {bad} requests");
    assert!(
        slowest < Duration::from_secs(2),
        "a real callback took {slowest:?}"
    );
    let records = app.consume(40).await;
    assert!(records.iter().all(|r| r.value["group_id"] == "real"));
}

#[tokio::test]
async fn beyond_the_broker_wait_bound_a_callback_gets_503_at_once() {
    // A "broker" that accepts connections and never answers: sends hang until the ack timeout.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_addr = stalled.local_addr().unwrap().to_string();
    let app = launch(
        "stalled".into(),
        tempfile::tempdir().unwrap(),
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", &stalled_addr),
            ("RELAY_MAX_PENDING_PUBLISHES", "1"),
            ("RELAY_ACK_TIMEOUT_MS", "1500"),
        ],
    )
    .await;
    let client = app.client.clone();
    let url = format!("{}/callback?{}", app.address, query());
    let first = tokio::spawn(async move {
        client
            .post(url)
            .body(r#"{"GroupId":"g1"}"#)
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let answer = app.post(&query(), r#"{"GroupId":"g2"}"#).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["ErrorCode"], 5036);
    assert!(took < Duration::from_millis(300), "the refusal took {took:?}");
    assert_eq!(
        first.await.unwrap(),
        200,
        "the waiting callback is still answered (spooled)"
    );
    drop(stalled);
}

#[tokio::test]
async fn an_allow_list_refuses_other_addresses_and_believes_only_trusted_proxies() {
    let refused = spawn_app_with("allow1", &[("RELAY_ALLOWED_CIDRS", "10.0.0.0/8")]).await;
    let answer = refused.post(&query(), r#"{"GroupId":"g1"}"#).await;
    assert_eq!(
        (answer.status, answer.body["ErrorCode"].as_u64()),
        (403, Some(4033))
    );

    let proxied = spawn_app_with(
        "allow2",
        &[
            ("RELAY_ALLOWED_CIDRS", "203.0.113.0/24"),
            ("RELAY_TRUSTED_PROXY_CIDRS", "127.0.0.1"),
        ],
    )
    .await;
    let post = |xff: &'static str| {
        proxied
            .client
            .post(format!("{}/callback?{}", proxied.address, query()))
            .header("X-Forwarded-For", xff)
            .body(format!(r#"{{"GroupId":"{xff}"}}"#))
            .send()
    };
    assert_eq!(post("203.0.113.5").await.unwrap().status(), 200);
    assert_eq!(post("198.51.100.1").await.unwrap().status(), 403);
    assert_eq!(
        post("203.0.113.5, 198.51.100.1").await.unwrap().status(),
        403,
        "the last untrusted hop counts"
    );
    let records = proxied.consume(1).await;
    assert_eq!(records[0].value["group_id"], "203.0.113.5");
    refused.consume(0).await;
}

#[tokio::test]
async fn the_relay_serves_https_when_given_a_certificate_and_key() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(
        "tls",
        &[
            ("RELAY_TLS_CERT_PATH", cert_path.to_str().unwrap()),
            ("RELAY_TLS_KEY_PATH", key_path.to_str().unwrap()),
        ],
    )
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}/callback?{}", query());
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            cert_path.to_str().unwrap(),
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
        ])
        .args(["-X", "POST", "--data-binary", r#"{"GroupId":"over-tls"}"#, &url])
        .output()
        .await
        .expect("curl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#
    );
    assert_eq!(app.consume(1).await[0].value["group_id"], "over-tls");
    let plain = reqwest::get(format!("{}/nope", app.address)).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served"
    );
}
