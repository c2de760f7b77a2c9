//! The current state of one group, folded from its events (`tim-relay materialize`).
//!
//! Every field is a last-writer-wins register ordered by the `event_time_ms` of the event that
//! set it; `field_times` keeps those times, so the fold gives the same document whatever order
//! Kafka and Tencent deliver the events in. On equal times the event later in the topic wins.
//! Events without `event_time_ms` are applied in topic order: they always write, and leave the
//! field's time as it was. A re-delivered event is recognized by its `id` (the last
//! [`FoldRules::recent_ids`] ids of each group are kept) and changes nothing.
//!
//! A destroyed group is a tombstone that remembers when it was destroyed: an event from before
//! that time never brings the group back, one from after it starts the group's next life.
//!
//! The parts: the document and its per-field times (`document.rs`), the event as the fold reads
//! it (`event.rs`), one group and whether an event applies to it (`group.rs`), and what each
//! event type changes (`changes.rs`), with the reconciler's snapshot apart (`snapshot.rs`); the tests are in `tests.rs`.

mod changes;
mod document;
mod event;
mod group;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

pub use document::{FieldTimes, GroupState, Member, MemberTimes};
pub use event::InEvent;
pub use group::{is_state_type, Group, Recent};

/// Version of the state document; bumped on any change a reader must know of.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// The group type whose members Tencent does not report one by one in a way worth tracking.
const UNTRACKED_TYPE: &str = "AVChatRoom";

/// Limits of the fold, from the materializer's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldRules {
    /// `RELAY_STATE_MAX_MEMBERS`: beyond it a group's members are no longer tracked.
    pub max_members: usize,
    /// `RELAY_STATE_RECENT_IDS`: how many event ids per group are kept to recognize duplicates.
    pub recent_ids: usize,
}

impl Default for FoldRules {
    fn default() -> Self {
        Self {
            max_members: 1000,
            recent_ids: 16,
        }
    }
}

/// What folding one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The document changed.
    Applied,
    /// The same event (by `id`) was applied before.
    Duplicate,
    /// Every change it carried was older than what the group holds, or than its destruction.
    Stale,
    /// A type the state does not follow (group full, topics, member online state).
    NotState,
}

impl Outcome {
    /// The `outcome` label of `tim_relay_state_events_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::NotState => "not_state",
        }
    }
}

/// Whether a change at `time` may overwrite a field last changed at `field`: later or equal
/// times win (equal: the later in the topic), and an event without time always writes.
fn wins(time: Option<u64>, field: Option<u64>) -> bool {
    match (time, field) {
        (None, _) | (_, None) => true,
        (Some(t), Some(f)) => t >= f,
    }
}

/// The time a field keeps after a write: the event's, or the field's own when it had none.
fn after(time: Option<u64>, field: Option<u64>) -> Option<u64> {
    time.or(field)
}

/// Sets an optional string field by last-writer-wins; whether it changed anything.
fn set_field(value: &mut Option<String>, at: &mut Option<u64>, new: Option<&str>, time: Option<u64>) -> bool {
    let Some(new) = new else { return false };
    if !wins(time, *at) {
        return false;
    }
    *value = Some(new.to_string());
    *at = after(time, *at);
    true
}
