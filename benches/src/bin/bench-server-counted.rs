//! `bench-server` under a counting global allocator (feature `count-allocs`): the same servers,
//! with the allocation counters printed on stderr at start, on `SIGUSR1` and at exit.
//!
//! The counter is `stats_alloc`'s instrumented `System` allocator, so this crate needs no
//! `unsafe` of its own.

use std::alloc::System;

use omnirelay_benches::AllocCounters;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn snapshot() -> AllocCounters {
    let stats = GLOBAL.stats();
    AllocCounters {
        allocations: stats.allocations as u64,
        reallocations: stats.reallocations as u64,
        bytes_allocated: stats.bytes_allocated as u64,
    }
}

fn main() -> std::process::ExitCode {
    omnirelay_benches::servers::main(Some(snapshot))
}
