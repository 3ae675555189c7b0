//! The `rampart` binary: command line and wiring. Each subcommand lives in its own module; no logic of the
//! product lives here, only the assembly of the crates.

mod demo;
mod detection;
mod evaluate;
mod events_cmd;
mod inventory_cmd;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc: per-thread free lists suit the thread-per-core workers, and inspection allocates many small,
/// short-lived values per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  rampart demo                                   sample API behind the gateway on 127.0.0.1:8080
  rampart run --upstream http://127.0.0.1:3000   protect one app with embedded defaults
  rampart run --config rampart.toml              run with a config file (reloads on change and SIGHUP)
  rampart check --config rampart.toml            validate a config file (exit 1 on errors)
  rampart eval ../shared/corpus/*.jsonl          detection rates of the request pipeline over corpora
  rampart events tail -f                         follow blocked and monitored requests as they happen
  rampart events query --since 1h --class sqli   SQL injection events of the last hour
  printf 'GET /?q=1%27%20or%201=1-- HTTP/1.1\r\nHost: x\r\n\r\n' | rampart explain -
                                                 verdict and findings for one raw request";

#[derive(Parser)]
#[command(name = "rampart", version, about = "API security gateway: reverse proxy, attack detection, abuse protection", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    #[command(
        after_help = "Without --config: one catch-all route in block mode in front of --upstream,\n\
                            listening on --listen, console on 127.0.0.1:9901, data in ./rampart-data."
    )]
    Run {
        /// Config file (TOML). Reloaded when it changes and on SIGHUP.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Upstream base URL when running without a config file.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        upstream: String,
        /// Listen address; overrides the first listener of the config file.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file: every error with file, line, column and a hint. Exit 1 on errors.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the request pipeline in-process over labelled corpora (JSONL) and report detection rates.
    Eval {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Write the false negatives and false positives (with findings) to this JSONL file.
        #[arg(long)]
        misses: Option<PathBuf>,
        #[arg(required = true)]
        corpora: Vec<PathBuf>,
    },
    /// Read one raw HTTP request (file, or - for stdin) and print the verdict and every finding.
    Explain {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        file: Option<PathBuf>,
    },
    /// Read recorded events and alerts (the SQLite event store).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// OpenAPI contracts.
    Openapi {
        #[command(subcommand)]
        command: OpenapiCommand,
    },
    /// Start a built-in sample JSON API behind the gateway (127.0.0.1:8080, console 127.0.0.1:9901).
    Demo {
        /// Gateway address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Console address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        console: String,
    },
}

/// Where the event store is, shared by the `events` subcommands.
#[derive(clap::Args)]
struct StoreArgs {
    /// The SQLite events database (default: the config's sqlite sink, or ./rampart-data/events.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Config file whose sqlite sink to read.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum OpenapiCommand {
    /// Load and compile a spec as a route would (OpenAPI 3.0 or 3.1, JSON or YAML, relative $refs):
    /// prints its operations, or the error with its file. Exit 1 on errors.
    #[command(after_help = "Example:\n  rampart openapi validate api/openapi.yaml")]
    Validate { spec: PathBuf },
    /// The API inventory learned from traffic, as an OpenAPI 3.1 document (JSON on stdout).
    #[command(after_help = "Examples:\n  rampart openapi export > discovered.json\n  \
                            rampart openapi export --host api.example.com --config rampart.toml")]
    Export {
        #[command(flatten)]
        inventory: InventoryArgs,
    },
    /// Traffic against a spec: shadow (undocumented), orphan (never called) and zombie (deprecated, or
    /// removed since OLD_SPEC, yet called) endpoints, with a risk score.
    #[command(after_help = "Example:\n  rampart openapi diff api/openapi.yaml api/openapi.v1.yaml")]
    Diff {
        spec: PathBuf,
        /// The previous version of the spec: its operations missing from SPEC are zombies when called.
        old_spec: Option<PathBuf>,
        #[command(flatten)]
        inventory: InventoryArgs,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Where the inventory is.
#[derive(clap::Args)]
struct InventoryArgs {
    /// The inventory database (default: inventory.db in the config's data_dir, or ./rampart-data).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Config file whose data_dir to read.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Only this API host (default: every host, merged).
    #[arg(long)]
    host: Option<String>,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Events matching filters, oldest first (or alerts with --alerts).
    #[command(after_help = "Examples:\n  rampart events query --since 1h --action block\n  \
                            rampart events query --ip 203.0.113.9 --class sqli --limit 20\n  \
                            rampart events query --alerts --since 1d")]
    Query {
        #[command(flatten)]
        store: StoreArgs,
        /// Events at or after: a duration back from now (15m, 2h, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Events before: a duration back from now or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// block, monitor, reject, ban, limit, challenge.
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        route: Option<String>,
        /// Client IP address.
        #[arg(long)]
        ip: Option<String>,
        /// Attack class (sqli, xss, cmdi, path, ssrf, ...).
        #[arg(long)]
        class: Option<String>,
        /// Rule id (docs/rules.md).
        #[arg(long)]
        rule: Option<String>,
        /// The newest N matching events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Show trigger alerts instead of events.
        #[arg(long)]
        alerts: bool,
    },
    /// The latest events; with -f, follow new ones as they are recorded.
    Tail {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(short, long)]
        follow: bool,
    },
}

fn events(command: EventsCommand) -> ExitCode {
    let (store, run): (StoreArgs, Box<dyn FnOnce(PathBuf, bool) -> ExitCode>) = match command {
        EventsCommand::Query {
            store,
            since,
            until,
            action,
            route,
            ip,
            class,
            rule,
            limit,
            alerts,
        } => (
            store,
            Box::new(move |db, json| {
                events_cmd::query(events_cmd::QueryArgs {
                    db,
                    since,
                    until,
                    action,
                    route,
                    ip,
                    class,
                    rule,
                    limit,
                    alerts,
                    json,
                })
            }),
        ),
        EventsCommand::Tail { store, lines, follow } => (
            store,
            Box::new(move |db, json| events_cmd::tail(db, lines, follow, json)),
        ),
    };
    match events_cmd::database(store.db, store.config.as_deref()) {
        Ok(db) => run(db, store.json),
        Err(e) => {
            eprintln!("rampart events: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run {
            config,
            upstream,
            listen,
        } => serve::run_blocking(serve::RunArgs {
            config,
            upstream,
            listen,
            console: None,
        }),
        Command::Demo { listen, console } => demo::run(listen, console),
        Command::Eval {
            config,
            json,
            misses,
            corpora,
        } => evaluate::eval(config, json, misses, corpora),
        Command::Explain { config, json, file } => evaluate::explain(config, file, json),
        Command::Events { command } => events(command),
        Command::Openapi { command } => match command {
            OpenapiCommand::Validate { spec } => validate_spec(&spec),
            OpenapiCommand::Export { inventory } => inventory_cmd::export(&inventory.into()),
            OpenapiCommand::Diff {
                spec,
                old_spec,
                inventory,
                json,
            } => inventory_cmd::diff(&inventory.into(), &spec, old_spec.as_deref(), json),
        },
    }
}

impl From<InventoryArgs> for inventory_cmd::Source {
    fn from(a: InventoryArgs) -> Self {
        inventory_cmd::Source {
            db: a.db,
            config: a.config,
            host: a.host,
        }
    }
}

fn validate_spec(path: &std::path::Path) -> ExitCode {
    match rampart_apispec::Contract::load(path) {
        Ok(c) => {
            let ops: Vec<_> = c.operations().collect();
            let deprecated = ops.iter().filter(|o| o.deprecated).count();
            println!(
                "{}: ok (OpenAPI {}, {} operations, {deprecated} deprecated)",
                path.display(),
                match c.version {
                    rampart_apispec::Version::V30 => "3.0",
                    rampart_apispec::Version::V31 => "3.1",
                },
                ops.len()
            );
            for o in ops {
                let flag = if o.deprecated { "  (deprecated)" } else { "" };
                println!("  {:<7} {}{flag}", o.method, o.template);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    // The detection tables are compiled too: `check` must refuse what a reload would refuse.
    let compiled = rampart_policy::load_file(path).and_then(|p| {
        use rampart_proxy::InspectorFactory;
        detection::DetectionFactory.build(&p).map(|_| p)
    });
    match compiled {
        Ok(p) => {
            println!(
                "{}: ok ({} listeners, {} upstreams, {} routes)",
                path.display(),
                p.listeners.len(),
                p.upstreams.len(),
                p.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{} error{} in {}",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" },
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}
