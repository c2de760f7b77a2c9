//! One group as the fold holds it ([`Group`]): whether an event applies at all (its type, a
//! re-delivery, older than the group's destruction), and what a destruction leaves.

use super::changes::fold_into;
use super::{FoldRules, GroupState, InEvent, Outcome};
use crate::ingress::commands::event_types as types;

/// One group as the fold holds it: its document (None: destroyed, or never seen), when its
/// last life ended, and the ids of its latest events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub doc: Option<GroupState>,
    /// While the group is a tombstone: when it was destroyed.
    pub destroyed_at: Option<u64>,
    pub recent: Recent,
}

/// The ids of a group's latest events, newest last, as 64-bit hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent(pub Vec<u64>);

impl Recent {
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(&id_hash(id))
    }

    pub fn push(&mut self, id: &str, keep: usize) {
        self.0.push(id_hash(id));
        if self.0.len() > keep {
            let extra = self.0.len() - keep;
            self.0.drain(..extra);
        }
    }

    /// The header form: hex hashes, comma separated.
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(|h| format!("{h:016x}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_header(text: &str) -> Self {
        Recent(
            text.split(',')
                .filter_map(|h| u64::from_str_radix(h.trim(), 16).ok())
                .collect(),
        )
    }
}

/// FNV-1a: a fixed hash, so the ids kept in the state topic mean the same to every version.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

impl Group {
    /// Folds one event into the group.
    pub fn apply(&mut self, event: &InEvent, rules: FoldRules) -> Outcome {
        if !is_state_type(&event.event_type) {
            return Outcome::NotState;
        }
        if self.recent.contains(&event.id) {
            return Outcome::Duplicate;
        }
        self.recent.push(&event.id, rules.recent_ids);
        let floor = self
            .doc
            .as_ref()
            .map_or(self.destroyed_at, |d| d.field_times.destroyed);
        if let (Some(t), Some(f)) = (event.time, floor) {
            if t <= f {
                return Outcome::Stale;
            }
        }
        if event.event_type == types::GROUP_DESTROYED {
            return self.destroy(event.time);
        }
        let fresh = self.doc.is_none();
        let doc = self.doc.get_or_insert_with(|| {
            let mut d = GroupState::new(&event.group_id);
            d.field_times.destroyed = floor;
            d
        });
        if !fold_into(doc, event, rules) && !fresh {
            return Outcome::Stale;
        }
        let doc = self.doc.as_mut().expect("set above");
        let stamp = event
            .time
            .map(rfc3339_ms)
            .unwrap_or_else(|| event.received_at.clone());
        if stamp > doc.updated_at {
            doc.updated_at = stamp;
        }
        self.destroyed_at = None;
        Outcome::Applied
    }

    /// The group was destroyed at `time`: everything it holds from before then goes. What a
    /// later event already set (its next life) stays; with nothing left, it is a tombstone.
    fn destroy(&mut self, time: Option<u64>) -> Outcome {
        let Some(doc) = self.doc.as_mut() else {
            let newer = match (time, self.destroyed_at) {
                (Some(t), Some(f)) => t > f,
                _ => true,
            };
            if newer {
                self.destroyed_at = time.or(self.destroyed_at);
            }
            return Outcome::Applied;
        };
        let Some(t) = time else {
            // In topic order, the destruction comes after everything the group holds.
            self.doc = None;
            return Outcome::Applied;
        };
        let newer = |at: Option<u64>| at.is_some_and(|a| a > t);
        let ft = &mut doc.field_times;
        ft.destroyed = Some(t);
        if !newer(ft.created) {
            doc.complete = false;
            ft.created = None;
        }
        for (value, at) in [
            (&mut doc.name, &mut ft.name),
            (&mut doc.introduction, &mut ft.introduction),
            (&mut doc.notification, &mut ft.notification),
            (&mut doc.face_url, &mut ft.face_url),
            (&mut doc.owner, &mut ft.owner),
        ] {
            if !newer(*at) {
                *value = None;
                *at = None;
            }
        }
        if !newer(ft.member_count) {
            ft.member_count = None;
        }
        if !newer(ft.custom_listed) {
            ft.custom_listed = None;
        }
        if !newer(ft.members_listed) {
            ft.members_listed = None;
        }
        ft.custom.retain(|_, at| *at > t);
        doc.custom.retain(|k, _| ft.custom.contains_key(k));
        ft.attrs.retain(|_, at| *at > t);
        doc.attrs.retain(|k, _| ft.attrs.contains_key(k));
        if !newer(ft.attrs_cleared) {
            ft.attrs_cleared = None;
        }
        ft.members.retain(|_, m| newer(m.presence));
        doc.members.retain(|a, _| ft.members.contains_key(a));
        if doc.members_tracked {
            doc.member_count = doc.members.len() as i64;
        }
        let anything_left = doc.complete
            || doc.name.is_some()
            || doc.introduction.is_some()
            || doc.notification.is_some()
            || doc.face_url.is_some()
            || doc.owner.is_some()
            || !doc.custom.is_empty()
            || !doc.attrs.is_empty()
            || !ft.members.is_empty();
        if !anything_left {
            self.doc = None;
            self.destroyed_at = Some(t);
        }
        Outcome::Applied
    }
}

/// The event types the state follows.
pub fn is_state_type(event_type: &str) -> bool {
    matches!(
        event_type,
        types::GROUP_CREATED
            | types::GROUP_INFO_CHANGED
            | types::MEMBER_JOINED
            | types::MEMBER_EXITED
            | types::OWNER_CHANGED
            | types::MEMBER_CHANGED
            | types::GROUP_ATTR_CHANGED
            | types::GROUP_DESTROYED
            | types::GROUP_SNAPSHOT
    )
}
