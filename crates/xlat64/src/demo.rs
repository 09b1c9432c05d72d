//! `xlat64 demo`: builds the lab, resolves and fetches through the gateway, tears down.

/// Runs the demo; returns the process exit code.
pub fn run_demo() -> i32 {
    todo!()
}
