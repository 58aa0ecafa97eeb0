//! `featurecraft materialize`: the full table written into the warehouse.

use super::*;

pub(super) async fn run_materialize(
    recipe: &Path,
    catalog: &Path,
    warehouse: &Path,
    format: featurecraft::contract::job::TableFormat,
    domain: Option<&str>,
    options: &RunOptions,
) -> ExitCode {
    let (plan, catalog) = match datafusion_plan(recipe, catalog, true).await {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let plan = &plan;
    let table = plan.target_table.last().cloned().unwrap_or_default();
    // `retail.churn` lands in WAREHOUSE/retail/churn/, as a job with domain `retail` would.
    let domain = domain
        .map(str::to_string)
        .unwrap_or_else(|| match plan.target_table.as_slice() {
            [.., domain, _] => domain.clone(),
            _ => "default".to_string(),
        });
    let domain = domain.as_str();
    let progress = Progress::start("materializing");
    let result = featurecraft::run::materialize::materialize(
        plan,
        &catalog,
        warehouse,
        format,
        domain,
        &table,
        &options.validate,
    )
    .await;
    progress.stop();
    match result {
        Ok(done) => {
            let mut answer =
                serde_json::json!({"path": done.path, "rows": done.rows, "format": done.format});
            if let Some(version) = done.version {
                answer["version"] = version.into();
            }
            out!("{answer}");
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprint!("{}", flags(&d.render(None)));
            ExitCode::from(1)
        }
    }
}
