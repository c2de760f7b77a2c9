//! `tim-relay reconcile` against the real broker and the Tencent emulator (issue 22, item 7):
//! groups made before the relay ran are backfilled, lost callbacks and a relay outage are
//! repaired, a sweep while callbacks flow undoes no newer change, a wrong key stops at once
//! with nothing published, and the loop reports on its admin listener. Logs of every process:
//! `target/reconcile-logs/<test>.*.log`.

use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../support/emulator/mod.rs"]
mod emulator;
#[path = "../support/mod.rs"]
mod support;

mod flow;
mod harness;

use emulator::{Config, Population, Rng, Times};
use harness::{assert_converged, Bench};
use tim_relay::reconcile::budget::Api;

/// Every event the reconciler published says so and meets its schema.
fn check_events(bench: &Bench, kinds: &[&str]) -> usize {
    let root = env!("CARGO_MANIFEST_DIR");
    let validator = |name: &str| {
        let path = format!("{root}/docs/events/{name}.schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).unwrap();
        jsonschema::validator_for(&schema).expect("a valid schema")
    };
    let snapshot = validator("tim.group.snapshot");
    let destroyed = validator("tim.group.destroyed");
    let mut from_reconciler = 0;
    for event in bench.events() {
        if event["source"] != "reconciler" {
            continue;
        }
        from_reconciler += 1;
        let kind = event["type"].as_str().unwrap_or_default();
        let check = match kind {
            "tim.group.snapshot" => &snapshot,
            "tim.group.destroyed" => &destroyed,
            other => panic!("the reconciler published a {other}"),
        };
        assert!(kinds.contains(&kind), "{}: unexpected {kind}", bench.name);
        let errors: Vec<String> = check.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{kind} does not meet its schema: {errors:?}\n{event}"
        );
    }
    from_reconciler
}

#[test]
fn groups_made_before_the_relay_ran_are_backfilled_by_one_sweep_within_the_rate_budget() {
    let bench = Bench::new("backfill", Config::default());
    let population = Population {
        groups: 3000,
        large_every: 10,
        huge_members: Some(1500),
    };
    bench
        .emu
        .with_world(|w| w.populate(&mut Rng::new(22), &population));
    // Large groups are too big for a batch, some for an answer of their own: the batches halve
    // and those groups' members are paged.
    bench.emu.set_max_answer_bytes(48 * 1024);
    bench.emu.set_transient_failure_rate(0.02);
    let broken = bench.emu.with_world(|w| w.nth_group(7).unwrap().group_id.clone());
    bench.emu.inject_group_error(&broken, 10002, Times::Always);

    let first = bench.sweep(&[("RECONCILE_MAX_QPS", "150")]);
    assert_eq!(
        first.figure("failed"),
        1,
        "the one group that always fails is left to the next sweep"
    );
    assert_eq!(first.figure("groups seen"), 3000, "every other group was read");
    assert!(
        first.calls("get_group_member_info") > 0,
        "too-big groups had their members paged"
    );
    let calls = bench.emu.calls();
    let overall = calls.max_calls_in_any_window(Duration::from_secs(1));
    assert!(
        overall <= 150,
        "{overall} REST calls within one second, over RECONCILE_MAX_QPS=150"
    );
    let list = calls.max_calls_in_any_window_for(Api::GetAppidGroupList, Duration::from_secs(1));
    assert!(
        list <= 1,
        "{list} get_appid_group_list calls within one second: its limit is 1"
    );

    // The materializer folds while the test goes on: the next sweep compares with every
    // document, so it waits for the last of them.
    let folded = support::wait_for(
        Duration::from_secs(60),
        Duration::from_millis(500),
        "3000 documents",
        || {
            let n = bench.states().len();
            (n == 3000).then_some(n)
        },
    );
    folded.unwrap_or_else(|e| panic!("{e}"));
    bench.emu.clear_group_errors();
    bench.emu.set_transient_failure_rate(0.0);
    let second = bench.sweep(&[]);
    assert_eq!(second.figure("failed"), 0);
    assert_eq!(
        second.figure("snapshots"),
        1,
        "only the group the first sweep could not read differs: every other document already equals Tencent's"
    );
    assert_converged(&bench, Duration::from_secs(60), "two sweeps");
    let published = check_events(&bench, &["tim.group.snapshot"]);
    assert_eq!(published as u64, first.figure("snapshots") + 1);

    let third = bench.sweep(&[]);
    assert_eq!(
        third.figure("snapshots"),
        0,
        "a sweep with no drift publishes nothing"
    );
    let per_group = (third.calls("get_group_info") + third.calls("get_group_attr")) as f64 / 3001.0;
    eprintln!("calls per group with no drift: {per_group:.3}");
}

#[test]
fn lost_callbacks_and_a_relay_outage_are_repaired_by_the_next_sweep() {
    let bench = Bench::new("lost", Config::default());
    bench.emu.with_world(|w| {
        w.custom_in_info_callback = true;
        w.populate(&mut Rng::new(5), &Population::default())
    });
    bench.sweep(&[]);
    assert_converged(&bench, Duration::from_secs(60), "the backfill");

    let mut relay = bench.relay("relay");
    let mut rng = Rng::new(2026);
    let (mut delivered, mut dropped, mut lost_in_outage) = (0, 0, 0);
    for op in 0..1500 {
        if op == 600 {
            relay.kill();
        }
        if op == 900 {
            let mut command = relay.command(&support::broker::bootstrap(), &bench.topic);
            command.env("TIM_CALLBACK_TOKEN", harness::TOKEN);
            relay.start(command, "lost: relay restarted");
        }
        let callbacks = bench.emu.with_world(|w| w.random_operation(&mut rng));
        for body in callbacks {
            if rng.below(100) < 10 {
                dropped += 1;
                continue;
            }
            match flow::post(&bench, &relay, &body) {
                Ok(()) => delivered += 1,
                Err(_) if (600..900).contains(&op) => lost_in_outage += 1,
                Err(e) => panic!("a callback outside the outage failed: {e}"),
            }
        }
    }
    eprintln!("callbacks: {delivered} delivered, {dropped} dropped, {lost_in_outage} lost in the outage");
    assert!(lost_in_outage > 100 && dropped > 50);
    assert!(
        bench.converged(Duration::from_secs(20)).is_err(),
        "with callbacks lost, the state must differ from Tencent before the sweep (else the test proves nothing)"
    );
    let sweep = bench.sweep(&[]);
    assert!(sweep.figure("snapshots") > 0);
    assert_converged(&bench, Duration::from_secs(60), "a sweep after lost callbacks");
    check_events(&bench, &["tim.group.snapshot", "tim.group.destroyed"]);
    drop(relay);
}

#[test]
fn a_sweep_while_callbacks_flow_undoes_no_newer_change() {
    let bench = Bench::new("concurrent", Config::default());
    bench.emu.with_world(|w| {
        w.custom_in_info_callback = true;
        w.populate(
            &mut Rng::new(9),
            &Population {
                groups: 400,
                ..Population::default()
            },
        )
    });
    bench.sweep(&[]);
    let relay = bench.relay("relay");
    // A slow sweep (about 10 s at 40 calls/s), while one group's callbacks follow each other
    // milliseconds apart, as Tencent sends them.
    let mut child = bench
        .reconcile(&["--once"], &[("RECONCILE_MAX_QPS", "40")])
        .stdout(bench.log("reconcile"))
        .stderr(bench.log("reconcile"))
        .spawn()
        .expect("reconcile starts");
    let started = Instant::now();
    let mut rng = Rng::new(77);
    let mut during = 0;
    while child.try_wait().expect("reconcile status").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the slow sweep ran over 2 minutes"
        );
        for body in flow::carried_operation(&bench, &mut rng) {
            flow::post(&bench, &relay, &body).expect("every callback is delivered");
            during += 1;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(
        child.wait().unwrap().success(),
        "the sweep during callbacks completed"
    );
    eprintln!("{during} callbacks during the sweep");
    assert!(during > 200, "the callbacks overlapped the sweep");
    flow::assert_carried_fields_equal(&bench, Duration::from_secs(60));

    // A quiet sweep: one that starts once the skew margin (10 s) has passed since the last
    // change, so that its stamps are later than every callback (docs/state.md, "Snapshots").
    let quiet_since = started + started.elapsed();
    std::thread::sleep(Duration::from_secs(11).saturating_sub(quiet_since.elapsed()));
    let quiet = bench.sweep(&[]);
    eprintln!(
        "the quiet sweep repaired what no callback carries: {}",
        quiet.stdout.trim()
    );
    assert_converged(&bench, Duration::from_secs(60), "a quiet sweep");
    drop(relay);
}

#[test]
fn a_wrong_key_or_a_non_admin_stops_within_seconds_naming_the_variable_and_publishes_nothing() {
    let bench = Bench::new("wrongkey", Config::default());
    bench
        .emu
        .with_world(|w| w.populate(&mut Rng::new(1), &Population::default()));
    for (env, variable) in [
        (("TIM_SECRET_KEY", "not-the-apps-key"), "TIM_SECRET_KEY"),
        (("TIM_ADMIN_IDENTIFIER", "user_000001"), "TIM_ADMIN_IDENTIFIER"),
        (("TIM_SDK_APP_ID", "1400000099"), "TIM_SDK_APP_ID"),
    ] {
        let once = bench.once(&[env]);
        assert_eq!(
            once.status.code(),
            Some(3),
            "{variable}: exit code 3\n{}",
            once.stderr
        );
        let line = once.stderr.lines().last().unwrap_or_default();
        assert!(
            line.contains(variable),
            "the last line names {variable}: {line:?}"
        );
        assert!(
            once.took < Duration::from_secs(10),
            "stopped within seconds: {:?}",
            once.took
        );
        assert!(once.stdout.is_empty(), "no summary: {}", once.stdout);
    }
    assert!(bench.events().is_empty(), "nothing was published");
}

#[test]
fn the_loop_sweeps_at_its_interval_and_reports_on_its_admin_listener() {
    let bench = Bench::new("loop", Config::default());
    bench
        .emu
        .with_world(|w| w.populate(&mut Rng::new(3), &Population::default()));
    let port = support::relay::free_port();
    let mut child = bench
        .reconcile(
            &[],
            &[
                ("RECONCILE_INTERVAL_SECS", "3"),
                ("RELAY_ADMIN_LISTEN", &format!("127.0.0.1:{port}")),
            ],
        )
        .stdout(bench.log("reconcile"))
        .stderr(bench.log("reconcile"))
        .spawn()
        .expect("reconcile starts");
    let metrics = flow::wait_metrics(
        &bench,
        port,
        "tim_relay_reconcile_sweeps_total{result=\"completed\"} 2",
    );
    let value = |name: &str| {
        support::relay::series(&metrics, name, &[])
            .iter()
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert_eq!(
        value("tim_relay_reconcile_events_published_total"),
        100.0,
        "100 snapshots, then no drift"
    );
    assert_eq!(
        value("tim_relay_reconcile_drift_total"),
        100.0,
        "each group missing once"
    );
    assert!(value("tim_relay_reconcile_rest_calls_total") >= 200.0);
    assert_eq!(value("tim_relay_reconcile_sweep_groups_total"), 100.0);
    assert!(flow::get(&bench, port, "/healthz") == 200 && flow::get(&bench, port, "/readyz") == 200);
    support::relay::signal(&child, "TERM");
    let status = support::relay::wait_exit(&mut child, Duration::from_secs(10)).expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}
