//! Test tools for Relay Panel, kept out of the product: a Mosquitto broker
//! run as a child process on a free loopback port ([`LocalMosquitto`]), and
//! the chaos soak ([`soak`], also the `relay-soak` binary). The tests and
//! benchmarks of `relay-panel` use them as a dev-dependency.

pub mod mosquitto;
pub mod soak;

pub use mosquitto::LocalMosquitto;
