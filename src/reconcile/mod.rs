//! `tim-relay reconcile`'s first building blocks: what a sweep needs to talk to Tencent's REST
//! API within its rules. Pure logic, no I/O; `docs/reconcile.md` has the whole design.
//!
//! Built here:
//! - [`usersig`]: the App admin's UserSig (TLSSigAPIv2): signing, verifying (for the test
//!   emulator), and a cache that signs afresh at half the lifetime;
//! - [`rest_error`]: Tencent's answers read (`ActionStatus`, `ErrorCode`, `ErrorInfo`) and
//!   sorted into what to do next: go on, back off, retry, ask for less, group gone, or stop
//!   naming the variable to fix;
//! - [`budget`]: the rate budget, a hard ceiling per second over all APIs and per API, with a
//!   backoff that frequency errors raise and successes lower.
//!
//! Still to come (issue 22): the REST client, the sweep and its comparison with the state
//! topic, the snapshot event and its fold, the subcommand with its configuration, metrics and
//! workload, the Tencent emulator and the tests against the broker.

pub mod admin;
pub mod budget;
pub mod metrics;
pub mod rest_error;
pub mod usersig;
