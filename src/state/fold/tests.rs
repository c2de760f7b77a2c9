//! The fold's tests: orders, duplicates, destructions, limits, the document's JSON form.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

const RULES: FoldRules = FoldRules {
    max_members: 3,
    recent_ids: 4,
};

/// An event as the relay writes it: envelope fields, then the command's own.
fn ev(id: &str, kind: &str, time: Option<u64>, data: Value) -> InEvent {
    let mut body = json!({"id": id, "type": format!("tim.group.{kind}"), "schema_version": 1,
        "sdk_app_id": "1400000000", "group_id": "g", "group_type": "Public",
        "received_at": "2026-01-01T00:00:00.000Z"});
    if let Some(t) = time {
        body["event_time_ms"] = json!(t);
    }
    for (k, v) in data.as_object().unwrap() {
        body[k] = v.clone();
    }
    InEvent::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
}

fn fold(events: &[InEvent]) -> (Group, Vec<Outcome>) {
    let mut g = Group::default();
    let outcomes = events.iter().map(|e| g.apply(e, RULES)).collect();
    (g, outcomes)
}

fn doc(g: &Group) -> &GroupState {
    g.doc.as_ref().expect("a live group")
}

#[test]
fn a_created_group_is_complete_and_later_changes_win_whatever_the_arrival_order() {
    let created = ev(
        "a",
        "created",
        Some(10),
        json!({"owner": "o", "name": "first", "members": ["o", "m"], "custom": {"k": "1"}}),
    );
    let renamed = ev(
        "b",
        "info_changed",
        Some(20),
        json!({"changes": {"name": "second", "custom": {"k": "2"}}}),
    );
    for order in [
        [created.clone(), renamed.clone()],
        [renamed.clone(), created.clone()],
    ] {
        let (g, _) = fold(&order);
        let d = doc(&g);
        assert!(d.complete);
        assert_eq!(d.name.as_deref(), Some("second"));
        assert_eq!(d.custom["k"], "2");
        assert_eq!(d.owner.as_deref(), Some("o"));
        assert_eq!(d.member_count, 2);
        assert_eq!(d.field_times.name, Some(20));
        assert_eq!(d.field_times.created, Some(10));
        assert_eq!(d.updated_at, "1970-01-01T00:00:00.020Z");
    }
    let (_, outcomes) = fold(&[
        renamed.clone(),
        ev("c", "info_changed", Some(15), json!({"changes": {"name": "old"}})),
    ]);
    assert_eq!(outcomes[1], Outcome::Stale);
}

#[test]
fn a_group_never_seen_created_is_incomplete() {
    let (g, _) = fold(&[ev(
        "a",
        "info_changed",
        Some(5),
        json!({"changes": {"name": "n"}}),
    )]);
    assert!(!doc(&g).complete);
    assert_eq!(doc(&g).group_id, "g");
}

#[test]
fn a_redelivered_event_changes_nothing_even_after_a_newer_one() {
    let first = ev("a", "member_joined", None, json!({"members": ["x"]}));
    let exit = ev("b", "member_exited", None, json!({"members": ["x"]}));
    let (g, outcomes) = fold(&[first.clone(), exit, first]);
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Applied, Outcome::Duplicate]);
    assert!(doc(&g).members.is_empty());
    // Only the last `recent_ids` ids are kept.
    let mut g = Group::default();
    for i in 0..5 {
        g.apply(
            &ev(
                &i.to_string(),
                "info_changed",
                Some(i),
                json!({"changes": {"name": "n"}}),
            ),
            RULES,
        );
    }
    assert_eq!(g.recent.0.len(), 4);
    assert!(!g.recent.contains("0"));
    assert!(g.recent.contains("4"));
    assert_eq!(Recent::from_header(&g.recent.to_header()), g.recent);
}

#[test]
fn events_without_time_apply_in_topic_order_and_a_timed_newer_one_still_wins() {
    let (g, _) = fold(&[
        ev(
            "a",
            "info_changed",
            Some(10),
            json!({"changes": {"name": "timed"}}),
        ),
        ev("b", "info_changed", None, json!({"changes": {"name": "untimed"}})),
    ]);
    assert_eq!(doc(&g).name.as_deref(), Some("untimed"));
    assert_eq!(doc(&g).field_times.name, Some(10));
    let mut g = g;
    assert_eq!(
        g.apply(
            &ev(
                "c",
                "info_changed",
                Some(9),
                json!({"changes": {"name": "older"}})
            ),
            RULES
        ),
        Outcome::Stale
    );
    g.apply(
        &ev(
            "d",
            "info_changed",
            Some(11),
            json!({"changes": {"name": "newer"}}),
        ),
        RULES,
    );
    assert_eq!(doc(&g).name.as_deref(), Some("newer"));
}

#[test]
fn equal_times_let_the_later_event_in_the_topic_win() {
    let (g, _) = fold(&[
        ev("a", "info_changed", Some(10), json!({"changes": {"name": "one"}})),
        ev("b", "info_changed", Some(10), json!({"changes": {"name": "two"}})),
    ]);
    assert_eq!(doc(&g).name.as_deref(), Some("two"));
}

#[test]
fn a_destroyed_group_is_a_tombstone_that_older_events_never_revive() {
    let created = ev("a", "created", Some(10), json!({"name": "n", "members": ["x"]}));
    let destroyed = ev("b", "destroyed", Some(20), json!({}));
    let late = ev(
        "c",
        "info_changed",
        Some(15),
        json!({"changes": {"name": "late"}}),
    );
    let (g, outcomes) = fold(&[created.clone(), destroyed.clone(), late.clone()]);
    assert_eq!(outcomes[2], Outcome::Stale);
    assert!(g.doc.is_none());
    assert_eq!(g.destroyed_at, Some(20));
    // Destroyed before anything else arrived: the older events are stale too.
    let (g, outcomes) = fold(&[destroyed.clone(), late.clone(), created.clone()]);
    assert_eq!(&outcomes[1..], [Outcome::Stale, Outcome::Stale]);
    assert!(g.doc.is_none());
    // A newer created event starts the next life, which remembers the end of the last.
    let recreated = ev("d", "created", Some(30), json!({"name": "again"}));
    let (g, _) = fold(&[created, destroyed, recreated.clone(), late]);
    assert_eq!(doc(&g).name.as_deref(), Some("again"));
    assert_eq!(doc(&g).field_times.destroyed, Some(20));
    assert!(doc(&g).complete);
    assert!(doc(&g).members.is_empty());
}

#[test]
fn a_late_destruction_keeps_what_the_next_life_already_set() {
    let (g, _) = fold(&[
        ev(
            "a",
            "created",
            Some(10),
            json!({"name": "old", "introduction": "i"}),
        ),
        ev("c", "created", Some(30), json!({"name": "new"})),
        ev("b", "destroyed", Some(20), json!({})),
    ]);
    let d = doc(&g);
    assert_eq!(d.name.as_deref(), Some("new"));
    assert_eq!(d.introduction, None);
    assert!(d.complete);
    assert_eq!(d.field_times.destroyed, Some(20));
}

#[test]
fn membership_follows_the_latest_join_or_exit_and_roles_belong_to_one_membership() {
    let join = ev("a", "member_joined", Some(10), json!({"members": ["x", "y"]}));
    let role = ev(
        "b",
        "member_changed",
        Some(12),
        json!({"member": "x", "role": "Admin", "name_card": "X"}),
    );
    let exit = ev("c", "member_exited", Some(14), json!({"members": ["x"]}));
    let rejoin = ev("d", "member_joined", Some(16), json!({"members": ["x"]}));
    let orders = [
        vec![join.clone(), role.clone(), exit.clone(), rejoin.clone()],
        vec![rejoin.clone(), exit.clone(), role.clone(), join.clone()],
        vec![role.clone(), rejoin.clone(), join.clone(), exit.clone()],
    ];
    for order in orders {
        let (g, _) = fold(&order);
        let d = doc(&g);
        assert_eq!(d.members.keys().collect::<Vec<_>>(), ["x", "y"], "{order:?}");
        assert_eq!(
            d.members["x"],
            Member::default(),
            "the old role went with the old membership"
        );
        assert_eq!(d.member_count, 2);
    }
    let (g, _) = fold(&[join, role]);
    assert_eq!(doc(&g).members["x"].role.as_deref(), Some("Admin"));
    assert_eq!(doc(&g).members["x"].name_card.as_deref(), Some("X"));
}

#[test]
fn beyond_the_member_limit_and_in_av_chat_rooms_only_the_count_is_kept() {
    let (g, _) = fold(&[
        ev("a", "member_joined", Some(1), json!({"members": ["a", "b", "c"]})),
        ev("b", "member_joined", Some(2), json!({"members": ["d"]})),
        ev("c", "member_exited", Some(3), json!({"members": ["a"]})),
    ]);
    let d = doc(&g);
    assert!(!d.members_tracked);
    assert!(d.members.is_empty() && d.field_times.members.is_empty());
    assert_eq!(d.member_count, 3);
    assert!(d
        .members_untracked_reason
        .as_deref()
        .unwrap()
        .contains("RELAY_STATE_MAX_MEMBERS"));

    let mut join = ev("a", "member_joined", Some(2), json!({"members": ["a", "b"]}));
    join.group_type = Some("AVChatRoom".into());
    let mut exit = ev("b", "member_exited", Some(1), json!({"members": ["c"]}));
    exit.group_type = Some("AVChatRoom".into());
    let (g, _) = fold(&[join, exit]);
    assert!(!doc(&g).members_tracked);
    assert_eq!(doc(&g).member_count, 1);
}

#[test]
fn attributes_follow_set_modify_delete_and_clear() {
    let set = ev(
        "a",
        "attr_changed",
        Some(10),
        json!({"option_type": "set", "attrs": {"a": "1", "b": "2"}}),
    );
    let modify = ev(
        "b",
        "attr_changed",
        Some(11),
        json!({"option_type": "modify", "attrs": {"b": "3"}}),
    );
    let delete = ev(
        "c",
        "attr_changed",
        Some(12),
        json!({"option_type": "delete", "attrs": {"a": null}}),
    );
    let reset = ev(
        "d",
        "attr_changed",
        Some(13),
        json!({"option_type": "set", "attrs": {"c": "4"}}),
    );
    let (g, _) = fold(&[set.clone(), modify.clone(), delete.clone()]);
    assert_eq!(
        doc(&g).attrs,
        BTreeMap::from([("b".to_string(), "3".to_string())])
    );
    for order in [
        vec![set.clone(), modify.clone(), delete.clone(), reset.clone()],
        vec![reset.clone(), delete.clone(), set.clone(), modify.clone()],
    ] {
        let (g, _) = fold(&order);
        assert_eq!(
            doc(&g).attrs,
            BTreeMap::from([("c".to_string(), "4".to_string())])
        );
    }
    let clear = ev("e", "attr_changed", Some(14), json!({"option_type": "clear"}));
    let (g, _) = fold(&[clear, set, modify]);
    assert!(doc(&g).attrs.is_empty());
}

#[test]
fn other_group_events_are_not_state_and_bad_events_say_why() {
    let mut g = Group::default();
    assert_eq!(
        g.apply(&ev("a", "full", Some(1), json!({})), RULES),
        Outcome::NotState
    );
    assert!(g.doc.is_none());
    assert_eq!(InEvent::parse(b"[]").unwrap_err(), "no id");
    assert!(InEvent::parse(b"{").unwrap_err().starts_with("not JSON"));
    assert_eq!(
        InEvent::parse(br#"{"id":"a","type":"t","group_id":"g","event_time_ms":"x"}"#).unwrap_err(),
        "event_time_ms is not an integer"
    );
}

#[test]
fn the_document_survives_its_json_form() {
    let (g, _) = fold(&[ev(
        "a",
        "created",
        Some(10),
        json!({"name": "n", "members": ["x"], "custom": {"k": "v"}}),
    )]);
    let text = serde_json::to_vec(doc(&g)).unwrap();
    let back: GroupState = serde_json::from_slice(&text).unwrap();
    assert_eq!(&back, doc(&g));
}
