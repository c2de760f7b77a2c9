//! Where a callback enters: the HTTP route ([`http`]), the caller checks ([`access`], [`auth`]),
//! the query ([`callback`]) and body ([`body`]), one file per command ([`commands`]), the event it
//! becomes ([`event`]), the answers to before-callbacks ([`decision`]) and the FAIL answers
//! ([`error`]).

pub mod access;
pub mod auth;
pub mod body;
pub mod callback;
pub mod commands;
pub mod decision;
pub mod error;
pub mod event;
pub mod http;
pub mod tls;
