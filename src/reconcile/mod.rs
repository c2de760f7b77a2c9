//! `tim-relay reconcile`: reads every group from Tencent's REST API and repairs the state topic
//! through the fold (`docs/reconcile.md` has the design, the cost and the argument).
//!
//! - [`config`]: its variables; [`usersig`]: the App admin's UserSig (TLSSigAPIv2);
//!   [`rest_error`]: Tencent's answers sorted into what to do next; [`budget`]: the hard
//!   per-second ceilings; [`client`]: one REST call made within all of them;
//! - [`sweep`]: list, [`read`] 50 at a time, compare with the state topic's [`digest`], publish
//!   [`tencent`]'s snapshot or destroyed events with [`publish`];
//! - [`runner`]: `--once` and the loop; [`serve`]: the loop with its [`admin`] listener and
//!   [`metrics`].

pub mod admin;
pub mod budget;
pub mod client;
pub mod config;
pub mod digest;
pub mod metrics;
pub mod publish;
pub mod read;
pub mod rest_error;
pub mod runner;
pub mod serve;
pub mod sweep;
pub mod tencent;
pub mod usersig;

/// Runs `reconcile`: one sweep with `once`, else the loop with its admin listener.
pub async fn run(config: config::ReconcileConfig, once: bool) -> runner::Ended {
    if once {
        return runner::once(config).await;
    }
    serve::forever(config).await
}
