//! End-to-end tests against a real Kafka broker: HTTP in, records out.

mod bounds;
mod commands;
mod failures;
mod health;
mod helpers;
mod peers;
mod publishing;
mod rejections;
