//! What `nimbus dev` shows while a build runs, and its status lines.
//!
//! On a terminal: one line that keeps changing, with the number of crates
//! compiled so far and the one being compiled. Elsewhere (a pipe, a file,
//! CI): the toolchain's own lines as they come. `--quiet` shows neither,
//! `--verbose` always the toolchain's lines. A failed build's whole output
//! is shown whatever the mode, once.
//!
//! Status lines (serving, reloaded) go to stdout; errors, the compiler's
//! output and log lines to stderr.

use crate::telemetry::Verbosity;
use std::io::IsTerminal as _;
use std::time::Duration;

/// How one build's progress is shown.
pub(super) struct BuildProgress {
    mode: Mode,
    compiled: usize,
    label: String,
}

enum Mode {
    Silent,
    Lines,
    Bar(indicatif::ProgressBar),
}

impl BuildProgress {
    /// Starts showing the build of `label` (`command` is what runs).
    pub(super) fn start(verbosity: Verbosity, label: &str, command: &str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let mode = match verbosity {
            Verbosity::Quiet => Mode::Silent,
            Verbosity::Verbose => Mode::Lines,
            Verbosity::Normal if !terminal => Mode::Lines,
            Verbosity::Normal => {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(100));
                Mode::Bar(bar)
            }
        };
        let progress = Self {
            mode,
            compiled: 0,
            label: label.to_string(),
        };
        match &progress.mode {
            Mode::Bar(bar) => bar.set_message(format!("building {label} ({command})")),
            Mode::Lines => eprintln!("building {label}: {command}"),
            Mode::Silent => {}
        }
        progress
    }

    /// Whether the toolchain's colours are wanted (its lines reach a terminal).
    pub(super) fn colour(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    /// One line of the toolchain's output.
    pub(super) fn line(&mut self, line: &str) {
        match &self.mode {
            Mode::Silent => {}
            Mode::Lines => eprintln!("{line}"),
            Mode::Bar(bar) => {
                let plain = strip_ansi(line);
                let trimmed = plain.trim_start();
                if let Some(what) = trimmed.strip_prefix("Compiling ") {
                    self.compiled += 1;
                    bar.set_message(format!(
                        "building {}: {} crates compiled · {}",
                        self.label,
                        self.compiled,
                        what.split(" (").next().unwrap_or(what)
                    ));
                }
            }
        }
    }

    /// Whether the lines were already shown (then a failure need not repeat
    /// them).
    pub(super) fn showed_lines(&self) -> bool {
        matches!(self.mode, Mode::Lines)
    }

    /// Clears the progress line.
    pub(super) fn finish(self) {
        if let Mode::Bar(bar) = self.mode {
            bar.finish_and_clear();
        }
    }
}

/// A status line on stdout. A reader that went away does not stop the
/// server: the line is dropped.
pub(super) fn status(line: &str) {
    let _ = outln!("{line}");
}

/// `text` without ANSI escape sequences (cargo colours its lines).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped_from_toolchain_lines() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m wstd v0.6.0"),
            "   Compiling wstd v0.6.0"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
