//! The four APIs: paging, per-group errors, `ResponseFilter`, the 1 MB limit.

use std::collections::{BTreeSet, HashSet};

use serde_json::json;
use tim_relay::reconcile::budget::Api;

use crate::emulator::{Emulator, GroupType, Population};
use crate::{code, started};

#[tokio::test]
async fn list_paging_gives_every_group_exactly_once() {
    let emu = started(Population {
        groups: 237,
        ..Default::default()
    });
    emu.set_rate_limit(Api::GetAppidGroupList, 1000);
    let http = reqwest::Client::new();
    for filter in [None, Some(GroupType::Community)] {
        let expected: Vec<String> = emu.with_world(|w| {
            w.groups()
                .filter(|g| filter.is_none_or(|t| g.group_type == t))
                .map(|g| g.group_id.clone())
                .collect()
        });
        let (mut seen, mut next, mut pages) = (Vec::new(), 0u64, 0);
        loop {
            let mut body = json!({ "Limit": 50, "Next": next });
            if let Some(t) = filter {
                body["GroupType"] = json!(t.as_str());
            }
            let (_, answer) = emu.call(&http, Api::GetAppidGroupList, &body).await;
            assert_eq!(code(&answer), 0, "{answer}");
            assert_eq!(answer["TotalCount"].as_u64(), Some(expected.len() as u64));
            seen.extend(
                answer["GroupIdList"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["GroupId"].as_str().unwrap().to_string()),
            );
            pages += 1;
            next = answer["Next"].as_u64().unwrap();
            if next == 0 {
                break;
            }
        }
        assert_eq!(seen, expected, "every group once, in list order");
        assert_eq!(pages, expected.len().div_ceil(50));
    }
    let (_, over) = emu
        .call(&http, Api::GetAppidGroupList, &json!({ "Limit": 10001 }))
        .await;
    assert_eq!(code(&over), 10004);
}

#[tokio::test]
async fn get_group_info_answers_each_group_with_its_own_code() {
    let emu = started(Population {
        groups: 30,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let known = emu.with_world(|w| w.group_ids());
    let mut ids: Vec<String> = known[..25].to_vec();
    ids.extend((0..24).map(|i| format!("@TGS#NOSUCH{i}")));
    ids.push("not valid".into());
    let (_, answer) = emu
        .call(&http, Api::GetGroupInfo, &json!({ "GroupIdList": ids }))
        .await;
    assert_eq!(answer["ActionStatus"], "OK");
    let infos = answer["GroupInfo"].as_array().unwrap();
    assert_eq!(infos.len(), 50);
    let codes: Vec<i64> = infos.iter().map(code).collect();
    assert!(codes[..25].iter().all(|c| *c == 0), "{codes:?}");
    assert!(codes[25..49].iter().all(|c| *c == 10010), "{codes:?}");
    assert_eq!(codes[49], 10015);
    // Unfiltered: every base field, custom fields and the member list (none for AVChatRoom).
    for info in &infos[..25] {
        let t = info["Type"].as_str().unwrap();
        assert!(info["Name"].is_string() && info["MemberNum"].is_u64() && info["AppDefinedData"].is_array());
        assert_eq!(info.get("MemberList").is_some(), t != "AVChatRoom", "{t}");
    }
    ids.push(known[0].clone());
    let (_, too_many) = emu
        .call(&http, Api::GetGroupInfo, &json!({ "GroupIdList": ids }))
        .await;
    assert_eq!(code(&too_many), 10004);
}

#[tokio::test]
async fn a_response_filter_gives_only_what_it_names() {
    let emu = started(Population {
        groups: 5,
        ..Default::default()
    });
    emu.with_world(|w| {
        let id = w.group_ids()[0].clone();
        let g = w.group_mut(&id).unwrap();
        g.custom.insert("level".into(), "3".into());
        g.custom.insert("topic_tag".into(), "x".into());
    });
    let id = emu.with_world(|w| w.group_ids()[0].clone());
    let http = reqwest::Client::new();
    let filter = json!({ "GroupIdList": [id], "ResponseFilter": {
        "GroupBaseInfoFilter": ["Name", "Owner_Account"],
        "MemberInfoFilter": ["Role"],
        "AppDefinedDataFilter_Group": ["level"] } });
    let (_, answer) = emu.call(&http, Api::GetGroupInfo, &filter).await;
    let info = &answer["GroupInfo"][0];
    let keys: BTreeSet<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "AppDefinedData",
        "ErrorCode",
        "ErrorInfo",
        "GroupId",
        "MemberList",
        "Name",
        "Owner_Account",
    ];
    assert_eq!(keys, expected.into_iter().collect(), "{info}");
    assert_eq!(info["AppDefinedData"], json!([{ "Key": "level", "Value": "3" }]));
    let member_keys: BTreeSet<&str> = info["MemberList"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(member_keys, ["Member_Account", "Role"].into_iter().collect());
    let no_members = json!({ "GroupIdList": [id], "ResponseFilter": { "GroupBaseInfoFilter": ["Type"] } });
    let (_, answer) = emu.call(&http, Api::GetGroupInfo, &no_members).await;
    assert!(
        answer["GroupInfo"][0].get("MemberList").is_none()
            && answer["GroupInfo"][0].get("AppDefinedData").is_none()
    );
}

#[tokio::test]
async fn an_answer_over_1_mb_answers_10018_per_group_or_for_the_whole_call() {
    let emu = started(Population {
        groups: 20,
        large_every: 2,
        huge_members: Some(15_000),
    });
    let http = reqwest::Client::new();
    let ids = emu.with_world(|w| w.group_ids());
    let huge = ids.last().unwrap().clone();
    let filter =
        json!({ "MemberInfoFilter": ["Role", "NameCard", "JoinTime"], "GroupBaseInfoFilter": ["MemberNum"] });
    let (_, alone) = emu
        .call(
            &http,
            Api::GetGroupInfo,
            &json!({ "GroupIdList": [&huge, &ids[0]], "ResponseFilter": filter }),
        )
        .await;
    assert_eq!(code(&alone), 0);
    assert_eq!(code(&alone["GroupInfo"][0]), 10018, "{}", alone["GroupInfo"][0]);
    assert_eq!(code(&alone["GroupInfo"][1]), 0);
    let (_, without_members) = emu
        .call(
            &http,
            Api::GetGroupInfo,
            &json!({ "GroupIdList": [&huge],
        "ResponseFilter": { "GroupBaseInfoFilter": ["MemberNum"] } }),
        )
        .await;
    assert_eq!(
        without_members["GroupInfo"][0]["MemberNum"].as_u64(),
        Some(15_000)
    );
    emu.set_max_answer_bytes(100_000);
    let (_, batch) = emu
        .call(
            &http,
            Api::GetGroupInfo,
            &json!({ "GroupIdList": ids[..20].to_vec() }),
        )
        .await;
    assert_eq!(
        (batch["ActionStatus"].as_str(), code(&batch)),
        (Some("FAIL"), 10018)
    );
}

/// Pages every member of `id` by `Offset` or by `Next`; returns the accounts in order.
async fn page_members(emu: &Emulator, http: &reqwest::Client, id: &str, community: bool) -> Vec<String> {
    let (mut accounts, mut offset, mut next) = (Vec::new(), 0, String::new());
    loop {
        let mut body = json!({ "GroupId": id, "Limit": 37 });
        if community {
            body["Next"] = json!(next);
        } else {
            body["Offset"] = json!(offset);
        }
        let (_, answer) = emu.call(http, Api::GetGroupMemberInfo, &body).await;
        assert_eq!(code(&answer), 0, "{answer}");
        let page = answer["MemberList"].as_array().unwrap();
        accounts.extend(
            page.iter()
                .map(|m| m["Member_Account"].as_str().unwrap().to_string()),
        );
        offset += page.len();
        if community {
            next = answer["Next"].as_str().expect("Next is a string").to_string();
            if !next.is_empty() {
                assert!(next.parse::<u64>().unwrap() > 1 << 53, "{next}");
            }
            if next.is_empty() {
                return accounts;
            }
        } else if page.is_empty() || offset >= answer["MemberNum"].as_u64().unwrap() as usize {
            return accounts;
        }
    }
}

#[tokio::test]
async fn member_paging_by_offset_and_by_next_gives_every_member_once() {
    let emu = started(Population {
        groups: 20,
        large_every: 2,
        huge_members: None,
    });
    let http = reqwest::Client::new();
    for t in [GroupType::Public, GroupType::Community, GroupType::Private] {
        let (id, expected) = emu.with_world(|w| {
            let g = w
                .groups()
                .filter(|g| g.group_type == t)
                .max_by_key(|g| g.member_num())
                .unwrap();
            (
                g.group_id.clone(),
                g.members().iter().map(|m| m.account.clone()).collect::<Vec<_>>(),
            )
        });
        assert!(expected.len() > 100, "{t:?} has hundreds of members");
        let got = page_members(&emu, &http, &id, t == GroupType::Community).await;
        assert_eq!(got, expected, "{t:?}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
    }
    let av = emu.with_world(|w| {
        w.groups()
            .find(|g| g.group_type == GroupType::AVChatRoom)
            .unwrap()
            .group_id
            .clone()
    });
    let (_, answer) = emu
        .call(&http, Api::GetGroupMemberInfo, &json!({ "GroupId": av }))
        .await;
    assert_eq!(code(&answer), 10007);
    let (_, over) = emu
        .call(
            &http,
            Api::GetGroupMemberInfo,
            &json!({ "GroupId": av, "Limit": 201 }),
        )
        .await;
    assert_eq!(code(&over), 10007, "the type is checked first");
}

#[tokio::test]
async fn get_group_attr_answers_attributes_10007_and_10010() {
    let emu = started(Population {
        groups: 10,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let (id, attrs) = emu.with_world(|w| {
        let g = w.nth_group(0).unwrap();
        (g.group_id.clone(), g.attrs.clone())
    });
    let (_, answer) = emu
        .call(&http, Api::GetGroupAttr, &json!({ "GroupId": id }))
        .await;
    let got: Vec<(String, String)> = answer["GroupAttrAry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().into(),
                a["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(got, attrs.into_iter().collect::<Vec<_>>());
    emu.with_world(|w| w.set_types_without_attrs([GroupType::Public]));
    let (_, none) = emu
        .call(&http, Api::GetGroupAttr, &json!({ "GroupId": id }))
        .await;
    assert_eq!(code(&none), 10007);
    let (_, gone) = emu
        .call(&http, Api::GetGroupAttr, &json!({ "GroupId": "@TGS#GONE" }))
        .await;
    assert_eq!(code(&gone), 10010);
}
