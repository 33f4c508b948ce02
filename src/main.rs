//! The `redlock` program: all of it is the library's `main` (src/lib.rs).

/// The README builds redlock against musl, whose start-up asks the CPU nothing (glibc's asks it
/// about its caches some fifty times, and each CPUID traps to the hypervisor in a virtual
/// machine); but musl's allocator unmaps freed memory at once, and that churn cost more than
/// the start-up saved. dlmalloc keeps what it has (see BENCHMARKS.md).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    redlock_cli::main()
}
