//! `featurecraft retry`: a failed job run again (fixed first with `--fix`), its recipe
//! proposed by an external crew with `--crew-command`.

use super::*;

pub(super) async fn run_retry(
    job: &Path,
    catalog: &Path,
    options: &RunOptions,
    fix: bool,
    crew: Option<&featurecraft::jobs::crew::Crew>,
) -> ExitCode {
    let text = match std::fs::read_to_string(job) {
        Ok(text) => text,
        Err(e) => return usage_error(&format!("cannot read job {}: {e}", job.display())),
    };
    let job: featurecraft::Job = match serde_json::from_str(&text) {
        Ok(job) => job,
        Err(e) => return usage_error(&format!("not a job: {e}")),
    };
    let catalog = match Catalog::load(catalog).await {
        Ok(c) => match with_data(c, catalog, "retry") {
            Ok(c) => c,
            Err(code) => return code,
        },
        Err(e) => return usage_error(&e.to_string()),
    };
    let job = if fix {
        let (fixed, fixes) =
            featurecraft::author::fix::fix_job(&job, &catalog, &options.compile_options());
        for f in &fixes {
            eprintln!("fixed {f}");
        }
        fixed
    } else {
        job
    };
    let progress = Progress::start("retrying the job");
    let result = match crew {
        Some(crew) => {
            featurecraft::jobs::retry::retry_with_crew(&job, &catalog, options, crew).await
        }
        None => featurecraft::jobs::retry::retry(&job, &catalog, options).await,
    };
    progress.stop();
    match result {
        Ok(next) => {
            match serde_json::to_string_pretty(&next) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
            if next.status == featurecraft::JobStatus::Failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => usage_error(&e.to_string()),
    }
}
