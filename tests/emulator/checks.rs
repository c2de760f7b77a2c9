//! What every call goes through: the app, UserSig and query checks, the rate limits, the
//! injected faults.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tim_relay::reconcile::budget::Api;
use tim_relay::reconcile::usersig::{sign, Claims, SecretKey};

use crate::emulator::{self, Emulator, Outcome, Population, Times};
use crate::{code, started};

/// Posts `body` to `api` with this usersig and identifier.
async fn post_as(emu: &Emulator, api: Api, identifier: &str, usersig: &str, body: &Value) -> Value {
    let url = format!(
        "{}/v4/{}?sdkappid={}&identifier={identifier}&usersig={usersig}&random=7&contenttype=json",
        emu.base_url(),
        api.path(),
        emu.sdk_app_id
    );
    let response = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_usersig_made_with_sign_passes_and_one_of_another_key_answers_60004() {
    let emu = started(Population {
        groups: 3,
        ..Default::default()
    });
    let admin = emu.admin_identifier.clone();
    let body = json!({ "GroupId": emu.with_world(|w| w.group_ids()[0].clone()) });
    let good = post_as(&emu, Api::GetGroupAttr, &admin, &emu.usersig(), &body).await;
    assert_eq!(good["ActionStatus"], "OK", "{good}");
    assert!(good["GroupAttrAry"].is_array());
    let claims = Claims {
        identifier: admin.clone(),
        sdk_app_id: emu.sdk_app_id,
        time: emulator::unix_secs(),
        expire: 600,
    };
    let other = sign(&SecretKey::new("another key"), &claims);
    let refused = post_as(&emu, Api::GetGroupAttr, &admin, &other, &body).await;
    assert_eq!(
        (refused["ActionStatus"].as_str(), code(&refused)),
        (Some("FAIL"), 60004)
    );
    // A UserSig of another identifier than the one the query names.
    let bob = emu.usersig_for("bob", 600);
    assert_eq!(
        code(&post_as(&emu, Api::GetGroupAttr, &admin, &bob, &body).await),
        60004
    );
}

#[tokio::test]
async fn an_expired_usersig_answers_70001_and_a_non_admin_60010() {
    let emu = started(Population {
        groups: 1,
        ..Default::default()
    });
    let admin = emu.admin_identifier.clone();
    let old = Claims {
        identifier: admin.clone(),
        sdk_app_id: emu.sdk_app_id,
        time: emulator::unix_secs() - 1000,
        expire: 10,
    };
    let expired = sign(&emu.secret_key, &old);
    let body = json!({});
    assert_eq!(
        code(&post_as(&emu, Api::GetAppidGroupList, &admin, &expired, &body).await),
        70001
    );
    let user = emu.usersig_for("someone", 600);
    assert_eq!(
        code(&post_as(&emu, Api::GetAppidGroupList, "someone", &user, &body).await),
        60010
    );
}

#[tokio::test]
async fn the_app_the_query_and_the_body_are_checked() {
    let emu = started(Population {
        groups: 1,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let sig = emu.usersig();
    let good = emu.url(Api::GetAppidGroupList, &sig, 1);
    let cases = [
        (
            good.replace("sdkappid=1400000000", "sdkappid=1400000001"),
            "{}",
            60006,
        ),
        (good.replace("sdkappid=1400000000&", ""), "{}", 60012),
        (good.replace("&random=1", ""), "{}", 60002),
        (good.replace("&random=1", "&random=4294967296"), "{}", 60002),
        (good.replace("contenttype=json", "contenttype=xml"), "{}", 60002),
        (good.replace("&usersig=", "&nosig="), "{}", 60004),
        (
            good.replace("get_appid_group_list", "no_such_command"),
            "{}",
            60009,
        ),
        (good.clone(), "", 60003),
        (good.clone(), "[1]", 60003),
    ];
    emu.set_rate_limit(Api::GetAppidGroupList, 1000);
    for (i, (url, body, expected)) in cases.into_iter().enumerate() {
        let answer: Value = http
            .post(url)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(code(&answer), expected, "case {i}: {answer}");
    }
    let get: Value = http.get(&good).send().await.unwrap().json().await.unwrap();
    assert_eq!(code(&get), 60002, "{get}");
}

#[tokio::test]
async fn the_list_over_one_call_a_second_answers_60007() {
    let emu = started(Population {
        groups: 5,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let (_, first) = emu.call(&http, Api::GetAppidGroupList, &json!({})).await;
    let (_, second) = emu.call(&http, Api::GetAppidGroupList, &json!({})).await;
    assert_eq!((code(&first), code(&second)), (0, 60007), "{second}");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (_, third) = emu.call(&http, Api::GetAppidGroupList, &json!({})).await;
    assert_eq!(code(&third), 0);
    let log = emu.calls();
    assert_eq!(log.count(Some(Api::GetAppidGroupList), Outcome::RATE_LIMITED), 1);
    assert_eq!(
        log.max_calls_in_any_window_for(Api::GetAppidGroupList, Duration::from_secs(1)),
        2
    );
    assert_eq!(log.by_api()[&Api::GetAppidGroupList], 3);
}

#[tokio::test]
async fn injected_faults_appear_and_go() {
    let emu = started(Population {
        groups: 10,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let id = emu.with_world(|w| w.group_ids()[1].clone());
    let attr = json!({ "GroupId": id });
    emu.inject_group_error(&id, 10002, Times::Once);
    assert_eq!(code(&emu.call(&http, Api::GetGroupAttr, &attr).await.1), 10002);
    assert_eq!(code(&emu.call(&http, Api::GetGroupAttr, &attr).await.1), 0);
    emu.inject_group_error_on(Api::GetGroupInfo, &id, 10002, Times::Always);
    for _ in 0..2 {
        let (_, info) = emu
            .call(&http, Api::GetGroupInfo, &json!({ "GroupIdList": [&id] }))
            .await;
        assert_eq!((code(&info), code(&info["GroupInfo"][0])), (0, 10002));
    }
    emu.clear_group_errors();
    emu.set_transient_failure_rate(0.5);
    let mut outcomes = BTreeSet::new();
    for _ in 0..120 {
        let (status, answer) = emu.call(&http, Api::GetGroupAttr, &attr).await;
        outcomes.insert(if status == 200 {
            Outcome::Code(code(&answer))
        } else {
            Outcome::Http(status)
        });
    }
    let all = [0, 10002, 60008]
        .map(Outcome::Code)
        .into_iter()
        .chain([502, 503].map(Outcome::Http));
    assert_eq!(outcomes, all.collect(), "OK and every transient failure");
    emu.set_transient_failure_rate(0.0);
    emu.set_outage(true);
    assert_eq!(emu.call(&http, Api::GetGroupAttr, &attr).await.0, 502);
    emu.set_outage(false);
    emu.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(code(&emu.call(&http, Api::GetGroupAttr, &attr).await.1), 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let log = emu.calls();
    assert_eq!(
        log.count(None, Outcome::Http(502)),
        log.by_outcome()[&Outcome::Http(502)]
    );
    assert!(log.by_outcome()[&Outcome::Code(10002)] >= 1);
}

#[tokio::test]
async fn a_burst_of_attr_calls_is_held_to_the_limit_in_every_window() {
    let emu = started(Population {
        groups: 3,
        ..Default::default()
    });
    emu.set_rate_limit(Api::GetGroupAttr, 20);
    let http = reqwest::Client::new();
    let id = emu.with_world(|w| w.group_ids()[0].clone());
    let body = json!({ "GroupId": id });
    let started = Instant::now();
    let calls = (0..60).map(|_| emu.call(&http, Api::GetGroupAttr, &body));
    let answers = futures_util::future::join_all(calls).await;
    let seconds = started.elapsed().as_secs() as usize;
    let ok = answers.iter().filter(|(_, a)| code(a) == 0).count();
    assert!(
        (20..=20 * (seconds + 1)).contains(&ok),
        "{ok} admitted in {seconds} s"
    );
    let log = emu.calls();
    assert_eq!(log.count(Some(Api::GetGroupAttr), Outcome::RATE_LIMITED), 60 - ok);
    assert_eq!(log.count(None, Outcome::OK), ok);
    if seconds == 0 {
        assert_eq!(log.max_calls_in_any_window(Duration::from_secs(1)), 60);
    }
}
