//! CPU time of the relay's own work on one GroupInfoChanged callback, in process: the body
//! read by `commands::dispatch` into its event, and the Kafka record built with its JSON
//! payload and headers, as `src/ingress/http.rs` does once the body has arrived and been checked. No
//! HTTP, no Kafka. The bodies are those `bench/callback.lua` sends (four shapes, Chinese text
//! and emoji, `EventTime` set).
//!
//! It measures this thread's CPU time, not the wall clock, and reports the fastest of several
//! repetitions, so other jobs on the machine change the figure little:
//!
//!   cargo run --release --example dispatch_cost [CALLS_PER_REPETITION] [REPETITIONS]
//!
//! On a busy machine even that moves by 10-20%; instructions per call do not. Run it twice under
//! callgrind with different call counts, e.g. 2000 and 12000 calls, one repetition each, and
//! divide the difference of the `Collected` totals by 10000 (docs/performance.md).

use std::time::{Duration, SystemTime};

use tim_relay::delivery::record::Record;
use tim_relay::ingress::body::BodyLimits;
use tim_relay::ingress::callback::CallbackQuery;
use tim_relay::ingress::commands::{self, Dispatched};
use tim_relay::ingress::event::Origin;

#[path = "support/cpu_time.rs"]
mod cpu_time;

/// The relay's allocator (src/main.rs): allocation is a large share of this work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COMMAND: &str = "Group.CallbackAfterGroupInfoChanged";
const QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged\
    &contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI\
    &Sign=0000000000000000000000000000000000000000000000000000000000000000&RequestTime=1700000000";

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u32>().expect("a number"));
    let calls = args.next().unwrap_or(200_000);
    let repetitions = args.next().unwrap_or(7);
    let bodies: Vec<Vec<u8>> = (0..64).map(body_for).collect();
    let limits = BodyLimits::default();
    // Outside the loop: the query's reading is the same for every command and did not change.
    let query = CallbackQuery::parse(QUERY);
    let mut times = Vec::new();
    for _ in 0..repetitions {
        let mut bytes = 0usize;
        let started = thread_cpu_time();
        for i in 0..calls {
            let raw = &bodies[i as usize % bodies.len()];
            let origin = Origin {
                sdk_app_id: "1400000000",
                query: &query,
                raw_body: raw,
                received_at: SystemTime::now(),
            };
            let Ok(Dispatched::Publish(events, _)) = commands::dispatch(COMMAND, &origin, limits) else {
                panic!("the bench body is refused");
            };
            let records: Vec<Record> = events
                .iter()
                .map(|e| Record::from_event(e, "tim.group-changes"))
                .collect();
            bytes += std::hint::black_box(records)[0].payload.len();
        }
        let took = thread_cpu_time() - started;
        times.push(took.as_secs_f64() * 1e6 / f64::from(calls));
        std::hint::black_box(bytes);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "dispatch_cost: {:.3} µs/call (min of {repetitions} x {calls}; median {:.3}, max {:.3})",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// The bodies of `bench/callback.lua` `body_for`, group `n`.
fn body_for(n: u32) -> Vec<u8> {
    const NAMES: [&str; 5] = [
        "周末羽毛球群 🏸",
        "产品讨论组",
        "Family 家人 ❤️",
        "深圳跑团 🏃‍♀️ 2024",
        "读书会 📚",
    ];
    const INTROS: [&str; 3] = [
        "每周六上午十点，南山体育馆见。欢迎新朋友！",
        "Product discussion: 需求评审、设计稿和上线计划都在这里 ✅",
        "这里只聊读书 📖，请勿发广告。",
    ];
    const NOTICES: [&str; 3] = [
        "本周活动改到周日下午三点 ⏰，请大家互相转告。",
        "群公告：新版本 3.2 已发布 🎉 更新内容见群文件。",
        "",
    ];
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let n_us = n as usize;
    let mut fields = vec![
        format!("\"CallbackCommand\":{}", q(COMMAND)),
        format!("\"GroupId\":{}", q(&format!("@TGS#bench{n}"))),
        format!(
            "\"Type\":{}",
            q(["Public", "Private", "ChatRoom", "Work"][n_us % 4])
        ),
        format!(
            "\"Operator_Account\":{}",
            q(&format!("user_{}", n * 7919 % 100_000))
        ),
        format!("\"EventTime\":{}", 1_700_000_000_000u64 + u64::from(n % 1000)),
    ];
    let level = format!(
        "{{\"Key\":\"Level\",\"Value\":{}}}",
        q(&format!("等级 {} ⭐", n % 9 + 1))
    );
    match n % 4 {
        0 => fields.push(format!("\"Notification\":{}", q(NOTICES[n_us % 3]))),
        1 => fields.push(format!("\"UserDefinedDataList\":[{level}]")),
        shape => {
            fields.push(format!("\"Name\":{}", q(NAMES[n_us % 5])));
            fields.push(format!("\"Introduction\":{}", q(INTROS[n_us % 3])));
            fields.push(format!("\"Notification\":{}", q(NOTICES[n_us % 3])));
            fields.push(format!(
                "\"FaceUrl\":{}",
                q(&format!("https://im.example.com/avatar/group/{n}.png"))
            ));
            if shape == 3 {
                fields.push(format!(
                    "\"UserDefinedDataList\":[{level},{{\"Key\":\"City\",\"Value\":{}}},{{\"Key\":\"Tags\",\"Value\":{}}}]",
                    q(["深圳", "北京", "上海", "成都"][n_us % 4]),
                    q("羽毛球,周末,🏸,新手友好")
                ));
            }
        }
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    cpu_time::used(cpu_time::THREAD)
}
