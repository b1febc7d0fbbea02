//! The "Examples" section of each subcommand's help (`sluice <command> --help`, the man pages).

pub const EXAMPLES_SERVE: &str = "\
Examples:
  sluice serve                                   # config/sluice.toml: the embedded broker, for trying
  sluice serve --config /etc/sluice/sluice.toml
  SLUICE_LISTEN=0.0.0.0:8080 sluice serve        # a SLUICE_* variable overrides its config key
  sluice serve --record requests.jsonl           # and keep every ingest request for `sluice replay`";
pub const EXAMPLES_CHECK_CONFIG: &str = "\
Examples:
  sluice check-config config/sluice.toml
  SLUICE_KAFKA_BROKERS=kafka-1:9092 sluice check-config prod.toml   # with an override applied";
pub const EXAMPLES_CHECK_INTEGRATION: &str = "\
Examples:
  sluice check-integration /etc/sluice/integrations          # your definitions and their fixtures
  sluice check-integration --bless /etc/sluice/integrations  # write the expected files, then review
  sluice check-integration catalog                           # the bundled catalog (in the source tree)";
pub const EXAMPLES_SEND: &str = "\
Examples:
  sluice send                                    # one trigger to http://127.0.0.1:8080
  sluice send --config config/sluice.toml --count 400 --keys 40 --sources 4   # a storm
  sluice send --config config/sluice.toml --count 40 --keys 40 --action resolve
  sluice send --url http://sluice.internal:8080 --routing-key payments";
pub const EXAMPLES_REPLAY: &str = "\
Examples:
  sluice replay requests.jsonl > incidents.jsonl   # with config/sluice.toml, as fast as it goes
  sluice replay --config prod.toml --speed 10 requests.jsonl   # ten times real time
  sluice replay --compare prod.toml candidate.toml requests.jsonl   # what-if, side by side";
pub const EXAMPLES_TAIL: &str = "\
Examples:
  sluice tail --brokers kafka-1:9092 --from end  # what is published from now on
  sluice tail --config /etc/sluice/sluice.toml --format json --idle-exit 3s
  sluice tail --brokers kafka-1:9092 --topic sluice.changes --max 10";
pub const EXAMPLES_MIGRATE: &str = "\
With every correlator of --from stopped: restores each of its partitions, divides the state by
routing key among --to's pipeline.partitions, and writes it to --to's state topic and group.
--to names its own events_topic, state_topic and group_id (README: Moving to another partition
count).

Examples:
  sluice migrate --from /etc/sluice/sluice.toml --to /etc/sluice/sluice-24.toml
  SLUICE_PIPELINE=kafka sluice migrate --from old.toml --to new.toml   # mode left to the environment";
pub const EXAMPLES_COMPLETIONS: &str = "\
Examples:
  sluice completions bash > ~/.local/share/bash-completion/completions/sluice
  sluice completions zsh > ~/.zfunc/_sluice      # with fpath+=~/.zfunc before compinit in ~/.zshrc
  sluice completions fish > ~/.config/fish/completions/sluice.fish";
pub const EXAMPLES_MAN: &str = "\
Examples:
  sluice man | man -l -                          # read sluice(1) without installing it
  sluice man serve | man -l -                    # the page of one subcommand, sluice-serve(1)
  sluice man --dir ~/.local/share/man/man1       # install every page, then: man sluice";
