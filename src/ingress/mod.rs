//! Where a callback enters: the HTTP route ([`http`]), the caller checks ([`access`], [`auth`]),
//! the query ([`callback`]) and body ([`body`]), one file per command ([`commands`]), the event it
//! becomes ([`event`]), the answers to before-callbacks ([`decision`]), the FAIL answers
//! ([`error`]) and the hand-over of a group's callback to the replica that owns it ([`handover`]).

pub mod access;
pub mod auth;
pub mod body;
pub mod callback;
pub mod commands;
pub mod decision;
pub mod error;
pub mod event;
pub mod handover;
pub mod http;
pub mod tls;
