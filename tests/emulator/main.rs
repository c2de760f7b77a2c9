//! The Tencent IM emulator itself (`tests/support/emulator/`): its checks, paging, errors, rate
//! limits and faults (`checks.rs`, `rest.rs`), and the callbacks of its random operations (`callbacks.rs`),
//! against `../shared/spec/`. No broker needed.

#[path = "../support/emulator/mod.rs"]
mod emulator;

mod callbacks;
mod checks;
mod rest;

use emulator::{Config, Emulator, Population, Rng};
use serde_json::Value;

/// An emulator with `population`'s groups (seed 42).
pub fn started(population: Population) -> Emulator {
    let emu = Emulator::start(Config::default());
    emu.with_world(|w| w.populate(&mut Rng::new(42), &population));
    emu
}

pub fn code(answer: &Value) -> i64 {
    answer["ErrorCode"].as_i64().expect("an ErrorCode")
}
