//! Conformance checks of [`LockClient`]: each takes a fresh lock store.
//!
//! Expiry is mostly checked with a zero TTL (expired on arrival); one check waits for a real
//! one-second TTL to run out.

use orchestrator_utils::Retryable;
use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;

use super::Fixture;
use crate::core::client::lock::{LockClient, LockError, LockValue};

/// Generates one `#[tokio::test]` per lock conformance check; `$make` as for
/// [`crate::database_conformance_tests!`], yielding an `Arc<dyn LockClient>` (or a pair with a
/// guard).
#[macro_export]
macro_rules! lock_conformance_tests {
    ($make:expr) => {
        $crate::lock_conformance_tests!(@list tests [$make]);
    };
    (@list $mode:ident [$($arg:tt)*]) => {
        $crate::lock_conformance_tests!(@$mode [$($arg)*] {
            acquire_returns_the_lock,
            held_lock_cannot_be_acquired,
            expired_lock_is_free,
            release_checks_the_owner,
            release_or_extend_of_an_expired_lock_is_not_held,
            extend_checks_the_owner_and_pushes_expiry,
            lock_values_round_trip_and_keys_are_independent,
            concurrent_acquires_have_one_winner,
            lock_expires_with_time,
        });
    };
    (@tests [$make:expr] { $($name:ident),* $(,)? }) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture: $crate::core::client::conformance::Fixture<
                    dyn $crate::core::client::LockClient,
                > = ($make).await.into();
                $crate::core::client::conformance::run_check(
                    stringify!($name),
                    $crate::core::client::conformance::lock::$name(fixture.client.clone()),
                )
                .await;
                drop(fixture);
            }
        )*
    };
    (@run [$make:expr] { $($name:ident),* $(,)? }) => {
        $(
            let fixture: $crate::core::client::conformance::Fixture<
                dyn $crate::core::client::LockClient,
            > = ($make).await.into();
            $crate::core::client::conformance::run_check(
                stringify!($name),
                $crate::core::client::conformance::lock::$name(fixture.client.clone()),
            )
            .await;
            drop(fixture);
        )*
    };
}

/// Runs every lock check, each on a fresh lock store from `make`.
///
/// # Panics
/// On the first violated check, naming it.
pub async fn lock_conformance<F, Fut, T>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: Into<Fixture<dyn LockClient>>,
{
    crate::lock_conformance_tests!(@list run [make()]);
}

type Locks = Arc<dyn LockClient>;

const MINUTE: Duration = Duration::from_secs(60);
const EXPIRED: Duration = Duration::ZERO;

fn value() -> LockValue {
    LockValue::String("worker-1".to_owned())
}

/// Acquiring a free lock returns it with the given value, owner and expiry.
pub async fn acquire_returns_the_lock(locks: Locks) {
    assert_eq!(locks.get_lock("k").await.expect("get"), None);
    assert!(!locks.is_locked("k").await.expect("is_locked"));
    let before = Utc::now();
    let info = locks.acquire_lock("k", value(), MINUTE, Some("a")).await.expect("acquire");
    assert_eq!((info.key.as_str(), &info.value, info.owner.as_deref()), ("k", &value(), Some("a")));
    let slack = chrono::Duration::seconds(2);
    assert!(info.created_at >= before - slack && info.created_at <= Utc::now() + slack);
    let expected = info.created_at + chrono::Duration::seconds(60);
    assert!((info.expires_at - expected).abs() <= slack, "{info:?}");
    assert_eq!(locks.get_lock("k").await.expect("get"), Some(info));
    assert!(locks.is_locked("k").await.expect("is_locked"));
    let ttl = locks.get_lock_ttl("k").await.expect("ttl").expect("held");
    assert!(ttl > Duration::from_secs(55) && ttl <= MINUTE, "{ttl:?}");
}

/// A live lock cannot be taken again, by another owner, the same owner or no owner; the
/// error is retryable and the lock is unchanged.
pub async fn held_lock_cannot_be_acquired(locks: Locks) {
    let held = locks.acquire_lock("k", value(), MINUTE, Some("a")).await.expect("acquire");
    for owner in [Some("b"), Some("a"), None] {
        let err = locks
            .acquire_lock("k", LockValue::Number(2), MINUTE, owner)
            .await
            .expect_err("held lock must not be acquired");
        assert!(
            matches!(&err, LockError::AlreadyHeld { key, .. } if key == "k"),
            "{owner:?}: {err:?}"
        );
        assert!(err.is_retryable());
    }
    assert_eq!(locks.get_lock("k").await.expect("get"), Some(held));
}

/// A lock whose TTL ran out counts as free: not reported, and anyone may take it.
pub async fn expired_lock_is_free(locks: Locks) {
    locks.acquire_lock("k", value(), EXPIRED, Some("a")).await.expect("acquire expired");
    assert_eq!(locks.get_lock("k").await.expect("get"), None);
    assert!(!locks.is_locked("k").await.expect("is_locked"));
    assert_eq!(locks.get_lock_ttl("k").await.expect("ttl"), None);
    let taken = locks
        .acquire_lock("k", LockValue::Boolean(true), MINUTE, Some("b"))
        .await
        .expect("take over");
    assert_eq!((taken.owner.as_deref(), &taken.value), (Some("b"), &LockValue::Boolean(true)));
    assert_eq!(locks.get_lock("k").await.expect("get").and_then(|l| l.owner), Some("b".to_owned()));
}

/// Release with an owner only works for that owner; without an owner it releases any holder;
/// releasing a free lock is `NotHeld`.
pub async fn release_checks_the_owner(locks: Locks) {
    locks.acquire_lock("k", value(), MINUTE, Some("a")).await.expect("acquire");
    let err = locks.release_lock("k", Some("b")).await.expect_err("wrong owner");
    assert!(matches!(&err, LockError::NotHeld { key, .. } if key == "k"), "{err:?}");
    assert!(locks.is_locked("k").await.expect("still held"));
    locks.release_lock("k", Some("a")).await.expect("release by owner");
    assert!(!locks.is_locked("k").await.expect("released"));
    let err = locks.release_lock("k", Some("a")).await.expect_err("already released");
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
    locks.acquire_lock("k", value(), MINUTE, Some("a")).await.expect("acquire again");
    locks.release_lock("k", None).await.expect("release without owner");
    assert!(!locks.is_locked("k").await.expect("released"));
    let err = locks.release_lock("never", None).await.expect_err("never held");
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
}

/// An expired lock is not held: releasing or extending it is `NotHeld`.
pub async fn release_or_extend_of_an_expired_lock_is_not_held(locks: Locks) {
    locks.acquire_lock("k", value(), EXPIRED, Some("a")).await.expect("acquire expired");
    let err = locks.extend_lock("k", Some("a"), MINUTE).await.expect_err("extend expired");
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
    assert!(!locks.is_locked("k").await.expect("still free"));
    let err = locks.release_lock("k", Some("a")).await.expect_err("release expired");
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
    locks.acquire_lock("k", value(), MINUTE, Some("b")).await.expect("free for others");
}

/// Extending pushes the expiry to now + TTL for the owner (or anyone without an owner);
/// another owner or a missing lock is `NotHeld`.
pub async fn extend_checks_the_owner_and_pushes_expiry(locks: Locks) {
    let held = locks.acquire_lock("k", value(), MINUTE, Some("a")).await.expect("acquire");
    let extended = locks.extend_lock("k", Some("a"), MINUTE * 10).await.expect("extend");
    assert!(extended.expires_at > held.expires_at + chrono::Duration::seconds(500), "{extended:?}");
    assert_eq!(
        (&extended.key, &extended.value, &extended.owner),
        (&held.key, &held.value, &held.owner)
    );
    assert_eq!(locks.get_lock("k").await.expect("get"), Some(extended.clone()));
    let ttl = locks.get_lock_ttl("k").await.expect("ttl").expect("held");
    assert!(ttl > MINUTE * 9, "{ttl:?}");
    let err = locks.extend_lock("k", Some("b"), MINUTE * 20).await.expect_err("wrong owner");
    assert!(matches!(&err, LockError::NotHeld { key, .. } if key == "k"), "{err:?}");
    assert_eq!(locks.get_lock("k").await.expect("get"), Some(extended));
    locks.extend_lock("k", None, MINUTE).await.expect("extend without owner");
    let err = locks.extend_lock("missing", Some("a"), MINUTE).await.expect_err("missing");
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
}

/// Every value kind round-trips; locks under different keys do not interfere.
pub async fn lock_values_round_trip_and_keys_are_independent(locks: Locks) {
    let values = [
        ("s", LockValue::String("x".to_owned())),
        ("n", LockValue::Number(-42)),
        ("b", LockValue::Boolean(false)),
        ("j", LockValue::Json(serde_json::json!({"batch": 7, "tags": ["a", "b"]}))),
    ];
    for (key, v) in &values {
        locks.acquire_lock(key, v.clone(), MINUTE, None).await.expect("acquire");
    }
    for (key, v) in &values {
        let info = locks.get_lock(key).await.expect("get").expect("held");
        assert_eq!((&info.value, info.owner.as_deref()), (v, None), "{key}");
    }
    locks.release_lock("n", None).await.expect("release n");
    assert!(!locks.is_locked("n").await.expect("n free"));
    assert!(locks.is_locked("s").await.expect("s held"));
}

/// Concurrent acquires of one free lock: exactly one wins.
pub async fn concurrent_acquires_have_one_winner(locks: Locks) {
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let locks = locks.clone();
            tokio::spawn(async move {
                locks
                    .acquire_lock("race", LockValue::Number(i), MINUTE, Some(&format!("owner-{i}")))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.expect("racer panicked") {
            Ok(info) => winners.push(info.owner),
            Err(LockError::AlreadyHeld { .. }) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        locks.get_lock("race").await.expect("get").map(|l| l.owner),
        Some(winners[0].clone())
    );
}

/// A real TTL runs out by itself.
pub async fn lock_expires_with_time(locks: Locks) {
    locks.acquire_lock("k", value(), Duration::from_secs(1), Some("a")).await.expect("acquire");
    assert!(locks.is_locked("k").await.expect("held"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(!locks.is_locked("k").await.expect("expired"));
    locks.acquire_lock("k", value(), MINUTE, Some("b")).await.expect("take over after expiry");
}
