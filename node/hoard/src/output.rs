//! Output: text or JSON on stdout, progress bars on stderr (only for text on a terminal).

use std::time::Duration;

use hoard_dataset::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON, or `text()` as text.
    pub(crate) fn result<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        let text = if self.json {
            serde_json::to_string_pretty(value).expect("results serialise")
        } else {
            text()
        };
        print_line(&text);
    }

    /// A byte progress bar, hidden for JSON output or when stderr is not a terminal.
    pub(crate) fn progress(&self) -> Bar {
        let bar = if self.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }
}

/// Writes `text` and a newline to stdout. A reader that went away (`hoard status … | head -1`) is
/// not an error; any other write error ends the process non-zero (`println!` would panic).
fn print_line(text: &str) {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: writing the result to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// An indicatif bar fed by the dataset pipeline.
#[derive(Debug)]
pub(crate) struct Bar(ProgressBar);

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.0.set_message(name.to_owned());
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// `bytes` in binary units, for text output.
pub(crate) fn size(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}
