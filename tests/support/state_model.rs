//! The group-state model shared by `tests/state.rs` and `tests/cluster_state.rs`: seeded random
//! histories of group events (reordered and repeated on delivery) and the state each group must
//! fold to. Included by both with `#[path]`; a test crate cannot use another's items.
// Each test crate uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Self {
        let seed = std::env::var("STATE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("STATE_TEST_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the group really is, as far as its events tell: the expected fold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    pub complete: bool,
    pub name: Option<String>,
    pub introduction: Option<String>,
    pub owner: Option<String>,
    pub custom: BTreeMap<String, String>,
    pub attrs: BTreeMap<String, String>,
    pub members: BTreeMap<String, (Option<String>, Option<String>)>,
    pub member_count: i64,
    pub tracked: bool,
}

impl Truth {
    /// The same projection of a state document.
    pub fn of(doc: &Value) -> Truth {
        let text = |f: &str| doc[f].as_str().map(str::to_string);
        let map = |f: &str| -> BTreeMap<String, String> {
            doc[f]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        };
        Truth {
            complete: doc["complete"].as_bool().unwrap(),
            name: text("name"),
            introduction: text("introduction"),
            owner: text("owner"),
            custom: map("custom"),
            attrs: map("attrs"),
            members: doc["members"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, m)| {
                    let f = |f: &str| m[f].as_str().map(str::to_string);
                    (k.clone(), (f("role"), f("name_card")))
                })
                .collect(),
            member_count: doc["member_count"].as_i64().unwrap(),
            tracked: doc["members_tracked"].as_bool().unwrap(),
        }
    }
}

/// Random group histories, the events the relay would have written for them, and the truth
/// at the end.
pub struct Histories {
    /// Per group, its events in the order they happened.
    pub events: Vec<(String, Vec<Value>)>,
    pub truth: HashMap<String, Option<Truth>>,
}

pub fn histories(rng: &mut Rng, groups: usize, prefix: &str) -> Histories {
    let mut out = Histories {
        events: Vec::new(),
        truth: HashMap::new(),
    };
    for g in 0..groups {
        let group_id = format!("@TGS#{prefix}{g}");
        let av = rng.chance(10);
        let group_type = if av { "AVChatRoom" } else { "Public" };
        let mut t: u64 = 1_700_000_000_000 + rng.below(1_000_000);
        let mut events = Vec::new();
        let mut next_member = 0;
        let event = |kind: &str, t: u64, data: Value| {
            let mut e = json!({"id": uuid::Uuid::new_v4().to_string(), "type": format!("tim.group.{kind}"),
                "schema_version": 1, "sdk_app_id": "1400000000", "group_id": group_id,
                "group_type": group_type, "operator": "admin", "event_time_ms": t,
                "received_at": "2026-11-26T00:00:00.000Z"});
            for (k, v) in data.as_object().unwrap() {
                e[k] = v.clone();
            }
            e
        };
        let mut truth: Option<Truth> = None;
        let mut alive = true;
        let create = |rng: &mut Rng, t: u64, next_member: &mut usize, truth: &mut Option<Truth>| {
            let n = rng.below(4) as usize;
            let members: Vec<String> = (0..n)
                .map(|_| {
                    *next_member += 1;
                    format!("u{next_member}")
                })
                .collect();
            let name = format!("name-{t}");
            let mut s = Truth {
                complete: true,
                name: Some(name.clone()),
                owner: Some("owner0".into()),
                custom: BTreeMap::from([("level".to_string(), "1".to_string())]),
                tracked: !av,
                member_count: n as i64,
                ..Truth::default()
            };
            if !av {
                s.members = members.iter().map(|m| (m.clone(), (None, None))).collect();
            }
            *truth = Some(s);
            json!({"owner": "owner0", "name": name, "members": members, "custom": {"level": "1"}})
        };
        if av || rng.chance(70) {
            let data = create(rng, t, &mut next_member, &mut truth);
            events.push(event("created", t, data));
        }
        let ops = 2 + rng.below(10);
        for _ in 0..ops {
            t += 1 + rng.below(1000);
            if !alive {
                if av || !rng.chance(50) {
                    break;
                }
                alive = true;
                let data = create(rng, t, &mut next_member, &mut truth);
                events.push(event("created", t, data));
                continue;
            }
            let s = truth.get_or_insert_with(|| Truth {
                tracked: !av,
                ..Truth::default()
            });
            let present: Vec<String> = s.members.keys().cloned().collect();
            match rng.below(100) {
                0..=19 => {
                    let mut changes = json!({});
                    if rng.chance(60) {
                        let name = format!("name-{t}");
                        changes["name"] = json!(name);
                        s.name = Some(name);
                    }
                    if rng.chance(40) {
                        let intro = format!("intro-{t}");
                        changes["introduction"] = json!(intro);
                        s.introduction = Some(intro);
                    }
                    if rng.chance(40) {
                        let key = format!("k{}", rng.below(3));
                        changes["custom"] = json!({key.clone(): t.to_string()});
                        s.custom.insert(key, t.to_string());
                    }
                    events.push(event("info_changed", t, json!({"changes": changes})));
                }
                20..=39 => {
                    let n = 1 + rng.below(3) as usize;
                    let joined: Vec<String> = (0..n)
                        .map(|_| {
                            next_member += 1;
                            format!("u{next_member}")
                        })
                        .collect();
                    s.member_count += n as i64;
                    if s.tracked {
                        for m in &joined {
                            s.members.insert(m.clone(), (None, None));
                        }
                    }
                    events.push(event(
                        "member_joined",
                        t,
                        json!({"join_type": "Apply", "members": joined}),
                    ));
                }
                40..=54 if s.tracked && !present.is_empty() => {
                    let m = present[rng.below(present.len() as u64) as usize].clone();
                    s.members.remove(&m);
                    s.member_count -= 1;
                    events.push(event(
                        "member_exited",
                        t,
                        json!({"exit_type": "Quit", "members": [m]}),
                    ));
                }
                55..=64 if s.tracked && !present.is_empty() => {
                    let m = present[rng.below(present.len() as u64) as usize].clone();
                    let role = if rng.chance(50) { "Admin" } else { "Member" };
                    let card = format!("card-{t}");
                    s.members
                        .insert(m.clone(), (Some(role.into()), Some(card.clone())));
                    events.push(event(
                        "member_changed",
                        t,
                        json!({"member": m, "role": role, "name_card": card}),
                    ));
                }
                65..=72 => {
                    let owner = format!("owner{t}");
                    let old = s.owner.clone();
                    s.owner = Some(owner.clone());
                    events.push(event(
                        "owner_changed",
                        t,
                        json!({"old_owner": old, "new_owner": owner}),
                    ));
                }
                73..=86 => {
                    let key = format!("a{}", rng.below(3));
                    let (option, attrs) = match rng.below(4) {
                        0 => {
                            s.attrs = BTreeMap::from([(key.clone(), t.to_string())]);
                            ("set", json!({key: t.to_string()}))
                        }
                        1 => {
                            s.attrs.insert(key.clone(), t.to_string());
                            ("modify", json!({key: t.to_string()}))
                        }
                        2 => {
                            s.attrs.remove(&key);
                            ("delete", json!({key: null}))
                        }
                        _ => {
                            s.attrs.clear();
                            ("clear", json!({}))
                        }
                    };
                    events.push(event(
                        "attr_changed",
                        t,
                        json!({"option_type": option, "attrs": attrs}),
                    ));
                }
                87..=92 => events.push(event("full", t, json!({}))),
                93..=96 => {
                    truth = None;
                    alive = false;
                    events.push(event("destroyed", t, json!({"owner": "owner0"})));
                }
                _ => events.push(event("member_state_changed", t, json!({"members": ["x"]}))),
            }
        }
        let only_not_state = events.iter().all(|e| {
            matches!(
                e["type"].as_str(),
                Some("tim.group.full" | "tim.group.member_state_changed")
            )
        });
        if only_not_state {
            truth = None;
        }
        out.truth.insert(group_id.clone(), truth);
        out.events.push((group_id, events));
    }
    out
}

/// The delivery: each group's events reordered (some moved up to three places later) and
/// some repeated a few places later, then all groups interleaved. Returns the records and
/// the number of repeats.
pub fn delivery(rng: &mut Rng, histories: &Histories) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut repeats = 0;
    let mut streams: Vec<(String, Vec<Value>)> = Vec::new();
    for (group_id, events) in &histories.events {
        let mut stream = events.clone();
        for i in 0..stream.len() {
            if rng.chance(30) {
                let to = (i + 1 + rng.below(3) as usize).min(stream.len() - 1);
                let e = stream.remove(i);
                stream.insert(to, e);
            }
        }
        let mut i = 0;
        while i < stream.len() {
            if rng.chance(15) {
                let to = (i + 1 + rng.below(5) as usize).min(stream.len());
                let copy = stream[i].clone();
                let state = !matches!(
                    copy["type"].as_str(),
                    Some("tim.group.full" | "tim.group.member_state_changed")
                );
                stream.insert(to, copy);
                // Repeats of events the state does not follow are counted as not_state.
                repeats += usize::from(state);
            }
            i += 1;
        }
        streams.push((group_id.clone(), stream));
    }
    let mut out = Vec::new();
    let mut cursors = vec![0usize; streams.len()];
    let mut open: Vec<usize> = (0..streams.len()).collect();
    while !open.is_empty() {
        let pick = rng.below(open.len() as u64) as usize;
        let s = open[pick];
        let (group_id, stream) = &streams[s];
        out.push((group_id.clone(), serde_json::to_vec(&stream[cursors[s]]).unwrap()));
        cursors[s] += 1;
        if cursors[s] == stream.len() {
            open.swap_remove(pick);
        }
    }
    (out, repeats)
}

/// The state topic read `read_committed` to its end: each key's last value (None: tombstone),
/// and how many records that took.
pub struct StateRead {
    pub last: std::collections::HashMap<String, Option<serde_json::Value>>,
    pub records: usize,
}

/// Reads the `partitions` of the state topic `state` to their committed end, within `within`.
pub fn read_state(bootstrap: &str, state: &str, partitions: i32, within: std::time::Duration) -> StateRead {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{state}.reader"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(state, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut open = partitions;
    let mut out = StateRead {
        last: Default::default(),
        records: 0,
    };
    let deadline = std::time::Instant::now() + within;
    while open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {state} took over {within:?}"
        );
        match consumer.poll(std::time::Duration::from_secs(1)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            // A leader that moved or metadata not ready yet passes (a topic just created, a
            // busy broker); the deadline above bounds it.
            Some(Err(e @ (KafkaError::MessageConsumption(_) | KafkaError::MetadataFetch(_)))) => {
                eprintln!("reading {state}: {e}; reading on");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Some(Err(e)) => panic!("reading {state}: {e}"),
            Some(Ok(m)) => {
                let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                out.records += 1;
                out.last
                    .insert(key, m.payload().map(|p| serde_json::from_slice(p).unwrap()));
            }
        }
    }
    out
}
