//! Tests of the Nomad API test server itself: endpoint shapes, error texts, exec frame rules,
//! profile differences, faults, and a replay of every recorded 1.1.2 transcript.

mod acl;
mod cleanup;
mod client;
mod endpoints;
mod exec;
mod faults;
mod profiles;
mod replay;
