use clap::Parser;

fn main() -> std::process::ExitCode {
    // One crypto provider for every rustls user in the process (server, kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = hookguard::cli::Cli::parse();
    match hookguard::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookguard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
