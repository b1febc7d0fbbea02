//! The `sluice` command: serve, check-config, send, replay, tail, forward; completions and man
//! pages generated from this definition (`sluice::manual`). Every subcommand a config
//! applies to takes it as `--config FILE` (or `SLUICE_CONFIG`); its options win over the file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use sluice::clock::Clock;
use sluice::config::defaults::LISTEN as DEFAULT_LISTEN;
use sluice::config::{Config, LogConfig, ENV_CONFIG_PATH};
use sluice::tail::{Format, Source, Start, TailOptions};
use sluice::time::parse_duration;

/// See the `mimalloc` feature in Cargo.toml for the measurement behind it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the config is when neither the command line nor `SLUICE_CONFIG` says.
const DEFAULT_CONFIG: &str = "config/sluice.toml";

use sluice::manual::examples::{
    EXAMPLES_CHECK_CONFIG, EXAMPLES_COMPLETIONS, EXAMPLES_MAN, EXAMPLES_MIGRATE, EXAMPLES_REPLAY,
    EXAMPLES_SEND, EXAMPLES_SERVE, EXAMPLES_TAIL,
};

#[derive(Parser)]
#[command(
    name = "sluice",
    // The version, the commit built from and the enabled cargo features (see build.rs).
    version = env!("SLUICEBUILD_VERSION"),
    about = "Alert ingestion and correlation gateway: monitoring events in, incidents out to Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    #[command(after_help = EXAMPLES_SERVE)]
    Serve {
        /// The config file.
        #[arg(long, env = ENV_CONFIG_PATH, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also write every ingest request to this file, in the format `sluice replay` reads.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Validate a config file (with SLUICE_* overrides applied) and report every problem.
    #[command(after_help = EXAMPLES_CHECK_CONFIG)]
    CheckConfig {
        /// The config file [default: $SLUICE_CONFIG, else config/sluice.toml].
        #[arg(value_name = "FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The config file (the same as FILE).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Post PagerDuty v2 test events to a running sluice.
    #[command(after_help = EXAMPLES_SEND)]
    Send {
        /// The config file of the sluice to post to: without --url, its server.listen.
        #[arg(long, env = ENV_CONFIG_PATH, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The sluice to post to (events go to its /v2/enqueue) [default: server.listen of
        /// --config, else http://127.0.0.1:8080]
        #[arg(long)]
        url: Option<String>,
        /// The routing key of every event.
        #[arg(long, default_value = "demo-service")]
        routing_key: String,
        /// Events to send.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Distinct dedup keys among them (event i uses key i % keys).
        #[arg(long, default_value_t = 1)]
        keys: u32,
        /// Distinct sources among them (key k is on source k % sources).
        #[arg(long, default_value_t = 1)]
        sources: u32,
        /// The event_action of every event.
        #[arg(long, default_value = "trigger", value_parser = ["trigger", "acknowledge", "resolve"])]
        action: String,
        /// The payload.severity of triggers.
        #[arg(long, default_value = "critical", value_parser = ["critical", "error", "warning", "info"])]
        severity: String,
        /// Prefix of the dedup keys.
        #[arg(long, default_value = "demo")]
        key_prefix: String,
    },
    /// Run a recorded request stream (JSON lines) through ingest and correlation on a simulated
    /// clock, without Kafka: every message to stdout, a summary to stderr.
    #[command(after_help = EXAMPLES_REPLAY)]
    Replay {
        /// The config file (its rules, windows and integration settings apply).
        #[arg(long, env = ENV_CONFIG_PATH, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// max, or a factor of real time (1 = as recorded).
        #[arg(long, default_value = "max")]
        speed: sluice::replay::Speed,
        /// Replay under two configs instead and print their noise reports side by side
        /// (incidents, pages, suppressed by mechanism, time to page, the largest incidents) and
        /// the incidents that differ; no messages.
        #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "speed")]
        compare: Option<Vec<PathBuf>>,
        /// The recorded requests, one JSON object per line, in arrival order.
        file: PathBuf,
    },
    /// Follow a topic and print one message per line: key, headers, JSON body.
    #[command(after_help = EXAMPLES_TAIL)]
    Tail {
        /// The config file: its kafka.brokers and kafka.topic where the options below leave them
        /// out, and its kafka.tls, kafka.sasl and kafka.properties.
        #[arg(long, env = ENV_CONFIG_PATH, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The Kafka bootstrap list, host:port[,host:port...] [default: kafka.brokers of --config]
        #[arg(long, env = "SLUICE_KAFKA_BROKERS")]
        brokers: Option<String>,
        /// The topic to follow [default: kafka.topic of --config, else sluice.incidents]
        #[arg(long)]
        topic: Option<String>,
        /// beginning, end, or an offset.
        #[arg(long, default_value = "beginning")]
        from: Start,
        /// Exit after this long without a message, e.g. 3s (default: follow forever).
        #[arg(long, value_parser = parse_duration)]
        idle_exit: Option<Duration>,
        /// Exit after this many messages.
        #[arg(long)]
        max: Option<u64>,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: Format,
        /// Print repeated messages too: by default a message with the incident_id and seq of
        /// one already printed (a repeat after a correlator restart) is skipped.
        #[arg(long)]
        repeats: bool,
    },
    /// Deliver incident messages from the topic to webhooks, Slack and PagerDuty ([[receivers]]).
    #[command(after_help = sluice::deliver::EXAMPLES)]
    Forward {
        /// The config file: its [kafka], [deliver] and [[receivers]].
        #[arg(long, env = ENV_CONFIG_PATH, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Move Kafka mode's state to another partition count (or topics, or cluster), keeping every
    /// open alert and incident.
    #[command(after_help = EXAMPLES_MIGRATE)]
    Migrate {
        /// The config the correlators ran with (their events topic, state topic and group).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The config to run next: its pipeline.partitions, events_topic, state_topic, group_id.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Check integration definitions (<kind>.toml) and run their fixtures (<kind>/<case>.*).
    CheckIntegration(sluice::ingest::integrations::check::CheckArgs),
    /// Print a shell completion script, generated from this command line.
    #[command(after_help = EXAMPLES_COMPLETIONS)]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: sluice::manual::Shell,
    },
    /// Print the man page (roff) of sluice or of one subcommand, or write every page to a folder.
    #[command(after_help = EXAMPLES_MAN)]
    Man {
        /// The subcommand whose page to print (sluice-<SUBCOMMAND>(1)) [default: sluice(1)]
        subcommand: Option<String>,
        /// Write every page (sluice.1 and one sluice-<subcommand>.1 each) into this folder.
        #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            sluice::manual::completions(shell, Cli::command(), &mut std::io::stdout().lock());
            ExitCode::SUCCESS
        }
        Command::Man { subcommand, dir } => man(subcommand, dir),
        Command::CheckIntegration(args) => args.run(),
        Command::Serve { config, record } => serve(config, record),
        Command::Migrate { from, to } => migrate(&from, &to),
        Command::Forward { config } => match load_named(&config) {
            Ok((_, config)) => {
                config.log.install();
                runtime().block_on(sluice::deliver::until_signal(config))
            }
            Err(code) => code,
        },
        Command::CheckConfig { file, config } => {
            // The environment only when the command line names no file (clap would take an
            // env value for --config as conflicting with FILE).
            let path = file.or(config).unwrap_or_else(|| {
                std::env::var_os(ENV_CONFIG_PATH)
                    .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from)
            });
            check_config(&path)
        }
        Command::Send {
            config,
            url,
            routing_key,
            count,
            keys,
            sources,
            action,
            severity,
            key_prefix,
        } => {
            let config = match config.map(|p| load_named(&p)).transpose() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let listen = config.map_or_else(
                || {
                    DEFAULT_LISTEN
                        .parse()
                        .expect("the default listen address parses")
                },
                |(_, c)| c.server.listen,
            );
            let url = url.unwrap_or_else(|| sluice::send::url_of(listen));
            let storm = sluice::send::Storm {
                url,
                routing_key,
                count,
                keys: keys.max(1),
                sources: sources.max(1),
                action,
                severity,
                key_prefix,
            };
            runtime().block_on(storm.send())
        }
        Command::Replay {
            compare: Some(configs),
            file,
            ..
        } => replay_compare(&configs, file),
        Command::Replay {
            config,
            speed,
            file,
            compare: None,
        } => replay(config, speed, file),
        Command::Tail {
            config,
            brokers,
            topic,
            from,
            idle_exit,
            max,
            format,
            repeats,
        } => {
            let config = match config.map(|p| load_named(&p)).transpose() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let kafka = config.as_ref().map(|(p, c)| (p.as_path(), &c.kafka));
            let source = match Source::resolve(brokers, topic, kafka) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tail: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = TailOptions {
                source,
                start: from,
                idle_exit,
                max_messages: max,
                format,
                repeats,
            };
            match sluice::tail::tail(&opts, &mut std::io::stdout().lock()) {
                Ok(n) => {
                    eprintln!("{n} message(s) from {}", opts.source.topic);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tail {}: {e}", opts.source.topic);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `sluice man`: one page to stdout, or every page into `dir`.
fn man(subcommand: Option<String>, dir: Option<PathBuf>) -> ExitCode {
    if let Some(dir) = dir {
        return match sluice::manual::write_pages(Cli::command(), &dir) {
            Ok(files) => {
                eprintln!("{} page(s) written to {}", files.len(), dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    let pages = sluice::manual::pages(Cli::command());
    let wanted = subcommand.map_or_else(|| "sluice.1".into(), |s| format!("sluice-{s}.1"));
    let Some(page) = pages.iter().find(|p| p.file == wanted) else {
        let names: Vec<&str> = pages[1..]
            .iter()
            .filter_map(|p| p.file.strip_prefix("sluice-")?.strip_suffix(".1"))
            .collect();
        eprintln!("no page {wanted}: the subcommands are {}", names.join(", "));
        return ExitCode::from(2);
    };
    match sluice::manual::render(page, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn replay(config_path: PathBuf, speed: sluice::replay::Speed, file: PathBuf) -> ExitCode {
    let config = match load_config(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            return ExitCode::from(2);
        }
    };
    LogConfig::warnings_only().install();
    let input = match std::fs::File::open(&file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = runtime().block_on(sluice::replay::run(&config, input, speed, &mut out));
    let _ = std::io::Write::flush(&mut out);
    match result {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// `replay --compare A B FILE`: both noise reports, side by side.
fn replay_compare(configs: &[PathBuf], file: PathBuf) -> ExitCode {
    let mut loaded = Vec::new();
    for path in configs {
        match load_config(path) {
            Ok(c) => loaded.push((path.display().to_string(), c)),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    LogConfig::warnings_only().install();
    let lines: Vec<String> = match std::fs::read_to_string(&file) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let [(a_name, a), (b_name, b)] = &loaded[..] else {
        unreachable!("clap takes exactly two configs")
    };
    let report = runtime().block_on(sluice::replay::compare::compare(
        (a_name, a),
        (b_name, b),
        &lines,
    ));
    match report {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// `migrate --from OLD --to NEW`.
fn migrate(from: &std::path::Path, to: &std::path::Path) -> ExitCode {
    let (Ok((_, old)), Ok((_, new))) = (load_named(from), load_named(to)) else {
        return ExitCode::from(2);
    };
    old.log.install();
    let mut report = std::io::stderr();
    match runtime().block_on(sluice::pipeline::kafka::migrate(&old, &new, &mut report)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config`: every problem, or a line naming what the config says.
fn check_config(path: &std::path::Path) -> ExitCode {
    match load_config(path) {
        Ok(c) => {
            println!(
                "{}: ok (listen {}, brokers {}, topic {}, {} rule(s))",
                path.display(),
                c.server.listen,
                c.kafka.brokers,
                c.kafka.topic,
                c.correlate.rules.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    #[cfg(feature = "mimalloc")]
    let on_idle: Option<fn()> = Some(|| {
        // SAFETY: `mi_collect` takes no pointer and has no precondition: it returns what the
        // calling thread's heap freed (`sluice::runtime` says why, and what it saves).
        unsafe { libmimalloc_sys::mi_collect(false) }
    });
    #[cfg(not(feature = "mimalloc"))]
    let on_idle = None;
    sluice::runtime::build(on_idle)
}

fn serve(path: PathBuf, record: Option<PathBuf>) -> ExitCode {
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    config.log.install();
    runtime().block_on(async move {
        let mut signals = Signals::install();
        let running =
            match sluice::app::start_recording(config, Clock::system(), record.as_deref()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "sluice could not start");
                    return ExitCode::FAILURE;
                }
            };
        let signal = signals.wait(&running, &path).await;
        tracing::info!(signal, "shutting down");
        running.shutdown();
        let report = running.wait().await;
        if !report.clean() {
            tracing::error!(
                connections_cut = report.connections_cut,
                messages_undelivered = report.messages_undelivered,
                shards_unfinished = report.shards_unfinished,
                "shutdown did not finish within server.shutdown_grace"
            );
            return ExitCode::FAILURE;
        }
        tracing::info!("shutdown complete: every accepted event's incident was delivered");
        ExitCode::SUCCESS
    })
}

/// The signals `serve` answers, installed before sluice starts (until a handler is installed,
/// SIGTERM, SIGINT and SIGHUP kill the process undrained): SIGTERM and SIGINT shut down and
/// drain; SIGHUP reloads the config file (see `sluice::app::Reloader`).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler installs"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler installs"),
            hup: signal(SignalKind::hangup()).expect("SIGHUP handler installs"),
        }
    }

    /// Waits for SIGTERM or SIGINT, and names it; reloads `path` on every SIGHUP and
    /// `POST /-/reload` meanwhile.
    async fn wait(
        &mut self,
        running: &sluice::app::Running,
        path: &std::path::Path,
    ) -> &'static str {
        let mut asked = running.reload_requests();
        loop {
            tokio::select! {
                _ = self.term.recv() => return "SIGTERM",
                _ = self.int.recv() => return "SIGINT",
                _ = self.hup.recv() => {
                    let _ = reload(running, path, "SIGHUP");
                }
                Some(reply) = async { asked.as_mut()?.recv().await }, if asked.is_some() => {
                    let _ = reply.send(reload(running, path, "POST /-/reload"));
                }
            }
        }
    }
}

/// Reads `path` again and hands it to `running`; the sections needing a restart, or the
/// problems of a file that does not validate (the running configuration then stays).
fn reload(
    running: &sluice::app::Running,
    path: &std::path::Path,
    by: &'static str,
) -> Result<Vec<String>, String> {
    match load_config(path) {
        Ok(config) => {
            let done = running.reload(config);
            tracing::info!(
                by,
                rules = done.rules,
                auth_and_integrations = done.auth_and_integrations,
                limits = done.limits,
                "configuration reloaded"
            );
            if !done.need_restart.is_empty() {
                tracing::warn!(
                    sections = %done.need_restart.join(", "),
                    "these sections changed and take effect at the next start"
                );
            }
            Ok(done.need_restart.iter().map(|s| s.to_string()).collect())
        }
        Err(e) => {
            running.reload_failed();
            tracing::error!(by, error = %e, "configuration not reloaded; the running one stays");
            Err(e.to_string())
        }
    }
}

/// The config a client subcommand was pointed at, or its problems on stderr and exit code 2.
fn load_named(path: &std::path::Path) -> Result<(PathBuf, Config), ExitCode> {
    match load_config(path) {
        Ok(c) => Ok((path.to_path_buf(), c)),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Err(ExitCode::from(2))
        }
    }
}

/// Reads and validates the config file, the formats' own integration settings included, with
/// `SLUICE_*` overrides from the environment.
fn load_config(path: &std::path::Path) -> Result<Config, sluice::config::ConfigError> {
    Config::load_with(
        path,
        std::env::vars(),
        sluice::ingest::integrations::settings::check,
    )
}
