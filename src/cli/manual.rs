//! `leasebox man`: the man pages, generated from the same command definition as `--help`
//! (clap_mangen). To stdout, `leasebox.1`; with `-o DIR`, `leasebox.1` and one page per
//! command (`leasebox-run.1`, …), each written whole or not at all. The 33 config flags are
//! one CONFIG FLAGS section of `leasebox.1` rather than part of every synopsis.

use std::io::Write;
use std::path::Path;

use super::args::ManArgs;
use crate::error::{ErrorKind, Failure};

pub(crate) fn man(args: &ManArgs) -> Result<(), Failure> {
    let mut cmd = super::args::command().disable_help_subcommand(true);
    for key in crate::config::KEYS {
        cmd = cmd.mut_arg(key.name, |a| a.hide(true));
    }
    cmd.build();
    match &args.out_dir {
        None => {
            let page = render(&cmd)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&page)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::new(ErrorKind::Internal, format!("cannot write: {e}")))
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
            let mut pages = Vec::new();
            collect(&cmd, &mut pages)?;
            for (name, page) in &pages {
                write_page(dir, name, page)?;
            }
            for (name, _) in &pages {
                println!("{}", dir.join(name).display());
            }
            Ok(())
        }
    }
}

fn render(cmd: &clap::Command) -> Result<Vec<u8>, Failure> {
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("leasebox manual")
        .source(format!("leasebox {}", super::args::VERSION));
    let root = cmd.get_display_name().unwrap_or(cmd.get_name()) == "leasebox";
    let mut sections = || -> std::io::Result<()> {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut page)?;
        }
        config_section(root).to_writer(&mut page)?;
        // The generic footer points at `config --keys` and `--help`, which this page already
        // covers; a command's own notes (how to install completions) stay.
        if cmd
            .get_after_long_help()
            .is_some_and(|h| h.to_string() != super::args::LONG_HELP_FOOTER)
        {
            man.render_extra_section(&mut page)?;
        }
        man.render_version_section(&mut page)
    };
    sections().map_err(|e| {
        Failure::new(
            ErrorKind::Internal,
            format!("cannot render the man page: {e}"),
        )
    })?;
    Ok(page)
}

/// The config flags (every command takes them): listed in full on `leasebox.1`, referred to
/// from the others.
fn config_section(root: bool) -> roff::Roff {
    use roff::{Roff, bold, italic, roman};
    let mut roff = Roff::new();
    roff.control("SH", ["CONFIG FLAGS"]);
    if !root {
        roff.text([
            roman("Every command also takes the config flags listed in "),
            bold("leasebox"),
            roman("(1)."),
        ]);
        return roff;
    }
    roff.text([roman(
        "Every command takes these. Each sets the config key of the same name (the flag \
         ranks above every other layer); each key also has an environment twin, shown here, \
         and may be written in the user config file. `leasebox config --keys` lists the keys \
         with their defaults and trust classes.",
    )]);
    for key in crate::config::KEYS {
        roff.control("TP", []);
        roff.text([bold(key.flag_arg()), roman("="), italic(key.value_name())]);
        roff.text([roman(format!(
            "{} (key {}, variable {}, {})",
            key.help,
            key.name,
            key.env,
            key.class.as_str()
        ))]);
    }
    roff
}

/// The page of `cmd` and of every visible subcommand, as (file name, roff).
fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> Result<(), Failure> {
    let name = format!("{}.1", cmd.get_display_name().unwrap_or(cmd.get_name()));
    pages.push((name, render(cmd)?));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, page: &[u8]) -> Result<(), Failure> {
    let path = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // A temp file is private (0600); what we write is for reading (0644, as a shell would).
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        tmp.write_all(page)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| write_error(&path, &e))
}

fn write_error(path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(
        ErrorKind::ConfigError,
        format!(
            "cannot write the man pages to `{}`: {e}; give `-o` a directory you can write",
            path.display()
        ),
    )
}
