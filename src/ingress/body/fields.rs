//! A body's top-level fields, read from the JSON in one pass.
//!
//! A callback has a dozen fields. They are kept in a list and found by comparing names, which
//! costs less than hashing each name with SipHash into a `serde_json::Map` (an `IndexMap`) and
//! hashing it again on every lookup; names are borrowed from the body unless they hold escapes.
//! A body with many fields is moved into a `Map`, so that no body costs quadratic time. Each
//! value is still read into a `serde_json::Value`, exactly as reading the whole body into one
//! would: the reader accepts and refuses the same bodies, with the same errors.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::BodyError;

/// The top-level fields of a body.
#[derive(Debug)]
pub(super) enum Fields<'a> {
    Few(Few<'a>),
    Many(Map<String, Value>),
}

#[derive(Debug)]
pub(super) struct Few<'a> {
    /// In order of first appearance; a taken field leaves `None` behind (no shifting).
    list: Vec<Field<'a>>,
    /// One bit per [`tag`]: a name whose bit is clear is not in the list yet, and is added
    /// without looking through it.
    seen: u64,
    /// How many fields are not taken yet.
    left: usize,
}

#[derive(Debug)]
struct Field<'a> {
    /// [`tag`] of the name: most names are told apart by it alone.
    tag: u32,
    name: Cow<'a, str>,
    value: Option<Value>,
}

/// Most fields kept in the list; beyond, a `Map`.
const FEW: usize = 32;

/// A name's length and its first and last bytes, compared before the name itself.
fn tag(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let edge = |b: Option<&u8>| u32::from(b.copied().unwrap_or(0));
    (bytes.len() as u32).wrapping_shl(16) | edge(bytes.first()) << 8 | edge(bytes.last())
}

impl<'a> Fields<'a> {
    /// The object at the start of `raw` (its first byte that is not whitespace is `{`).
    pub(super) fn read(raw: &'a [u8]) -> Result<Self, BodyError> {
        let mut de = serde_json::Deserializer::from_slice(raw);
        let reserved = std::cell::Cell::new(false);
        let read = serde::Deserializer::deserialize_map(&mut de, read::TopLevel(&reserved))
            .and_then(|fields| de.end().map(|()| fields));
        if reserved.get() {
            // serde_json reads an object whose first key is one of its private names as
            // something else; let it, and say what it says.
            return Self::reference(raw);
        }
        read.map_err(|e| BodyError::NotJson(e.to_string()))
    }

    /// `raw` read into a `serde_json::Value`: the reading `read` must agree with.
    pub(super) fn reference(raw: &[u8]) -> Result<Self, BodyError> {
        match serde_json::from_slice(raw) {
            Ok(Value::Object(fields)) => Ok(Fields::Many(fields)),
            Ok(_) => Err(BodyError::NotAnObject),
            Err(e) => Err(BodyError::NotJson(e.to_string())),
        }
    }

    fn new() -> Self {
        Fields::Few(Few {
            list: Vec::with_capacity(16),
            seen: 0,
            left: 0,
        })
    }

    /// Adds a field as a JSON object read into a `Map` would: a repeated name keeps its first
    /// place and takes the new value.
    fn insert(&mut self, name: Cow<'a, str>, value: Value) {
        let few = match self {
            Fields::Few(few) => few,
            Fields::Many(map) => {
                map.insert(name.into_owned(), value);
                return;
            }
        };
        let tag = tag(&name);
        let bit = 1u64 << (tag.wrapping_mul(0x9E37_79B9) >> 26);
        if few.seen & bit != 0 {
            if let Some(field) = few.list.iter_mut().find(|f| f.tag == tag && f.name == name) {
                field.value = Some(value);
                return;
            }
        }
        if few.list.len() == FEW {
            let mut map = Self::map(std::mem::take(&mut few.list));
            map.insert(name.into_owned(), value);
            *self = Fields::Many(map);
            return;
        }
        few.seen |= bit;
        few.left += 1;
        few.list.push(Field {
            tag,
            name,
            value: Some(value),
        });
    }

    /// Takes a field's value out, if present.
    pub(super) fn take(&mut self, name: &str) -> Option<Value> {
        match self {
            Fields::Few(few) => {
                let tag = tag(name);
                let field = few.list.iter_mut().find(|f| f.tag == tag && f.name == name)?;
                let value = field.value.take()?;
                few.left -= 1;
                Some(value)
            }
            Fields::Many(map) => map.shift_remove(name),
        }
    }

    pub(super) fn peek(&self, name: &str) -> Option<&Value> {
        match self {
            Fields::Few(few) => {
                let tag = tag(name);
                few.list
                    .iter()
                    .find(|f| f.tag == tag && f.name == name)?
                    .value
                    .as_ref()
            }
            Fields::Many(map) => map.get(name),
        }
    }

    /// The fields not taken, in their order.
    pub(super) fn rest(self) -> Map<String, Value> {
        match self {
            Fields::Few(few) if few.left == 0 => Map::new(),
            Fields::Few(few) => Self::map(few.list),
            Fields::Many(map) => map,
        }
    }

    fn map(list: Vec<Field<'a>>) -> Map<String, Value> {
        list.into_iter()
            .filter_map(|f| Some((f.name.into_owned(), f.value?)))
            .collect()
    }
}

/// The serde side of [`Fields::read`]: the top-level object entry by entry, each value read
/// into a `serde_json::Value` exactly as reading the whole body into one would.
mod read {
    use std::borrow::Cow;
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
    use serde_json::Value;

    use super::Fields;

    /// The prefix of the names serde_json gives a meaning of its own as an object's first key
    /// (`$serde_json::private::Number` with `arbitrary_precision`).
    const RESERVED: &str = "$serde_json::private::";

    /// Sets its flag, and stops, when the first key is reserved.
    pub(super) struct TopLevel<'c>(pub(super) &'c Cell<bool>);

    impl<'de> Visitor<'de> for TopLevel<'_> {
        type Value = Fields<'de>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
            let mut fields = Fields::new();
            // serde_json's own `Value` looks at the first key for its private names.
            match map.next_key_seed(Name)? {
                None => return Ok(fields),
                Some(name) if name.starts_with(RESERVED) => {
                    self.0.set(true);
                    return Ok(fields);
                }
                Some(name) => fields.insert(name, map.next_value()?),
            }
            while let Some(name) = map.next_key_seed(Name)? {
                fields.insert(name, map.next_value::<Value>()?);
            }
            Ok(fields)
        }
    }

    /// A field name, borrowed from the body when it holds no escapes.
    struct Name;

    impl<'de> DeserializeSeed<'de> for Name {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Name {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string key")
        }
        fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(name))
        }
        fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(name.to_owned()))
        }
    }
}
