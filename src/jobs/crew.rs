//! An external crew: the program that proposes a job's recipe again on a retry, in
//! practice an LLM agent. featurecraft starts it (no shell), writes one JSON object to its
//! stdin, `{"job", "diagnostics", "catalog", "round"}` (the failed job, the findings of its
//! last recipe, the catalog as `describe-catalog` writes it, the round from 1), and reads a
//! FeatureRecipe JSON from its stdout. The retry compiles and validates that recipe; while
//! it fails, the crew runs again with the new findings, up to its rounds.
//!
//! A crew is untrusted input with a process around it: each round has a time limit (the
//! process group is killed past it), a memory limit (`RLIMIT_AS`), and a bound on what it
//! prints; it gets this process's environment without the `FEATURECRAFT_*` variables (the
//! cluster's and the service's secrets). A crew that exits non-zero, prints something that
//! is not a recipe, outlives its limit or prints too much is a failed round with the
//! reason, which ends the retry as a failed job: never a crash.

use crate::catalog::Catalog;
use crate::contract::job::Job;
use crate::contract::recipe::{FeatureRecipe, parse_recipe};
use crate::diagnostic::Diagnostic;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a crew may print on stdout: a recipe of thousands of features fits many times.
pub const MAX_CREW_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// The address space a crew process may take.
pub const CREW_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// How much of the end of a crew's stderr is kept, to quote its last line.
const STDERR_TAIL_BYTES: usize = 64 * 1024;

/// Rounds when none are given.
pub const DEFAULT_CREW_ROUNDS: u32 = 3;

/// A round's time limit when none is given.
pub const DEFAULT_CREW_ROUND_LIMIT: Duration = Duration::from_secs(300);

/// The external crew a retry runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crew {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// How many times the crew may propose before the retry gives up.
    pub rounds: u32,
    /// How long one round may take.
    pub round_limit: Duration,
}

impl Crew {
    /// A crew from `PROGRAM ARGS…` split into words as a shell would, without running one:
    /// single and double quotes group, a backslash escapes, nothing is expanded.
    pub fn parse(command: &str, rounds: u32, round_limit: Duration) -> Result<Crew, String> {
        let words = split_words(command)?;
        if words.is_empty() {
            return Err("the crew command is empty".into());
        }
        if rounds == 0 {
            return Err("the crew needs at least one round".into());
        }
        Ok(Crew {
            command: words,
            rounds,
            round_limit,
        })
    }
}

/// `text` as words: whitespace separates, quotes group, a backslash escapes the next
/// character (outside single quotes).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let part = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => part.push(c),
                        None => return Err("the crew command has an unclosed `'`".into()),
                    }
                }
            }
            '"' => {
                let part = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => part.push(c),
                            None => return Err("the crew command ends with `\\`".into()),
                        },
                        Some(c) => part.push(c),
                        None => return Err("the crew command has an unclosed `\"`".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("the crew command ends with `\\`".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// What one round of the crew gave: a recipe, or why there is none.
pub type Proposed = Result<FeatureRecipe, String>;

/// The catalog as the crew reads it (`describe-catalog`'s JSON), described once per retry.
pub fn catalog_for_crew(catalog: &Catalog) -> Result<Value, String> {
    catalog
        .to_json()
        .map_err(|e| format!("the catalog could not be described for the crew: {e}"))
}

/// Runs one round: the crew's recipe, or the reason the round failed.
pub async fn propose(
    crew: &Crew,
    job: &Job,
    diagnostics: &[Diagnostic],
    catalog: &Value,
    round: u32,
    limit: Duration,
) -> Proposed {
    let input = json!({
        "job": job,
        "diagnostics": diagnostics,
        "catalog": catalog,
        "round": round,
    });
    let input = serde_json::to_vec(&input).map_err(|e| format!("the crew's input: {e}"))?;
    let printed = run(crew, &input, limit).await?;
    let text = String::from_utf8(printed)
        .map_err(|_| "the crew printed something that is not UTF-8 text".to_string())?;
    let parsed = parse_recipe(&text);
    match parsed.recipe {
        Some(recipe) => Ok(recipe),
        None => {
            let why = parsed
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or_else(|| "unreadable".to_string(), Diagnostic::summary_line);
            Err(format!(
                "the crew printed something that is not a recipe: {why}"
            ))
        }
    }
}

/// Runs the crew's program with `input` on stdin: its stdout, or why the round failed.
async fn run(crew: &Crew, input: &[u8], limit: Duration) -> Result<Vec<u8>, String> {
    let program = &crew.command[0];
    let mut command = tokio::process::Command::new(program);
    command
        .args(&crew.command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FEATURECRAFT_") {
            command.env_remove(key);
        }
    }
    #[cfg(unix)]
    {
        // Its own process group, so that a timeout kills what it started too; and a bound
        // on its address space.
        command.process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec (setrlimit).
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: CREW_MEMORY_BYTES as libc::rlim_t,
                    rlim_max: CREW_MEMORY_BYTES as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("the crew `{program}` could not start: {e}"))?;
    // Whatever ends this round (an answer, the limit, the retry dropped past the job's own
    // limit), nothing the crew started outlives it.
    let _group = GroupKill(child.id());
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        // The input is written while the output is read: a crew may print before it has
        // read everything.
        let write = async {
            if let Some(mut stdin) = stdin.take() {
                // A crew that exits without reading its input is judged by its output.
                let _ = stdin.write_all(input).await;
            }
        };
        let read = async {
            let mut out = Vec::new();
            if let Some(stdout) = stdout.take() {
                let mut bounded = stdout.take(MAX_CREW_OUTPUT_BYTES as u64 + 1);
                bounded
                    .read_to_end(&mut out)
                    .await
                    .map_err(|e| format!("the crew's output could not be read: {e}"))?;
            }
            if out.len() > MAX_CREW_OUTPUT_BYTES {
                return Err(format!(
                    "the crew printed more than {} MB",
                    MAX_CREW_OUTPUT_BYTES / (1024 * 1024)
                ));
            }
            Ok(out)
        };
        // Drained to the end (a chatty crew must not block on a full pipe, nor fail on a
        // closed one), keeping its last 64 KB for the reason of a failure.
        let errors = async {
            let mut tail = Vec::new();
            if let Some(mut stderr) = stderr.take() {
                let mut chunk = vec![0u8; 16 * 1024];
                while let Ok(n) = stderr.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&chunk[..n]);
                    let over = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                    tail.drain(..over);
                }
            }
            tail
        };
        let ((), out, errors) = tokio::join!(write, read, errors);
        let out = out?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("the crew could not be waited for: {e}"))?;
        if !status.success() {
            let said = String::from_utf8_lossy(&errors);
            let last = said.trim().lines().last().unwrap_or("").trim();
            let last: String = last.chars().take(300).collect();
            let tail = if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            };
            return Err(format!("the crew exited with {status}{tail}"));
        }
        Ok(out)
    };
    match tokio::time::timeout(limit, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "the crew did not answer within {} s and was stopped",
            limit.as_secs()
        )),
    }
}

/// Kills the crew's process group (it leads its own) when dropped.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: a signal to the process group this process created for the crew.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_as_a_shell_would_without_one() {
        let words = |t: &str| split_words(t).unwrap();
        assert_eq!(
            words("python3 crew.py --x 1"),
            ["python3", "crew.py", "--x", "1"]
        );
        assert_eq!(
            words(r#"run "a b" 'c d' e\ f"#),
            ["run", "a b", "c d", "e f"]
        );
        assert_eq!(words("echo '$HOME' `x` ;"), ["echo", "$HOME", "`x`", ";"]);
        assert_eq!(words(r#"a "" b"#), ["a", "", "b"]);
        assert_eq!(
            words(r#"say "a \"quoted\" word" 'it'\''s'"#),
            ["say", "a \"quoted\" word", "it's"]
        );
        assert_eq!(words(r"a\\ b"), [r"a\", "b"]);
        assert!(split_words(r"trailing\").is_err());
        assert!(split_words(r#"a "b\"#).is_err());
        assert!(split_words("a 'b").is_err());
        assert!(split_words("a \"b").is_err());
        assert!(Crew::parse("   ", 3, DEFAULT_CREW_ROUND_LIMIT).is_err());
        assert!(Crew::parse("x", 0, DEFAULT_CREW_ROUND_LIMIT).is_err());
    }
}
