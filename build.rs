//! Links the binaries (and the examples, so `bare_window` stays a fair
//! baseline) as position-dependent executables (`-no-pie`). A PIE binary
//! first has the dynamic loader apply its relative relocations (19,500 in
//! relayctl, 250,000 in relay-panel), writing every page of
//! `.data.rel.ro`: for a one-shot command that is 90 of its 380 page
//! faults at every run, for the window megabytes of memory it keeps.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-examples=-no-pie");
}
