use clap::Parser;

/// mimalloc instead of glibc's malloc: a request made ~80 small allocations when this was
/// chosen (~25 now), and glibc's malloc/free pair cost ~240 instructions each (a sixth of a
/// request's CPU under load);
/// mimalloc's thread-local free lists cost a fraction of that. See docs/performance.md and
/// `hookguard::alloc`.
#[global_allocator]
static ALLOCATOR: hookguard::alloc::Allocator = hookguard::alloc::Allocator;

fn main() -> std::process::ExitCode {
    // One crypto provider for every rustls user in the process (server, kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = hookguard::cli::Cli::parse();
    match hookguard::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // lint and translate choose their exit code (1: findings, 2: unreadable input).
        Err(e) => match e.downcast_ref::<hookguard::cli::lint::Exit>() {
            Some(exit) => std::process::ExitCode::from(exit.0),
            None => {
                eprintln!("hookguard: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
