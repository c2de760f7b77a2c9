//! The fold's tests of `tim.group.snapshot`: equal to Tencent's group at its stamp `s`, never
//! undoing a change newer than `s`, never undone by an older one (`docs/reconcile.md`).

use serde_json::{json, Value};

use super::*;

const RULES: FoldRules = FoldRules {
    max_members: 10,
    recent_ids: 16,
};

/// An event as the relay writes it (callbacks: `event_time_ms`; snapshots: `snapshot_at_ms`).
fn event(id: &str, group_type: &str, kind: &str, time: u64, data: Value) -> InEvent {
    let stamp = if kind == "snapshot" {
        "snapshot_at_ms"
    } else {
        "event_time_ms"
    };
    let mut body = json!({"id": id, "type": format!("tim.group.{kind}"), "schema_version": 1,
        "sdk_app_id": "1400000000", "group_id": "g", "group_type": group_type,
        "received_at": "2026-01-01T00:00:00.000Z", stamp: time});
    if kind == "snapshot" {
        body["source"] = json!("reconciler");
    }
    for (k, v) in data.as_object().unwrap() {
        body[k] = v.clone();
    }
    InEvent::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
}

fn ev(id: &str, kind: &str, time: u64, data: Value) -> InEvent {
    event(id, "Public", kind, time, data)
}

/// Tencent's group "g" at `s`: members o (Owner), a (Admin, card "A"), b (Member).
fn snapshot(id: &str, s: u64, members_complete: bool) -> InEvent {
    ev(
        id,
        "snapshot",
        s,
        json!({"name": "tencent", "introduction": "intro", "notification": "note",
            "face_url": "https://example.com/f.png", "owner": "o",
            "custom": {"level": "3"}, "attrs": {"topic": "hiking"},
            "members": [{"account": "o", "role": "Owner"},
                {"account": "a", "role": "Admin", "name_card": "A"},
                {"account": "b", "role": "Member"}],
            "member_num": 3, "members_complete": members_complete}),
    )
}

fn fold(events: &[&InEvent]) -> (GroupState, Vec<Outcome>) {
    let mut g = Group::default();
    let outcomes = events.iter().map(|e| g.apply(e, RULES)).collect();
    (g.doc.expect("a live group"), outcomes)
}

fn accounts(d: &GroupState) -> Vec<&str> {
    d.members.keys().map(String::as_str).collect()
}

#[test]
fn a_snapshot_is_a_state_type_with_its_stamp_as_time() {
    assert!(is_state_type(
        crate::ingress::commands::event_types::GROUP_SNAPSHOT
    ));
    assert_eq!(snapshot("s", 50, true).time, Some(50));
    let unstamped = json!({"id": "x", "type": "tim.group.snapshot", "group_id": "g",
        "event_time_ms": 50});
    assert!(InEvent::parse(&serde_json::to_vec(&unstamped).unwrap()).is_err());
}

#[test]
fn a_snapshot_makes_an_incomplete_group_complete_and_equal_to_tencents() {
    let old = [
        ev(
            "1",
            "info_changed",
            10,
            json!({"changes": {"name": "old", "custom": {"gone": "x"}}}),
        ),
        ev("2", "member_joined", 11, json!({"members": ["left_unseen"]})),
        ev(
            "3",
            "attr_changed",
            12,
            json!({"option_type": "modify", "attrs": {"stale": "1"}}),
        ),
    ];
    let (d, outcomes) = fold(&[&old[0], &old[1], &old[2], &snapshot("s", 50, true)]);
    assert_eq!(outcomes[3], Outcome::Applied);
    assert!(d.complete);
    assert_eq!(d.field_times.created, Some(50));
    assert_eq!(d.name.as_deref(), Some("tencent"));
    assert_eq!(d.introduction.as_deref(), Some("intro"));
    assert_eq!(d.notification.as_deref(), Some("note"));
    assert_eq!(d.face_url.as_deref(), Some("https://example.com/f.png"));
    assert_eq!(d.owner.as_deref(), Some("o"));
    assert_eq!(d.custom, [("level".to_string(), "3".to_string())].into());
    assert_eq!(d.attrs, [("topic".to_string(), "hiking".to_string())].into());
    assert_eq!(accounts(&d), ["a", "b", "o"]);
    assert_eq!(d.members["a"].role.as_deref(), Some("Admin"));
    assert_eq!(d.members["a"].name_card.as_deref(), Some("A"));
    assert_eq!(d.members["o"].role.as_deref(), Some("Owner"));
    assert_eq!(d.member_count, 3);
    assert_eq!(d.updated_at, "1970-01-01T00:00:00.050Z");
    // The same snapshot folded into nothing gives the same document, whatever came before.
    let (alone, _) = fold(&[&snapshot("s", 50, true)]);
    let mut without_history = d.clone();
    without_history.field_times = alone.field_times.clone();
    assert_eq!(without_history, alone);
}

#[test]
fn a_callback_newer_than_the_stamp_is_kept_in_either_arrival_order() {
    let newer = [
        ev(
            "n1",
            "info_changed",
            60,
            json!({"changes": {"name": "renamed", "custom": {"level": "4"}}}),
        ),
        ev("n2", "member_exited", 61, json!({"members": ["b"]})),
        ev("n3", "member_joined", 62, json!({"members": ["c"]})),
        ev(
            "n4",
            "member_changed",
            63,
            json!({"member": "a", "role": "Member"}),
        ),
        ev(
            "n5",
            "attr_changed",
            64,
            json!({"option_type": "modify", "attrs": {"mood": "calm"}}),
        ),
    ];
    let snap = snapshot("s", 50, true);
    let mut after: Vec<&InEvent> = vec![&snap];
    after.extend(newer.iter());
    let mut before: Vec<&InEvent> = newer.iter().collect();
    before.push(&snap);
    let (d1, _) = fold(&after);
    let (d2, _) = fold(&before);
    for d in [&d1, &d2] {
        assert_eq!(d.name.as_deref(), Some("renamed"));
        assert_eq!(d.custom["level"], "4");
        assert_eq!(accounts(d), ["a", "c", "o"]);
        assert_eq!(d.members["a"].role.as_deref(), Some("Member"));
        assert_eq!(d.attrs.len(), 2);
        assert_eq!(d.member_count, 3);
        assert_eq!(d.introduction.as_deref(), Some("intro"));
    }
    // A member there by a newer change (a member change for an account not yet known starts
    // its membership at 63) still takes the name card the snapshot read: in either order.
    assert_eq!(d1.members["a"].name_card.as_deref(), Some("A"));
    assert_eq!(d2.members["a"].name_card.as_deref(), Some("A"));
    // A member who joined after the stamp (a join carries no role) takes the role read.
    assert_eq!(d1.members["c"].role, d2.members["c"].role);
    assert_eq!(d1.name, d2.name);
    assert_eq!(accounts(&d1), accounts(&d2));
    assert_eq!(d1.attrs, d2.attrs);
    assert_eq!(d1.custom, d2.custom);
}

#[test]
fn an_older_callback_arriving_after_the_snapshot_does_not_undo_it() {
    let older = [
        ev(
            "o1",
            "info_changed",
            40,
            json!({"changes": {"name": "older", "custom": {"level": "1"}}}),
        ),
        ev("o2", "member_exited", 41, json!({"members": ["a"]})),
        ev("o3", "member_joined", 42, json!({"members": ["z"]})),
        ev(
            "o4",
            "member_changed",
            43,
            json!({"member": "b", "role": "Admin", "name_card": "B"}),
        ),
        ev("o5", "attr_changed", 44, json!({"option_type": "clear"})),
        ev("o6", "owner_changed", 45, json!({"new_owner": "b"})),
        ev(
            "o7",
            "created",
            5,
            json!({"owner": "b", "name": "first", "members": ["b", "y"]}),
        ),
        ev(
            "o8",
            "member_changed",
            46,
            json!({"member": "q", "role": "Admin"}),
        ),
        ev(
            "o9",
            "info_changed",
            47,
            json!({"changes": {"custom": {"new_key": "v"}}}),
        ),
    ];
    let snap = snapshot("s", 50, true);
    let (expected, _) = fold(&[&snap]);
    let mut events = vec![&snap];
    events.extend(older.iter());
    let (d, outcomes) = fold(&events);
    assert!(outcomes[1..].iter().all(|o| *o == Outcome::Stale), "{outcomes:?}");
    assert_eq!(d, expected);
}

#[test]
fn an_older_snapshot_arriving_after_a_newer_one_changes_nothing() {
    let newer = snapshot("s2", 50, true);
    let older = ev(
        "s1",
        "snapshot",
        40,
        json!({"name": "before", "owner": "x", "custom": {"k": "v"}, "attrs": {"a": "b"},
            "members": [{"account": "x", "role": "Owner"}, {"account": "a", "role": "Member"}],
            "member_num": 2, "members_complete": true}),
    );
    let (expected, _) = fold(&[&newer]);
    let (d, outcomes) = fold(&[&newer, &older]);
    assert_eq!(outcomes[1], Outcome::Stale);
    assert_eq!(d, expected);
}

#[test]
fn members_the_snapshot_does_not_list_go_only_with_a_complete_list() {
    let held = ev("1", "member_joined", 10, json!({"members": ["x", "o"]}));
    let (partial, _) = fold(&[&held, &snapshot("s", 50, false)]);
    assert_eq!(accounts(&partial), ["a", "b", "o", "x"]);
    assert_eq!(partial.member_count, 4);
    assert!(
        !partial.complete,
        "a partial member list leaves the group incomplete"
    );
    let (whole, _) = fold(&[&held, &snapshot("s", 50, true)]);
    assert_eq!(accounts(&whole), ["a", "b", "o"]);
    // x left at 50: the complete list's time says so for every account not listed.
    assert_eq!(whole.field_times.members_listed, Some(50));
    assert!(!whole.field_times.members.contains_key("x"));
    // x joined again after the stamp: it stays.
    let rejoined = ev("2", "member_joined", 55, json!({"members": ["x"]}));
    let (d, _) = fold(&[&held, &rejoined, &snapshot("s", 50, true)]);
    assert_eq!(accounts(&d), ["a", "b", "o", "x"]);
}

#[test]
fn an_avchatroom_gets_member_num_absolute_then_only_later_deltas() {
    let room = |id: &str, kind: &str, t: u64, data: Value| event(id, "AVChatRoom", kind, t, data);
    let exits = room("1", "member_exited", 10, json!({"members": ["p", "q"]}));
    let snap = room(
        "s",
        "snapshot",
        50,
        json!({"name": "live", "owner": "o", "custom": {}, "attrs": {}, "member_num": 120}),
    );
    let old_join = room("2", "member_joined", 45, json!({"members": ["r"]}));
    let new_join = room("3", "member_joined", 55, json!({"members": ["s", "t"]}));
    let new_exit = room("4", "member_exited", 56, json!({"members": ["u"]}));
    let (d, outcomes) = fold(&[&exits, &snap, &old_join, &new_join, &new_exit]);
    assert!(!d.members_tracked);
    assert!(d.members.is_empty());
    assert!(d.complete);
    assert_eq!(outcomes[2], Outcome::Stale);
    assert_eq!(d.member_count, 121);
    assert_eq!(d.field_times.member_count, Some(50));
    // An older snapshot arriving late changes no count.
    let late = room("s0", "snapshot", 30, json!({"member_num": 7}));
    let (d2, _) = fold(&[&exits, &snap, &old_join, &new_join, &new_exit, &late]);
    assert_eq!(d2.member_count, 121);
}

#[test]
fn a_snapshot_listing_more_than_the_limit_untracks_with_member_num() {
    let list: Vec<Value> = (0..12)
        .map(|i| json!({"account": format!("m{i}"), "role": "Member"}))
        .collect();
    let snap = ev(
        "s",
        "snapshot",
        50,
        json!({"custom": {}, "attrs": {}, "members": list, "member_num": 12, "members_complete": true}),
    );
    let (d, _) = fold(&[&snap]);
    assert!(!d.members_tracked);
    assert_eq!(d.member_count, 12);
    assert!(d.complete);
}

#[test]
fn a_destruction_after_the_stamp_ends_the_snapshot_and_one_before_does_not() {
    let snap = snapshot("s", 50, true);
    let destroyed = ev("d", "destroyed", 60, json!({}));
    let mut g = Group::default();
    g.apply(&snap, RULES);
    g.apply(&destroyed, RULES);
    assert!(g.doc.is_none());
    assert_eq!(g.apply(&snapshot("s2", 55, true), RULES), Outcome::Stale);
    let (d, _) = fold(&[&ev("d0", "destroyed", 40, json!({})), &snap]);
    assert!(d.complete);
    assert_eq!(d.field_times.destroyed, Some(40));
}

#[test]
fn callbacks_around_a_snapshot_fold_to_one_document_in_every_arrival_order() {
    let events = [
        ev("1", "member_joined", 10, json!({"members": ["a", "x"]})),
        ev(
            "2",
            "info_changed",
            20,
            json!({"changes": {"name": "n1", "custom": {"k": "1"}}}),
        ),
        ev("3", "member_joined", 40, json!({"members": ["y"]})),
        snapshot("s", 50, true),
        ev("4", "member_exited", 60, json!({"members": ["b"]})),
        ev(
            "5",
            "info_changed",
            70,
            json!({"changes": {"notification": "n2"}}),
        ),
        ev(
            "6",
            "attr_changed",
            80,
            json!({"option_type": "modify", "attrs": {"mood": "calm"}}),
        ),
    ];
    let (expected, _) = fold(&events.iter().collect::<Vec<_>>());
    assert_eq!(accounts(&expected), ["a", "o"]);
    assert_eq!(expected.notification.as_deref(), Some("n2"));
    assert!(!expected.custom.contains_key("k"));
    let mut order: Vec<usize> = (0..events.len()).collect();
    // Every permutation, by Heap's algorithm.
    fn permute(k: usize, order: &mut Vec<usize>, seen: &mut dyn FnMut(&[usize])) {
        if k <= 1 {
            return seen(order);
        }
        for i in 0..k {
            permute(k - 1, order, seen);
            order.swap(if k.is_multiple_of(2) { i } else { 0 }, k - 1);
        }
    }
    let mut count = 0;
    permute(events.len(), &mut order, &mut |o| {
        let (d, _) = fold(&o.iter().map(|i| &events[*i]).collect::<Vec<_>>());
        assert_eq!(d, expected, "arrival order {o:?}");
        count += 1;
    });
    assert_eq!(count, 5040);
}
