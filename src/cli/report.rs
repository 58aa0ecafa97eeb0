//! What the command line prints: diagnostics with carets, the `--strict` explanation,
//! usage errors (exit 2) in flag words, and a spinner while a query runs.

use featurecraft::Compiled;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Says which warnings failed a `--strict` run (nothing when an error failed it anyway).
pub fn explain_strict(strict: bool, diagnostics: &[featurecraft::Diagnostic]) {
    if !strict || diagnostics.iter().any(|d| d.is_error()) {
        return;
    }
    let warnings: Vec<String> = diagnostics
        .iter()
        .map(|d| match &d.path {
            Some(path) => format!("{} at {path}", d.code.as_str()),
            None => d.code.as_str().to_string(),
        })
        .collect();
    if !warnings.is_empty() {
        eprintln!(
            "featurecraft: --strict: failed by {} warning(s): {}",
            warnings.len(),
            warnings.join(", ")
        );
    }
}

pub fn usage_error(message: &str) -> ExitCode {
    eprintln!("featurecraft: {}", flags(message));
    ExitCode::from(2)
}

/// The library names its options (`memory_limit`); on the command line they are flags.
pub fn flags(text: &str) -> String {
    [
        ("`memory_limit`", "`--memory-limit`"),
        ("`sample_size`", "`--sample-size`"),
        ("`null_threshold`", "`--null-threshold`"),
        ("`leak_threshold`", "`--leak-threshold`"),
        ("`event_files`", "--event-files"),
        ("`customers`", "--customers"),
        ("`scheduler`", "`--scheduler`"),
        ("`bind`", "`--bind`"),
        ("`grpc_port`", "`--grpc-port`"),
        ("`work_dir`", "`--work-dir`"),
        ("`time_limit`", "`--timeout`"),
        ("`scheduler_wait`", "`--scheduler-wait`"),
    ]
    .iter()
    .fold(text.to_string(), |text, (option, flag)| {
        text.replace(option, flag)
    })
}

/// A spinner on stderr while a query runs, only when stderr is a terminal.
pub struct Progress {
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Progress {
    pub fn start(what: &'static str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { stop: None };
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let frames = ['|', '/', '-', '\\'];
            let started = std::time::Instant::now();
            let mut i = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                eprint!(
                    "\r{} {what}… {:.1}s",
                    frames[i % frames.len()],
                    started.elapsed().as_secs_f64()
                );
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
        });
        Progress { stop: Some(stop) }
    }

    pub fn stop(self) {
        if let Some(stop) = self.stop {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(120));
        }
    }
}

/// Prints every diagnostic with its caret under the fragment, and the count.
pub fn print_diagnostics(compiled: &Compiled, recipe: &Path) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in &compiled.diagnostics {
        let fragment = d.path.as_deref().and_then(|p| compiled.fragment_at(p));
        // A compile finding quotes the recipe's own names, which are not options.
        let text = if d.code.is_compile() {
            d.render(fragment)
        } else {
            flags(&d.render(fragment))
        };
        if color {
            let (start, end) = if d.is_error() {
                ("\x1b[1;31m", "\x1b[0m")
            } else {
                ("\x1b[1;33m", "\x1b[0m")
            };
            let mut lines = text.lines();
            if let Some(head) = lines.next() {
                eprintln!("{start}{head}{end}");
            }
            for line in lines {
                eprintln!("{line}");
            }
        } else {
            eprint!("{text}");
        }
    }
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    if errors + warnings > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            recipe.display()
        );
    }
}
