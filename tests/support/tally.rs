//! The topic read back and compared with what the load sent: lost, duplicated and reordered
//! events, per relay and across relays.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::Value;

use super::broker::Reader;
use super::load::{group_id, Sent};

/// One record read back: where it is and what it says.
pub struct Found {
    pub partition: i32,
    pub offset: i64,
    pub group_id: Option<String>,
    pub marker: Option<String>,
}

impl Found {
    /// Callback `g<g>-s<s>` of group `g` at `offset` of partition 0 (the tallies' self-tests).
    pub fn marked(prefix: &str, offset: i64, g: usize, s: u64) -> Found {
        Found {
            partition: 0,
            offset,
            group_id: Some(group_id(prefix, g)),
            marker: Some(format!("g{g}-s{s}")),
        }
    }
}

/// Reads every partition of the topic from the beginning up to its high watermark, by
/// partition; a read that runs out of `within` is a problem. Watermarks are asked again for up
/// to `retry_watermarks` (a leader that just moved).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    retry_watermarks: Duration,
    within: Duration,
    problems: &mut Vec<String>,
) -> Vec<Vec<Found>> {
    let mut records: Vec<Vec<Found>> = (0..partitions).map(|_| Vec::new()).collect();
    let all: Vec<i32> = (0..partitions).collect();
    let read = Reader::new(bootstrap, topic, "tally").read(&all, retry_watermarks, within, |m| {
        let value: Value = m
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or_default();
        let text = |v: &Value| v.as_str().map(String::from);
        records[m.partition() as usize].push(Found {
            partition: m.partition(),
            offset: m.offset(),
            group_id: text(&value["group_id"]),
            marker: text(&value["changes"]["name"]),
        });
    });
    if let Err(e) = read {
        problems.push(e);
    }
    records
}

#[derive(Default)]
pub struct Tally {
    pub sent: usize,
    pub ok: usize,
    pub ok_by_relay: Vec<usize>,
    pub in_topic: usize,
    pub lost: usize,
    pub duplicates: usize,
    /// First copies behind a later callback of the same group that the same relay answered.
    pub out_of_order_one_relay: usize,
    /// First copies behind a later callback of the same group, whichever relay answered it.
    pub out_of_order_across: usize,
    /// Answered OK, but later than the budget.
    pub slow: usize,
    pub slowest: Duration,
    /// Out of order across the relays, by the second of the timeline the event was sent in.
    pub across_by_second: BTreeMap<u64, usize>,
    pub strange: usize,
    pub examples: Vec<String>,
}

impl Tally {
    /// When the reordering across relays happened: "12-19 s: 430, 35 s: 22" (seconds of the
    /// scenario's timeline, runs of consecutive seconds merged).
    pub fn across_when(&self) -> String {
        let mut runs: Vec<(u64, u64, usize)> = Vec::new();
        for (&sec, &n) in &self.across_by_second {
            match runs.last_mut() {
                Some((_, end, count)) if *end + 1 == sec => {
                    *end = sec;
                    *count += n;
                }
                _ => runs.push((sec, sec, n)),
            }
        }
        let runs: Vec<String> = runs
            .iter()
            .map(|&(a, b, n)| match a == b {
                true => format!("{a} s: {n}"),
                false => format!("{a}-{b} s: {n}"),
            })
            .collect();
        match runs.is_empty() {
            true => "none".into(),
            false => runs.join(", "),
        }
    }

    /// Keeps the first few findings of each run readable.
    fn example(&mut self, text: String) {
        if self.examples.len() < 12 {
            self.examples.push(text);
        }
    }
}

pub fn parse_marker(marker: &str) -> Option<(usize, u64)> {
    let (g, s) = marker.strip_prefix('g')?.split_once("-s")?;
    Some((g.parse().ok()?, s.parse().ok()?))
}

/// What the tally needs to know of the load: its groups' prefix, the relays' names (one relay:
/// the findings do not name it) and the budget for an answer.
pub struct Shape<'a> {
    pub prefix: &'a str,
    pub relays: &'a [&'a str],
    pub budget: Duration,
}

impl Shape<'_> {
    fn within(&self, relay: usize) -> String {
        match self.relays.len() > 1 {
            true => format!(" within relay {}", self.relays[relay]),
            false => String::new(),
        }
    }

    fn by(&self, relay: usize) -> String {
        match self.relays.len() > 1 {
            true => format!(" by relay {}", self.relays[relay]),
            false => String::new(),
        }
    }
}

/// Compares what was answered OK with what the topic holds. Order is judged per group on the
/// first copy of each OK-answered event (later copies are duplicates, which the promise
/// allows): once among the events one relay answered, once among all of them.
pub fn tally(sent: &[Sent], partitions: &[Vec<Found>], shape: &Shape<'_>) -> Tally {
    let answered: HashMap<(usize, u64), &Sent> = sent.iter().map(|s| ((s.group, s.seq), s)).collect();
    let mut t = Tally {
        sent: sent.len(),
        ok: sent.iter().filter(|s| s.ok()).count(),
        ok_by_relay: vec![0; shape.relays.len()],
        ..Tally::default()
    };
    for s in sent.iter().filter(|s| s.ok()) {
        t.ok_by_relay[s.relay] += 1;
        if s.took > shape.budget {
            t.slow += 1;
        }
        t.slowest = t.slowest.max(s.took);
    }
    let mut seen = HashSet::new();
    for records in partitions {
        let mut last_any: HashMap<usize, u64> = HashMap::new();
        let mut last_by_relay: HashMap<(usize, usize), u64> = HashMap::new();
        for r in records {
            let at = format!("partition {} offset {}", r.partition, r.offset);
            let Some((group, seq)) = r.marker.as_deref().and_then(parse_marker) else {
                t.strange += 1;
                t.example(format!("record at {at} is not one of this test's callbacks"));
                continue;
            };
            if r.group_id.as_deref() != Some(group_id(shape.prefix, group).as_str()) {
                t.strange += 1;
                t.example(format!("g{group}-s{seq} at {at} carries group {:?}", r.group_id));
            }
            if !seen.insert((group, seq)) {
                t.duplicates += 1;
                continue;
            }
            let Some(s) = answered.get(&(group, seq)).filter(|s| s.ok()) else {
                continue;
            };
            let relay = s.relay;
            match last_by_relay.get(&(relay, group)) {
                Some(&before) if before > seq => {
                    t.out_of_order_one_relay += 1;
                    t.example(format!(
                        "out of order{}: g{group}-s{seq} first at {at}, after g{group}-s{before}",
                        shape.within(relay)
                    ));
                }
                _ => {
                    last_by_relay.insert((relay, group), seq);
                }
            }
            match last_any.get(&group) {
                Some(&before) if before > seq => {
                    t.out_of_order_across += 1;
                    *t.across_by_second.entry(s.at.as_secs()).or_default() += 1;
                }
                _ => {
                    last_any.insert(group, seq);
                }
            }
        }
    }
    t.in_topic = seen.len();
    let mut lost: Vec<_> = sent
        .iter()
        .filter(|s| s.ok() && !seen.contains(&(s.group, s.seq)))
        .collect();
    lost.sort_by_key(|s| (s.group, s.seq));
    t.lost = lost.len();
    for s in lost {
        t.example(format!(
            "lost: g{}-s{} was answered OK{}",
            s.group,
            s.seq,
            shape.by(s.relay)
        ));
    }
    t
}
