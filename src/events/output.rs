//! How the human side of a run looks: quiet, normal or verbose, with or without colour.
//!
//! Colour follows the common conventions: on when stderr is a terminal; off when `NO_COLOR` is
//! set to anything non-empty (<https://no-color.org>); on, even into a pipe, when
//! `CLICOLOR_FORCE` is set to anything but `0`. When both are set, `NO_COLOR` wins.

use std::collections::BTreeMap;

/// How the human side of a run looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Output {
    /// `--quiet`: no progress, no `==>` lines, no summary; errors and the commands' own output
    /// only.
    pub quiet: bool,
    /// `-v`: also narrate what the lease, sync and fetch are doing, one line each, terminal or
    /// not.
    pub verbose: bool,
    /// Colour the summary and the progress.
    pub color: bool,
    /// Show progress (spinners and bars): stderr is a terminal and not `--quiet`.
    pub progress: bool,
}

impl Output {
    /// The output for this process: `quiet` and `verbose` from the flags, colour and progress
    /// from whether stderr is a terminal and the environment snapshot `env`.
    #[must_use]
    pub fn detect(quiet: bool, verbose: bool, env: &BTreeMap<String, String>) -> Output {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Output {
            quiet,
            verbose: verbose && !quiet,
            color: color_from_env(terminal, env),
            progress: terminal && !quiet,
        }
    }

    /// `text` in the ANSI style `sgr` (`"1;32"`: bold green) when colour is on.
    #[must_use]
    pub fn paint(&self, sgr: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Whether to colour output: `terminal` unless `NO_COLOR` says no or `CLICOLOR_FORCE` says yes.
#[must_use]
pub fn color_from_env(terminal: bool, env: &BTreeMap<String, String>) -> bool {
    if env.get("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if env
        .get("CLICOLOR_FORCE")
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        return true;
    }
    terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn colour_follows_the_terminal_no_color_and_clicolor_force() {
        assert!(color_from_env(true, &env(&[])));
        assert!(!color_from_env(false, &env(&[])));
        assert!(!color_from_env(true, &env(&[("NO_COLOR", "1")])));
        assert!(color_from_env(true, &env(&[("NO_COLOR", "")])));
        assert!(color_from_env(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!color_from_env(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!color_from_env(
            false,
            &env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])
        ));
    }

    #[test]
    fn paint_only_with_colour() {
        let plain = Output::default();
        assert_eq!(plain.paint("31", "x"), "x");
        let colour = Output {
            color: true,
            ..Output::default()
        };
        assert_eq!(colour.paint("31", "x"), "\x1b[31mx\x1b[0m");
    }
}
