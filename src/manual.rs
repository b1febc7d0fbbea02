//! The command line's documentation, generated from its clap definition (`src/main.rs`) so it
//! never drifts from `--help`: man pages in roff (`sluice man`) and shell completion scripts
//! (`sluice completions <shell>`). A subcommand's "Examples" (its `after_help`) become the
//! page's EXAMPLES section, kept line for line.

pub mod examples;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// One man page: its file name, the command it documents, and the program's name and release
/// (`sluice 0.1.0 (...)`), the same on every page.
pub struct Page {
    pub file: String,
    pub cmd: clap::Command,
    pub release: Option<String>,
}

/// The man pages of `cmd`: its own first (`sluice.1`), then one per subcommand
/// (`sluice-serve.1`).
pub fn pages(cmd: clap::Command) -> Vec<Page> {
    // Built as the parser builds it, so a subcommand knows its full name (`sluice serve`);
    // without the `help` subcommand, which has no page of its own.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let release = cmd.get_version().map(|v| format!("{} {v}", cmd.get_name()));
    let page = |c: &clap::Command| Page {
        file: format!("{}.1", c.get_display_name().unwrap_or_else(|| c.get_name())),
        cmd: c.clone(),
        release: release.clone(),
    };
    let mut pages = vec![page(&cmd)];
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(page));
    pages
}

/// One man page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS (when it has them),
/// EXAMPLES (its `after_help`, unfilled) and VERSION.
pub fn render(page: &Page, out: &mut dyn Write) -> io::Result<()> {
    let cmd = &page.cmd;
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let mut man = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>));
    if let Some(release) = &page.release {
        man = man.source(release.clone());
    }
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    if let Some(examples) = examples {
        writeln!(out, ".SH EXAMPLES\n.nf")?;
        for line in examples.lines().skip_while(|l| l.ends_with(':')) {
            writeln!(out, "{}", roff_line(line))?;
        }
        writeln!(out, ".fi")?;
    }
    if let Some(release) = &page.release {
        writeln!(out, ".SH VERSION\n{}", roff_line(release))?;
    }
    Ok(())
}

/// Writes every page of `cmd` into `dir`; returns the files written.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    pages(cmd)
        .into_iter()
        .map(|page| {
            let path = dir.join(&page.file);
            let mut out = io::BufWriter::new(std::fs::File::create(&path)?);
            render(&page, &mut out)?;
            out.flush()?;
            Ok(path)
        })
        .collect()
}

/// The completion script of `cmd` for `shell`.
pub fn completions(shell: Shell, mut cmd: clap::Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// A line of text as roff prints it: backslashes and dashes escaped, and a leading `.` or `'`
/// kept from being read as a request.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("tool")
            .version("1.0")
            .about("A tool")
            .subcommand(
                clap::Command::new("run")
                    .about("Run it")
                    .arg(clap::Arg::new("fast").long("fast").help("Go fast"))
                    .after_help("Examples:\n  tool run --fast  # quickly\n  .hidden 'x' a\\b"),
            )
            .subcommand(clap::Command::new("stop").about("Stop it"))
    }

    fn text(page: &Page) -> String {
        let mut out = Vec::new();
        render(page, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_page_for_the_command_and_each_subcommand() {
        let pages = pages(cli());
        let names: Vec<&str> = pages.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(names, ["tool.1", "tool-run.1", "tool-stop.1"]);
        let top = text(&pages[0]);
        assert!(top.contains("\n.TH tool 1  \"tool 1.0\""), "{top}");
        assert!(
            top.contains("tool\\-run(1)") && top.contains("tool\\-stop(1)"),
            "{top}"
        );
        let run = text(&pages[1]);
        assert!(run.contains("\n.TH tool-run 1  \"tool 1.0\""), "{run}");
        assert!(run.ends_with(".SH VERSION\ntool 1.0\n"), "{run}");
        assert!(run.contains("tool run") && run.contains("Go fast"), "{run}");
    }

    #[test]
    fn examples_are_a_section_of_unfilled_escaped_lines() {
        let run = text(&pages(cli())[1]);
        let section = run.split(".SH EXAMPLES\n").nth(1).unwrap();
        let section = section.split(".fi\n").next().unwrap();
        assert_eq!(
            section,
            ".nf\n  tool run \\-\\-fast  # quickly\n  .hidden 'x' a\\eb\n"
        );
        assert!(!run.contains("EXTRA"), "{run}");
        assert_eq!(roff_line(".x"), "\\&.x");
        assert_eq!(roff_line("'x"), "\\&'x");
    }

    #[test]
    fn completions_name_every_subcommand() {
        let mut out = Vec::new();
        completions(Shell::Bash, cli(), &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(
            script.contains("tool__run") || script.contains("tool,run"),
            "{script}"
        );
        assert!(script.contains("--fast"), "{script}");
    }
}
