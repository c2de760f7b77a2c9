//! The callbacks of random operations: signed as the relay checks them, shaped as the relay's
//! own parser reads them, and posted by `sign_and_post`; the state projection and its diff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tim_relay::ingress::auth::{sign_for, Authenticator};
use tim_relay::ingress::body::BodyLimits;
use tim_relay::ingress::callback::CallbackQuery;
use tim_relay::ingress::commands::{dispatch, Class, Dispatched};
use tim_relay::ingress::event::Origin;

use crate::emulator::{
    callback_sign, callback_url, diff_state, diff_world, expected_state, sign_and_post, Population, Rng,
    Role, DEFAULT_MAX_TRACKED_MEMBERS,
};
use crate::started;

const APP: &str = "1400000000";
const TOKEN: &str = "callback-token";

#[test]
fn the_sign_is_tencents_and_the_relays() {
    assert_eq!(
        callback_sign("xxxxyyyy", "1669872112"),
        "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
    );
    assert_eq!(callback_sign(TOKEN, "1700000000"), sign_for(TOKEN, "1700000000"));
}

/// The relay's checks of a callback, as its HTTP layer runs them: app, sign, then the body by
/// its command's parser. Returns the event's group id.
fn relay_accepts(query: &str, body: &[u8]) -> Result<String, String> {
    let query = CallbackQuery::parse(query);
    let auth = Authenticator::new(APP.into(), Some(TOKEN.into()), Duration::from_secs(60));
    auth.check_app_id(&query).map_err(|e| e.to_string())?;
    auth.check_sign(&query, SystemTime::now())
        .map_err(|e| e.to_string())?;
    let name = query.callback_command.clone().ok_or("no CallbackCommand")?;
    let origin = Origin {
        sdk_app_id: APP,
        query: &query,
        raw_body: body,
        received_at: SystemTime::now(),
    };
    match dispatch(&name, &origin, BodyLimits::default()).map_err(|e| e.to_string())? {
        Dispatched::Publish(events, Class::GroupState) => {
            let event = &events[0];
            if !event.extra.is_empty() {
                return Err(format!("fields the relay does not know: {:?}", event.extra));
            }
            event.event_time_ms.ok_or("no EventTime")?;
            Ok(event.group_id.clone().unwrap_or_default())
        }
        _ => Err(format!("{name} is not a group state command")),
    }
}

#[test]
fn random_operations_send_signed_callbacks_the_relay_reads_whole() {
    let emu = started(Population {
        groups: 40,
        ..Default::default()
    });
    let mut rng = Rng::new(9);
    let mut commands = BTreeMap::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for _ in 0..400 {
        for body in emu.with_world(|w| w.random_operation(&mut rng)) {
            let command = body["CallbackCommand"].as_str().unwrap().to_string();
            let url = callback_url(
                "http://relay/callback",
                emu.sdk_app_id,
                &command,
                Some(TOKEN),
                now,
            );
            let query = url.split_once('?').unwrap().1;
            let group =
                relay_accepts(query, body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert_eq!(group, body["GroupId"].as_str().unwrap());
            *commands.entry(command).or_insert(0) += 1;
        }
    }
    let expected: BTreeSet<&str> = [
        "Group.CallbackAfterCreateGroup",
        "Group.CallbackAfterGroupInfoChanged",
        "Group.CallbackAfterNewMemberJoin",
        "Group.CallbackAfterMemberExit",
        "Group.CallbackAfterChangeGroupOwner",
        "Group.CallbackAfterMemberFieldChanged",
        "Group.CallbackAfterGroupAttrChanged",
        "Group.CallbackAfterGroupDestroyed",
    ]
    .into();
    assert_eq!(
        commands.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "{commands:?}"
    );
    emu.with_world(|w| {
        for g in w.groups() {
            assert_eq!(
                g.member(&g.owner).map(|m| m.role),
                Some(Role::Owner),
                "{}",
                g.group_id
            );
            assert_eq!(g.members().iter().filter(|m| m.role == Role::Owner).count(), 1);
            assert!(g.attrs.len() <= 16);
        }
    });
}

/// The callbacks a receiver got: query string and body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A receiver that records each callback's query and body and answers OK.
fn receiver() -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(seen.clone());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let record = |req: HttpRequest, body: web::Bytes, seen: web::Data<Seen>| async move {
                seen.lock()
                    .unwrap()
                    .push((req.query_string().to_string(), body.to_vec()));
                HttpResponse::Ok().json(json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0 }))
            };
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/callback", web::post().to(record))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await
        })
    });
    (format!("http://{}/callback", rx.recv().unwrap()), seen)
}

#[tokio::test]
async fn sign_and_post_delivers_what_the_relay_accepts() {
    let emu = started(Population {
        groups: 10,
        ..Default::default()
    });
    let (url, seen) = receiver();
    let http = reqwest::Client::new();
    let mut rng = Rng::new(3);
    let mut sent = Vec::new();
    while sent.len() < 30 {
        sent.extend(emu.with_world(|w| w.random_operation(&mut rng)));
    }
    for body in &sent {
        let (status, answer) = sign_and_post(&http, &url, emu.sdk_app_id, Some(TOKEN), body)
            .await
            .unwrap();
        assert_eq!((status, answer["ErrorCode"].as_i64()), (200, Some(0)));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), sent.len());
    for ((query, raw), body) in seen.iter().zip(&sent) {
        relay_accepts(query, raw).unwrap_or_else(|e| panic!("{e}: {query}"));
        assert_eq!(serde_json::from_slice::<Value>(raw).unwrap(), *body);
    }
}

#[test]
fn the_expected_state_and_its_diff_say_what_differs() {
    let emu = started(Population {
        groups: 10,
        large_every: 0,
        huge_members: None,
    });
    emu.with_world(|w| {
        let g = w.nth_group(0).unwrap();
        let expected = expected_state(w, g, DEFAULT_MAX_TRACKED_MEMBERS);
        assert_eq!(expected["complete"], true);
        assert_eq!(expected["member_count"].as_u64(), Some(g.member_num() as u64));
        assert_eq!(expected["members"][&g.owner]["role"], "Owner");
        assert!(diff_state(&expected, &expected).is_empty());
        let mut actual = expected.clone();
        actual["name"] = json!("other");
        actual.as_object_mut().unwrap().remove("introduction");
        actual["custom"]["level"] = json!("99");
        actual["members"].as_object_mut().unwrap().remove(&g.owner);
        actual["members"]["stranger"] = json!({ "role": "Member" });
        let diff = diff_state(&expected, &actual);
        let id = &g.group_id;
        assert!(
            diff.contains(&format!("{id} name: expected {:?}, got \"other\"", g.name)),
            "{diff:#?}"
        );
        assert!(
            diff.iter()
                .any(|l| l.starts_with(&format!("{id} custom.level: "))),
            "{diff:#?}"
        );
        assert!(
            diff.contains(&format!(
                "{id} members.{}: expected {{\"role\":\"Owner\"}}, missing",
                g.owner
            )),
            "{diff:#?}"
        );
        assert!(
            diff.contains(&format!(
                "{id} members.stranger: not expected, got {{\"role\":\"Member\"}}"
            )),
            "{diff:#?}"
        );
        assert_eq!(
            diff.iter().any(|l| l.contains("introduction")),
            !g.introduction.is_empty(),
            "{diff:#?}"
        );
        let av = w.groups().find(|g| !g.group_type.has_member_list()).unwrap();
        let av_state = expected_state(w, av, DEFAULT_MAX_TRACKED_MEMBERS);
        assert_eq!(
            (
                av_state["members_tracked"].as_bool(),
                av_state["members"].as_object().map(|m| m.len())
            ),
            (Some(false), Some(0))
        );
        let mut states: HashMap<String, Value> = w
            .groups()
            .skip(1)
            .map(|g| {
                (
                    g.group_id.clone(),
                    expected_state(w, g, DEFAULT_MAX_TRACKED_MEMBERS),
                )
            })
            .collect();
        states.insert("@TGS#OLD".into(), json!({}));
        let diff = diff_world(w, &states, DEFAULT_MAX_TRACKED_MEMBERS);
        assert_eq!(
            diff,
            vec![
                format!("{id} missing from the state"),
                "@TGS#OLD in the state but not at Tencent".to_string()
            ]
        );
    });
}
