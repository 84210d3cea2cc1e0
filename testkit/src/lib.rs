//! Test tools for Relay Panel, kept out of the product: a Mosquitto broker
//! run as a child process on a free loopback port ([`LocalMosquitto`]),
//! ejabberd's MQTT broker as one node or a cluster of child processes
//! ([`LocalEjabberd`]), and the chaos soak ([`soak`], also the
//! `relay-soak` binary). The tests and benchmarks of `relay-panel` use them
//! as a dev-dependency.

pub mod ejabberd;
pub mod mosquitto;
pub mod soak;

pub use ejabberd::LocalEjabberd;
pub use mosquitto::LocalMosquitto;
