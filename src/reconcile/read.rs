//! Reading a batch of groups from Tencent: `get_group_info` for up to 50 at once (halved on
//! 10018), members paged with `get_group_member_info` where the answer did not list them all,
//! attributes with `get_group_attr`. What each group came to is a [`Read`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::budget::Api;
use super::client::{CallError, Client};
use super::rest_error::{class_of_code, Class, ConfigFault};
use super::tencent::{member, Listed, TencentGroup, COMMUNITY};
use crate::state::fold::FoldRules;

/// Groups per `get_group_info` call: Tencent's most.
pub const BATCH: usize = 50;
/// Members per `get_group_member_info` page: the recommended 100 (the most is unconfirmed).
const MEMBER_PAGE: usize = 100;
/// `s` = the clock before the first call, less this margin for the skew between this host's
/// clock and Tencent's (docs/state.md, "Snapshots").
pub const SKEW_MARGIN_MS: u64 = 10_000;
/// The base fields asked for by name when a group must be read with a `ResponseFilter`.
const BASE_FIELDS: [&str; 8] = [
    "Type",
    "Name",
    "Introduction",
    "Notification",
    "FaceUrl",
    "Owner_Account",
    "CreateTime",
    "MemberNum",
];

/// What reading one group came to.
#[derive(Debug)]
pub enum Read {
    Group(Box<TencentGroup>),
    /// 10010 or 10015: dismissed, or no such group.
    Gone,
    /// Still failing after the client's tries: left to the next sweep.
    Failed(String),
}

/// What a batch read shares: the client, the fold's limits, the group types Tencent said have
/// no attributes, the custom field keys seen so far.
pub struct Reader<'a> {
    pub client: &'a Client,
    pub rules: FoldRules,
    pub no_attrs: &'a Mutex<HashSet<String>>,
    pub custom_keys: &'a Mutex<BTreeSet<String>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

type Reads = Result<Vec<(String, Read)>, ConfigFault>;

impl Reader<'_> {
    /// Reads `ids` (at most [`BATCH`]); each id comes back with what became of it. Err: a
    /// configuration fault that stops the sweep.
    pub fn read<'b>(&'b self, ids: &'b [String]) -> Pin<Box<dyn Future<Output = Reads> + Send + 'b>> {
        Box::pin(async move {
            let s = now_ms().saturating_sub(SKEW_MARGIN_MS);
            let answer = match self
                .client
                .call(Api::GetGroupInfo, &json!({ "GroupIdList": ids }))
                .await
            {
                Ok(answer) => answer,
                Err(CallError::Stop(fault)) => return Err(fault),
                Err(CallError::TooBig(_) | CallError::Gone(_)) if ids.len() > 1 => {
                    let (a, b) = ids.split_at(ids.len() / 2);
                    let mut out = self.read(a).await?;
                    out.extend(self.read(b).await?);
                    return Ok(out);
                }
                Err(CallError::TooBig(_)) => {
                    return Ok(vec![(ids[0].clone(), self.read_alone(&ids[0]).await?)])
                }
                Err(CallError::Gone(_)) => return Ok(vec![(ids[0].clone(), Read::Gone)]),
                Err(e) => {
                    let why = e.to_string();
                    return Ok(ids
                        .iter()
                        .map(|id| (id.clone(), Read::Failed(why.clone())))
                        .collect());
                }
            };
            let entries = answer
                .get("GroupInfo")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let entry = entries
                    .iter()
                    .find(|e| e.get("GroupId").and_then(Value::as_str) == Some(id));
                let read = match entry {
                    None => Read::Failed("get_group_info did not answer for the group".into()),
                    Some(entry) => self.read_entry(id, entry, s).await?,
                };
                out.push((id.clone(), read));
            }
            Ok(out)
        })
    }

    async fn read_entry(&self, id: &str, entry: &Value, s: u64) -> Result<Read, ConfigFault> {
        let code = entry.get("ErrorCode").and_then(Value::as_i64).unwrap_or(0);
        match class_of_code(code) {
            Class::Ok => {}
            Class::GroupGone => return Ok(Read::Gone),
            Class::AskForLess => return self.read_alone(id).await,
            Class::Stop(fault) => return Err(fault),
            _ => {
                return Ok(Read::Failed(format!(
                    "get_group_info: Tencent error {code} for the group"
                )))
            }
        }
        let Some(group) = TencentGroup::from_info(entry, s, true) else {
            return Ok(Read::Failed(
                "get_group_info's answer has no GroupId or Type".into(),
            ));
        };
        self.complete(group).await
    }

    /// One group whose answer is too big with everything in it: its base fields and the known
    /// custom keys by name, then its members page by page.
    async fn read_alone(&self, id: &str) -> Result<Read, ConfigFault> {
        let s = now_ms().saturating_sub(SKEW_MARGIN_MS);
        let keys: Vec<String> = self
            .custom_keys
            .lock()
            .expect("keys lock")
            .iter()
            .cloned()
            .collect();
        let mut filter = json!({ "GroupBaseInfoFilter": BASE_FIELDS });
        if !keys.is_empty() {
            filter["AppDefinedDataFilter_Group"] = json!(keys);
        }
        let body = json!({ "GroupIdList": [id], "ResponseFilter": filter });
        let answer = match self.client.call(Api::GetGroupInfo, &body).await {
            Ok(a) => a,
            Err(e) => return self.failure(e),
        };
        let entry = answer
            .get("GroupInfo")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter()
                    .find(|e| e.get("GroupId").and_then(Value::as_str) == Some(id))
            });
        let Some(entry) = entry else {
            return Ok(Read::Failed("get_group_info did not answer for the group".into()));
        };
        let code = entry.get("ErrorCode").and_then(Value::as_i64).unwrap_or(0);
        match class_of_code(code) {
            Class::Ok => {}
            Class::GroupGone => return Ok(Read::Gone),
            Class::Stop(fault) => return Err(fault),
            _ => {
                return Ok(Read::Failed(format!(
                    "get_group_info: Tencent error {code}, read alone"
                )))
            }
        }
        match TencentGroup::from_info(entry, s, true) {
            Some(group) => self.complete(group).await,
            None => Ok(Read::Failed(
                "get_group_info's answer has no GroupId or Type".into(),
            )),
        }
    }

    /// Members where the answer did not list them all, then attributes.
    async fn complete(&self, mut group: TencentGroup) -> Result<Read, ConfigFault> {
        if let Some(custom) = &group.custom {
            let mut keys = self.custom_keys.lock().expect("keys lock");
            keys.extend(custom.keys().cloned());
        }
        if group.members_wanted(self.rules) && !group.members_complete {
            match self.members(&group.group_id, &group.group_type).await {
                Ok((list, complete, num)) => {
                    group.members = Some(list);
                    group.members_complete = complete;
                    group.member_num = num;
                }
                Err(e) => return self.failure(e),
            }
        }
        if self
            .no_attrs
            .lock()
            .expect("attrs lock")
            .contains(&group.group_type)
        {
            group.attrs = Some(BTreeMap::new());
        } else {
            let body = json!({ "GroupId": group.group_id });
            match self.client.call(Api::GetGroupAttr, &body).await {
                Ok(answer) => group.attrs = Some(attrs(&answer)),
                Err(CallError::NoAttrs) => {
                    self.no_attrs
                        .lock()
                        .expect("attrs lock")
                        .insert(group.group_type.clone());
                    group.attrs = Some(BTreeMap::new());
                }
                Err(e) => return self.failure(e),
            }
        }
        Ok(Read::Group(Box::new(group)))
    }

    /// Every member, page by page: `Offset`, or `Next` for Community groups. Complete when
    /// `MemberNum` was the same on the first and the last page and equals the accounts listed.
    async fn members(&self, id: &str, group_type: &str) -> Result<(Vec<Listed>, bool, u64), CallError> {
        let community = group_type == COMMUNITY;
        let mut list: Vec<Listed> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let (mut offset, mut next) = (0usize, String::new());
        let mut first_num = None;
        let mut last_num;
        loop {
            let mut body = json!({ "GroupId": id, "Limit": MEMBER_PAGE,
                "MemberInfoFilter": ["Member_Account", "Role", "NameCard"] });
            if community {
                body["Next"] = json!(next);
            } else {
                body["Offset"] = json!(offset);
            }
            let answer = self.client.call(Api::GetGroupMemberInfo, &body).await?;
            last_num = answer.get("MemberNum").and_then(Value::as_u64).unwrap_or(0);
            first_num.get_or_insert(last_num);
            let page: Vec<Listed> = answer
                .get("MemberList")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(member).collect())
                .unwrap_or_default();
            let got = page.len();
            for m in page {
                if seen.insert(m.0.clone()) {
                    list.push(m);
                }
            }
            if community {
                next = answer
                    .get("Next")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if next.is_empty() || got == 0 {
                    break;
                }
            } else {
                offset += got;
                if got == 0 || offset as u64 >= last_num {
                    break;
                }
            }
        }
        let complete = first_num == Some(last_num) && list.len() as u64 == last_num;
        Ok((list, complete, last_num))
    }

    fn failure(&self, e: CallError) -> Result<Read, ConfigFault> {
        match e {
            CallError::Stop(fault) => Err(fault),
            CallError::Gone(_) => Ok(Read::Gone),
            other => Ok(Read::Failed(other.to_string())),
        }
    }
}

/// `GroupAttrAry` as key -> value.
fn attrs(answer: &Value) -> BTreeMap<String, String> {
    answer
        .get("GroupAttrAry")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|kv| {
                    let k = kv.get("key").and_then(Value::as_str)?;
                    let v = kv.get("value").and_then(Value::as_str)?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}
