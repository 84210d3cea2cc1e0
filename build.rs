//! Links `relayctl` as a position-dependent executable (`-no-pie`): a
//! one-shot command pays for its start at every run, and a PIE binary
//! first has the dynamic loader apply its ~19,500 relative relocations,
//! writing ~80 pages of `.data.rel.ro` (90 of its 380 page faults).
//! Nothing else is linked differently.
fn main() {
    println!("cargo:rustc-link-arg-bin=relayctl=-no-pie");
}
