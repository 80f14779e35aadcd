//! `warden-sentinel [config-file] [--directive value …]`, as `redis-sentinel` is started.

use std::process::ExitCode;

use common::config::{parse_command_line, read_file};
use sentinel::config::Config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-v" | "--version")) {
        println!("warden-sentinel v={}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!(
            "Usage: warden-sentinel [/path/to/sentinel.conf] [--directive value ...]\n\nExample:\n  warden-sentinel sentinel.conf --port 26380 --raft-id 2"
        );
        return ExitCode::SUCCESS;
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
            return ExitCode::FAILURE;
        }
    };
    // Colour codes help on a terminal and garble log files and journald; tracing-subscriber
    // honours NO_COLOR. Set here, before any other thread exists.
    if !std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none()
    {
        std::env::set_var("NO_COLOR", "1");
    }
    let _ = common::telemetry::init("info,raft=warn", None);
    // raft-rs reports broken invariants by panicking; a supervisor in that state must stop,
    // not limp on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(3);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("warden-sentinel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &[String]) -> Result<Config, common::config::ConfigError> {
    let cmd = parse_command_line(args)?;
    let mut lines = match &cmd.file {
        Some(path) => read_file(path)?,
        None => Vec::new(),
    };
    lines.extend(cmd.overrides);
    Config::from_lines(&lines)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for ip in &config.bind {
        let listener = tokio::net::TcpListener::bind((*ip, config.port))
            .await
            .map_err(|e| anyhow::anyhow!("can't listen on {ip}:{}: {e}", config.port))?;
        clients.push(listener);
    }
    let mut http = Vec::new();
    if config.http_port != 0 {
        for ip in &config.bind {
            let listener =
                tokio::net::TcpListener::bind((*ip, config.http_port)).await.map_err(|e| {
                    anyhow::anyhow!("can't listen on {ip}:{} (http-port): {e}", config.http_port)
                })?;
            http.push(listener);
        }
    }
    let raft_ip = config
        .peers
        .iter()
        .find(|p| p.id == config.raft_id)
        .map(|p| p.addr.ip())
        .expect("validated");
    let raft = tokio::net::TcpListener::bind((raft_ip, config.raft_port)).await.map_err(|e| {
        anyhow::anyhow!("can't listen for raft peers on {raft_ip}:{}: {e}", config.raft_port)
    })?;
    tracing::info!(
        port = config.port,
        raft_port = config.raft_port,
        http_port = config.http_port,
        "Ready to accept connections tcp"
    );
    let (trigger, stop) = common::shutdown::channel();
    tokio::spawn(async move {
        let _ = common::shutdown::signal().await;
        trigger.fire();
    });
    sentinel::supervisor::run_with_http(config, clients, http, raft, stop).await
}
