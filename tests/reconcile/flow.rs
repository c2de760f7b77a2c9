//! Callbacks to the relay, and what they alone can make right.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator::{expected_state, sign_and_post, Callback, Operation, Rng, DEFAULT_MAX_TRACKED_MEMBERS};
use crate::harness::{Bench, TOKEN};
use crate::support::relay::Relay;

/// Posts one callback, signed, to the relay; Err when it was not answered OK.
pub fn post(bench: &Bench, relay: &Relay, body: &Value) -> Result<(), String> {
    let url = relay.url("/callback");
    let sent = bench.rt.block_on(sign_and_post(
        &bench.http,
        &url,
        bench.emu.sdk_app_id,
        Some(TOKEN),
        body,
    ));
    match sent {
        Ok((200, answer)) if answer["ActionStatus"] == "OK" => Ok(()),
        Ok((status, answer)) => Err(format!("answered {status}: {answer}")),
        Err(e) => Err(e.to_string()),
    }
}

/// One random operation whose callbacks carry the whole change of the fields compared by
/// [`assert_carried_fields_equal`] (no create: its callback lacks the introduction and more).
pub fn carried_operation(bench: &Bench, rng: &mut Rng) -> Vec<Callback> {
    const OPS: [(Operation, u64); 7] = [
        (Operation::InfoChanged, 30),
        (Operation::CustomChanged, 10),
        (Operation::Join, 25),
        (Operation::Exit, 15),
        (Operation::OwnerChanged, 5),
        (Operation::AttrChanged, 14),
        (Operation::Destroy, 1),
    ];
    bench.emu.with_world(|w| loop {
        let mut n = rng.below(100);
        let op = OPS
            .iter()
            .find(|(_, weight)| {
                let hit = n < *weight;
                n = n.saturating_sub(*weight);
                hit
            })
            .map_or(Operation::InfoChanged, |(op, _)| *op);
        if let Some(callbacks) = w.operate(op, rng) {
            return callbacks;
        }
    })
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn map(v: &Value, field: &str) -> BTreeMap<String, Value> {
    v.get(field)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The differences, in the fields callbacks carry whole (profile, owner, custom fields,
/// attributes, who the members are), between Tencent and the state.
fn carried_diffs(bench: &Bench, states: &HashMap<String, Value>) -> Vec<String> {
    bench.emu.with_world(|w| {
        let mut out = Vec::new();
        for g in w.groups() {
            let expected = expected_state(w, g, DEFAULT_MAX_TRACKED_MEMBERS);
            let Some(actual) = states.get(&g.group_id) else {
                out.push(format!("{} missing", g.group_id));
                continue;
            };
            for f in ["name", "introduction", "notification", "face_url", "owner"] {
                if text(&expected, f) != text(actual, f) {
                    out.push(format!(
                        "{} {f}: Tencent {:?}, state {:?}",
                        g.group_id,
                        text(&expected, f),
                        text(actual, f)
                    ));
                }
            }
            // A custom field set to "" by a callback is gone at Tencent (its answer lists no
            // such key) and "" in the state until the next sweep: the same for a reader.
            let set = |v: &Value, f: &str| {
                let mut m = map(v, f);
                m.retain(|_, value| value != "");
                m
            };
            for f in ["custom", "attrs"] {
                if set(&expected, f) != set(actual, f) {
                    out.push(format!(
                        "{} {f}: Tencent {}, state {}",
                        g.group_id, expected[f], actual[f]
                    ));
                }
            }
            let accounts = |v: &Value| map(v, "members").into_keys().collect::<BTreeSet<_>>();
            if accounts(&expected) != accounts(actual) {
                out.push(format!(
                    "{} members: Tencent {:?}, state {:?}",
                    g.group_id,
                    accounts(&expected),
                    accounts(actual)
                ));
            }
        }
        out.extend(
            states
                .keys()
                .filter(|id| w.group(id).is_none())
                .map(|id| format!("{id} destroyed at Tencent, live in the state")),
        );
        out
    })
}

/// Waits until the fields callbacks carry whole agree everywhere: a snapshot that undid a
/// newer change would leave its field wrong, with no later callback to set it right.
pub fn assert_carried_fields_equal(bench: &Bench, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let diffs = carried_diffs(bench, &bench.states());
        if diffs.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{}: {} fields differ from Tencent although every callback was delivered, e.g.:\n{}",
                bench.name,
                diffs.len(),
                diffs.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The admin listener's answer status for `path`.
pub fn get(bench: &Bench, port: u16, path: &str) -> u16 {
    let url = format!("http://127.0.0.1:{port}{path}");
    bench
        .rt
        .block_on(async { bench.http.get(url).send().await })
        .map_or(0, |r| r.status().as_u16())
}

/// `/metrics` once it holds `needle` (up to 60 s).
pub fn wait_metrics(bench: &Bench, port: u16, needle: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = bench
            .rt
            .block_on(async { bench.http.get(&url).send().await?.text().await })
            .unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in /metrics within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
