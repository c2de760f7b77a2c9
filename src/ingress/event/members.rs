//! The members of an event a command writes itself (`changes`, `members`, `msg_seq`, ...), in
//! the order written.
//!
//! The relay chooses these names, so a name is found by comparing a few short strings instead of
//! being hashed into a `serde_json::Map` (an `IndexMap` with SipHash): on the hot path, building
//! `data` and `changes` as maps cost more than reading the body's fields into them.

use std::ops::Index;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// An object of members named by the relay, written as a JSON object in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Members(Vec<(&'static str, Member)>);

/// One member: a JSON value (what Tencent sent, or made from it), or an object of members.
#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    Value(Value),
    Object(Members),
}

impl From<Value> for Member {
    fn from(value: Value) -> Self {
        Member::Value(value)
    }
}

impl From<Members> for Member {
    fn from(members: Members) -> Self {
        Member::Object(members)
    }
}

impl Members {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a member. One of that name already there keeps its place and takes the new value,
    /// as in a map.
    pub fn insert(&mut self, name: &'static str, member: impl Into<Member>) {
        let member = member.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = member,
            None => self.0.push((name, member)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Member> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, m)| m)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The members in the order they are written.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Member)> {
        self.0.iter().map(|(n, m)| (*n, m))
    }
}

/// The value member of that name, like indexing a `serde_json::Map`.
///
/// # Panics
/// If there is no such member, or it is an object of members.
impl Index<&str> for Members {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        match self.get(name) {
            Some(Member::Value(value)) => value,
            Some(Member::Object(_)) => panic!("member {name:?} is an object of members, not a value"),
            None => panic!("no member {name:?}"),
        }
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, member) in self.iter() {
            map.serialize_entry(name, member)?;
        }
        map.end()
    }
}

impl Serialize for Member {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Value(value) => value.serialize(serializer),
            Member::Object(members) => members.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_are_written_in_order_and_a_repeated_name_keeps_its_place() {
        let mut inner = Members::new();
        inner.insert("name", json!("n"));
        inner.insert("custom", json!({"b": "2", "a": "1"}));
        let mut data = Members::new();
        data.insert("z", json!(1));
        data.insert("changes", inner);
        data.insert("a", json!([true]));
        data.insert("z", json!(2));
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"z":2,"changes":{"name":"n","custom":{"b":"2","a":"1"}},"a":[true]}"#
        );
        assert_eq!(data["a"], json!([true]));
        assert_eq!(serde_json::to_string(&Members::new()).unwrap(), "{}");
    }
}
