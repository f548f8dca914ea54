//! Link setting of the `orchestrator` binary.
//!
//! On Linux with glibc the binary is linked as a position-dependent executable (`-no-pie`).
//! A PIE build of this binary carries ~100 000 relative relocations over 1.5 MB of
//! `.data.rel.ro`; the dynamic loader writes every one of those pages before `main`, which is
//! ~420 copy-on-write page faults and 1–2 ms of every process start (the whole budget of a
//! developer command such as `orchestrator blob decode`). Without PIE the image sits at a fixed
//! address: the shared libraries, heap, stacks and mappings stay randomised, the executable's own
//! code does not. `ORCHESTRATOR_PIE=1` at build time keeps the toolchain's PIE default for
//! deployments whose hardening policy requires it. Figures and the trade-off:
//! `docs/da-encoding.md` ("A whole `orchestrator blob decode` process").

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ORCHESTRATOR_PIE");

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let keep_pie = std::env::var("ORCHESTRATOR_PIE").is_ok_and(|v| v == "1" || v == "true");

    // `-no-pie` is a flag of the C compiler driver that rustc links through on linux-gnu (gcc
    // or clang, whichever linker it then selects); other targets keep their defaults.
    let no_pie = target_os == "linux" && target_env == "gnu" && !keep_pie;
    if no_pie {
        println!("cargo:rustc-link-arg-bin=orchestrator=-no-pie");
    }
    // What was decided, for the test that checks the built binary against it.
    println!("cargo:rustc-env=ORCHESTRATOR_LINKED_NO_PIE={no_pie}");
}
