//! The version and the commit this build came from (embedded by `build.rs`; "unknown" when it
//! was built without git). Shown by `gatehouse --version`, in the startup log and as the
//! `gatehouse_build_info` metric; never in responses.

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short git commit, or "unknown".
pub const COMMIT: &str = env!("GATEHOUSE_COMMIT");
/// What `gatehouse --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GATEHOUSE_COMMIT"),
    ")"
);
