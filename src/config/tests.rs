use std::time::Duration;

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
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.http.callback_path, "/callback");
    assert_eq!(c.kafka.ack_timeout, Duration::from_millis(1500));
    assert_eq!(c.http.body_limit_bytes, 1 << 20);
    assert_eq!(c.shared.topic, "tim.group-changes");
    assert_eq!(c.kafka.messages_topic, "tim.group-messages");
    assert_eq!(c.kafka.other_topic, "tim.webhooks");
    assert!(c.decision.url.is_none() && c.decision.fallback_allow);
    assert_eq!(c.decision.timeout, Duration::from_millis(1500));
    assert!(c.tencent.callback_token.is_none());
    assert_eq!(c.shared.admin_listen.to_string(), "0.0.0.0:9090");
    assert_eq!(c.shared.log_format, LogFormat::Text);
    assert_eq!(c.spool.shutdown_drain, Duration::from_secs(20));
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
    assert_eq!(c.kafka.other_topic, "");
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
    let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ADMIN_LISTEN", "x")])).unwrap_err();
    assert_eq!(err.var, "RELAY_ADMIN_LISTEN");
    let err =
        Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LISTEN", "0.0.0.0:9090")])).unwrap_err();
    assert_eq!(err.var, "RELAY_ADMIN_LISTEN");
    let err = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LOG_FORMAT", "xml")])).unwrap_err();
    assert_eq!(err.var, "RELAY_LOG_FORMAT");
    let c = Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_LOG_FORMAT", "JSON")])).unwrap();
    assert_eq!(c.shared.log_format, LogFormat::Json);
}

#[test]
fn a_missing_app_id_names_the_variable() {
    let err = Config::from_vars(vars(&[])).unwrap_err();
    assert_eq!(err.var, "TIM_SDK_APP_ID");
}

#[test]
fn an_unparsable_number_names_the_variable() {
    let err =
        Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ACK_TIMEOUT_MS", "soon")])).unwrap_err();
    assert_eq!(err.var, "RELAY_ACK_TIMEOUT_MS", "{err}");
}

#[test]
fn peers_are_host_port_pairs_and_a_bad_one_names_relay_peers() {
    let c = Config::from_vars(vars(&[
        ("TIM_SDK_APP_ID", "1"),
        ("RELAY_PEERS", " tim-relay-headless:9090, 10.0.0.7:9090 "),
    ]))
    .unwrap();
    assert_eq!(c.replicas.peers, ["tim-relay-headless:9090", "10.0.0.7:9090"]);
    assert_eq!(c.replicas.max_wait, Duration::from_secs(10));
    assert!(Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1")]))
        .unwrap()
        .replicas
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
fn a_handover_timeout_must_leave_room_for_the_relays_own_attempt_within_2_s() {
    let read = |pairs: &[(&str, &str)]| {
        let mut all = vec![("TIM_SDK_APP_ID", "1")];
        all.extend_from_slice(pairs);
        Config::from_vars(vars(&all))
    };
    assert_eq!(
        read(&[]).unwrap().replicas.handover_timeout,
        Duration::from_millis(300)
    );
    let c = read(&[
        ("RELAY_HANDOVER_TIMEOUT_MS", "900"),
        ("RELAY_ACK_TIMEOUT_MS", "1000"),
    ])
    .unwrap();
    assert_eq!(c.replicas.handover_timeout, Duration::from_millis(900));
    for bad in [
        &[("RELAY_HANDOVER_TIMEOUT_MS", "401")][..],
        &[("RELAY_HANDOVER_TIMEOUT_MS", "0")],
        &[
            ("RELAY_HANDOVER_TIMEOUT_MS", "300"),
            ("RELAY_ACK_TIMEOUT_MS", "1700"),
        ],
    ] {
        let err = read(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(err.var, "RELAY_HANDOVER_TIMEOUT_MS", "{err}");
    }
}

#[test]
fn an_ack_timeout_past_tencents_budget_is_refused() {
    let err =
        Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_ACK_TIMEOUT_MS", "2500")])).unwrap_err();
    assert_eq!(err.var, "RELAY_ACK_TIMEOUT_MS");
}

#[test]
fn cidr_lists_are_parsed_and_a_bad_one_names_its_variable() {
    let c = Config::from_vars(vars(&[
        ("TIM_SDK_APP_ID", "1"),
        ("RELAY_ALLOWED_CIDRS", "10.0.0.0/8, 127.0.0.1"),
    ]))
    .unwrap();
    assert_eq!(c.http.access.allowed.len(), 2);
    assert_eq!(c.http.access.allowed[1].to_string(), "127.0.0.1/32");
    let err = Config::from_vars(vars(&[
        ("TIM_SDK_APP_ID", "1"),
        ("RELAY_TRUSTED_PROXY_CIDRS", "10.0.0.0/33"),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "RELAY_TRUSTED_PROXY_CIDRS");
    let err =
        Config::from_vars(vars(&[("TIM_SDK_APP_ID", "1"), ("RELAY_TLS_CERT_PATH", "c.pem")])).unwrap_err();
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
    assert_eq!(c.kafka.producer_properties["security.protocol"], "SASL_SSL");
    assert_eq!(
        Kafka::producer_var("sasl.password"),
        "KAFKA_PRODUCER_SASL_PASSWORD"
    );
    let shown = c.to_string();
    assert!(shown.contains("security.protocol=SASL_SSL"), "{shown}");
    assert!(!shown.contains("pa55") && !shown.contains("hunter2"), "{shown}");
}

/// Every variable the relay and the materializer read, with every optional one set, so that
/// each section reads all of its variables.
fn every_variable_read() -> std::collections::BTreeSet<String> {
    let env = Env::new(vars(&[
        ("TIM_SDK_APP_ID", "1400000000"),
        ("RELAY_WORKERS", "2"),
        ("RELAY_TLS_CERT_PATH", "c.pem"),
        ("RELAY_TLS_KEY_PATH", "k.pem"),
        ("TIM_ADMIN_IDENTIFIER", "administrator"),
        ("TIM_SECRET_KEY", "key"),
    ]));
    Config::read(&env).unwrap();
    crate::state::materialize::config::StateConfig::read(&env).unwrap();
    crate::reconcile::config::ReconcileConfig::read(&env).unwrap();
    env.asked()
}

#[test]
fn every_variable_the_code_reads_has_a_row_in_the_readme_or_docs_state() {
    let root = env!("CARGO_MANIFEST_DIR");
    let docs = [
        std::fs::read_to_string(format!("{root}/README.md")).unwrap(),
        std::fs::read_to_string(format!("{root}/docs/state.md")).unwrap(),
    ];
    let read = every_variable_read();
    assert!(read.len() > 40, "the test reads every section: {read:?}");
    let missing: Vec<&String> = read
        .iter()
        .filter(|name| {
            // `KAFKA_PRODUCER_*` is documented as `KAFKA_PRODUCER_<NAME>`.
            let shown = format!("`{}", name.trim_end_matches('*'));
            !docs
                .iter()
                .any(|d| d.lines().any(|l| l.starts_with('|') && l.contains(&shown)))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "variables the code reads with no row in a table of README.md or docs/state.md: {missing:?}"
    );
}
