//! Where the group events are folded into each group's current state: the pure fold
//! ([`fold`]) and the process that runs it over Kafka, `tim-relay materialize` ([`materialize`]).

pub mod fold;
pub mod materialize;
