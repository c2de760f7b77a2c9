//! tim-relay: Tencent Cloud IM webhooks to Kafka, answered OK only once the event is safe.
//!
//! - [`ingress`]: where a callback enters: the HTTP route, the caller checks, the body, one
//!   file per command, the event it becomes, the answers to before-callbacks;
//! - [`delivery`]: where it becomes durable: Kafka's producers, the spool, the forwarder, the
//!   other replicas and which of them owns a group;
//! - [`state`]: where the group events are folded into each group's current state;
//! - [`reconcile`]: `tim-relay reconcile`, which repairs the state from Tencent's REST API:
//!   UserSig, the REST error classes, the rate budget, the sweep and its events;
//! - [`ops`]: what operators see: the admin listener, metrics, rate-limited logs, the dead table;
//! - [`config`]: every environment variable; [`startup`] wires the parts together;
//! - [`answer`] (Tencent's answer bodies) and [`shutdown`] (stop signals), which every part may
//!   use.

pub mod answer;
pub mod config;
pub mod delivery;
pub mod ingress;
pub mod ops;
pub mod reconcile;
pub mod shutdown;
pub mod startup;
pub mod state;
