//! What setting up shared memory costs: `memfd_create` + `ftruncate` +
//! `mmap` + seals (+ `mlock`), then a first write to every page, then
//! unmap and close. Sizes 4 KiB, 1 MiB and 64 MiB, with and without mlock.
//!
//! Kept short on purpose (small samples): the whole run takes well under a
//! minute. `cargo bench -p shmem-seal --bench create_map_touch`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use shmem_seal::MemfdBuilder;

const PAGE: usize = 4096;

fn create_map_touch(len: usize, mlock: bool) {
    let mem = MemfdBuilder::new("bench")
        .mlock(mlock)
        .create(len)
        .expect("create");
    let base = mem.as_ptr().as_ptr();
    for offset in (0..len).step_by(PAGE) {
        // SAFETY: `offset < mem.len()`, and the mapping is ours, read-write
        // and sealed against shrinking.
        unsafe { base.add(offset).write_volatile(1) };
    }
    black_box(&mem);
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_map_touch");
    group
        .sample_size(10)
        // Flat sampling: the 64 MiB case takes ~50 ms an iteration, too
        // long for criterion's linear ramp in a short run.
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (label, len) in [("4KiB", 4 << 10), ("1MiB", 1 << 20), ("64MiB", 64 << 20)] {
        group.throughput(Throughput::Bytes(len as u64));
        for mlock in [false, true] {
            if mlock {
                // mlock may be refused (RLIMIT_MEMLOCK without
                // CAP_IPC_LOCK): say so rather than panic mid-run.
                if let Err(e) = MemfdBuilder::new("probe").mlock(true).create(len) {
                    eprintln!("skipping {label} with mlock: {e}");
                    continue;
                }
            }
            let id = BenchmarkId::new(if mlock { "mlock" } else { "plain" }, label);
            group.bench_with_input(id, &len, |b, &len| b.iter(|| create_map_touch(len, mlock)));
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
