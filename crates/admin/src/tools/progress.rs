//! Progress of a long tool run: an indicatif bar with messages per second on a terminal,
//! a plain log line every few seconds otherwise (cron, systemd, a pipe).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the plain line is printed.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Counts messages and shows the rate.
pub struct Progress {
    what: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    done: u64,
    total: Option<u64>,
}

impl Progress {
    /// Progress of `what` ("import", "export") over `total` messages, if known.
    pub fn new(what: &'static str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let template = match total {
                Some(_) => "{prefix} [{bar:40}] {pos}/{len} messages, {per_sec}, {eta} left  {msg}",
                None => "{prefix} {spinner} {pos} messages, {per_sec}  {msg}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(what);
            bar
        });
        Progress {
            what,
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
            done: 0,
            total,
        }
    }

    /// Shows which mailbox is being worked on.
    pub fn mailbox(&mut self, name: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(name.to_string()),
            None => eprintln!("{}: mailbox {name}", self.what),
        }
    }

    /// Counts `n` more messages.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            eprintln!(
                "{}: {} messages, {:.0}/s",
                self.what,
                self.position(),
                self.rate()
            );
        }
    }

    /// Prints a problem without garbling the bar.
    pub fn warn(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {line}", self.what)),
            None => eprintln!("{}: {line}", self.what),
        }
    }

    /// Removes the bar; returns the messages counted and the rate.
    pub fn finish(self) -> (u64, f64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        (self.done, self.rate())
    }

    fn position(&self) -> String {
        match self.total {
            Some(t) => format!("{}/{t}", self.done),
            None => self.done.to_string(),
        }
    }

    fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }
}
