//! Allocator tuning for the `orchestrator` daemon.
//!
//! glibc's malloc keeps one arena per thread that allocated (up to 8 per core) and raises its
//! mmap threshold after large frees, so the megabytes a SNOS run or a 6-blob settlement
//! allocate stay resident in per-thread pools long after they are freed
//! (`docs/performance.md`, "Memory": a 152 MiB peak with glibc's defaults, 113 MiB with the two
//! settings below). [`tune`] limits malloc to two arenas, which serve the daemon's few busy
//! threads, and sends allocations of 128 KiB and more (blobs, PIEs, state diffs) straight to
//! mmap, so they go back to the kernel when freed.
//!
//! An operator's own `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` wins:
//! glibc applied it when the process started, and [`tune`] leaves that setting alone.

/// The number of malloc arenas [`tune`] sets.
pub const ARENA_MAX: i32 = 2;

/// The allocation size from which [`tune`] makes malloc use mmap, in bytes.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// What [`tune`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuned {
    /// The arena limit was set to [`ARENA_MAX`].
    pub arena_max: bool,
    /// The mmap threshold was set to [`MMAP_THRESHOLD`].
    pub mmap_threshold: bool,
}

/// Applies the settings described in the crate docs, except those the operator set through
/// the environment; returns what it changed. Call it first thing in `main`, before any
/// thread is spawned. Does nothing off glibc.
#[must_use = "says what was changed"]
pub fn tune() -> Tuned {
    tune_with(|var| std::env::var_os(var).is_some())
}

fn tune_with(set_by_operator: impl Fn(&str) -> bool) -> Tuned {
    if set_by_operator("GLIBC_TUNABLES") {
        return Tuned::default();
    }
    Tuned {
        arena_max: !set_by_operator("MALLOC_ARENA_MAX") && mallopt(Param::ArenaMax, ARENA_MAX),
        mmap_threshold: !set_by_operator("MALLOC_MMAP_THRESHOLD_")
            && mallopt(Param::MmapThreshold, MMAP_THRESHOLD),
    }
}

#[derive(Debug, Clone, Copy)]
enum Param {
    ArenaMax,
    MmapThreshold,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt(param: Param, value: i32) -> bool {
    let param = match param {
        Param::ArenaMax => libc::M_ARENA_MAX,
        Param::MmapThreshold => libc::M_MMAP_THRESHOLD,
    };
    // SAFETY: `mallopt` only changes malloc's parameters, takes no pointer and is safe to call
    // at any time (glibc serialises it with its arenas); it returns 0 and keeps the previous
    // value when it refuses one.
    unsafe { libc::mallopt(param, value) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn mallopt(_param: Param, _value: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_setting_is_left_alone() {
        let only = |name: &'static str| move |var: &str| var == name;
        let arena = tune_with(only("MALLOC_ARENA_MAX"));
        assert!(!arena.arena_max);
        let mmap = tune_with(only("MALLOC_MMAP_THRESHOLD_"));
        assert!(!mmap.mmap_threshold);
        assert_eq!(tune_with(only("GLIBC_TUNABLES")), Tuned::default());
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_both_settings() {
        assert_eq!(tune_with(|_| false), Tuned { arena_max: true, mmap_threshold: true });
    }
}
