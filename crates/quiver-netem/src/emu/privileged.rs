//! Tests that need namespaces: one decision point for "run, skip, or fail".
//!
//! A test that needs root (namespaces, veths, tc) calls [`privileged_test`] first and
//! returns early when it says `false`. On a developer machine without privileges the test
//! then prints `SKIPPED` and passes. CI exports [`REQUIRE_PRIVILEGED_VAR`]`=1`: there a
//! missing privilege is a failure, so a green CI run proves the emulated tests ran.

use super::cmd::{check_environment, run};
use super::topology::PREFIX;

/// Environment variable under which [`privileged_test`] panics instead of skipping
/// (any value except empty and `0`). `.ci/run` sets it.
pub const REQUIRE_PRIVILEGED_VAR: &str = "QUIVER_REQUIRE_PRIVILEGED";

/// Whether namespaces can be created here: the privilege and tool check of
/// [`check_environment`], then an actual `ip netns add`/`del` of a probe namespace.
pub fn probe_namespaces() -> std::result::Result<(), String> {
    check_environment().map_err(|e| e.to_string())?;
    // Unique per call: tests of one process probe concurrently (one name per process
    // made the second `ip netns add` fail with "File exists" and the test fail or skip).
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("{PREFIX}-{}-probe{n}", std::process::id());
    run("ip", &["netns", "add", &probe])
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let _ = run("ip", &["netns", "del", &probe]);
    Ok(())
}

/// Whether the test named `test` can run here ([`probe_namespaces`]).
///
/// When it cannot: prints `SKIPPED: <test>: <why>` and returns `false`, unless
/// [`REQUIRE_PRIVILEGED_VAR`] is set, in which case it panics (the test fails).
pub fn privileged_test(test: &str) -> bool {
    decide(test, probe_namespaces(), required())
}

/// Whether [`REQUIRE_PRIVILEGED_VAR`] is set to something other than empty or `0`.
pub fn required() -> bool {
    std::env::var(REQUIRE_PRIVILEGED_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn decide(test: &str, probe: std::result::Result<(), String>, required: bool) -> bool {
    match probe {
        Ok(()) => true,
        Err(why) if required => {
            panic!("{test}: cannot run ({why}) and {REQUIRE_PRIVILEGED_VAR} forbids skipping")
        }
        Err(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_environment_runs() {
        assert!(decide("t", Ok(()), false));
        assert!(decide("t", Ok(()), true));
    }

    #[test]
    fn missing_privilege_skips_when_not_required() {
        assert!(!decide("t", Err("no root".into()), false));
    }

    #[test]
    #[should_panic(expected = "QUIVER_REQUIRE_PRIVILEGED forbids skipping")]
    fn missing_privilege_fails_when_required() {
        decide("t", Err("no root".into()), true);
    }

    /// Concurrent probes in one process must not collide on the namespace name.
    #[test]
    fn concurrent_probes_do_not_collide() {
        if !super::privileged_test("concurrent_probes_do_not_collide") {
            return;
        }
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(super::probe_namespaces))
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
    }
}
