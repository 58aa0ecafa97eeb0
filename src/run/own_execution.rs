//! One of DataFusion's plan nodes, executed featurecraft's way.
//!
//! `run::clustered` (a partial aggregation) and `run::lookup_join` (an outer join) each
//! replace a node of DataFusion's physical plan by one that computes the same rows another
//! way: the node keeps the replaced one's schema, properties, children, input requirements,
//! expressions and statistics, and only its execution is featurecraft's. [`OwnExecution`]
//! is what differs; [`WithOwnExecution`] delegates the rest to the replaced node, as
//! `run::own_groups` does for aggregate functions.

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements,
    PlanProperties, StatisticsArgs,
};
use std::fmt::Debug;
use std::sync::Arc;

/// Which nodes featurecraft executes its own way, and how.
pub(crate) trait OwnExecution: Debug + Send + Sync + Sized + 'static {
    /// The node's name in plans.
    const NAME: &'static str;

    /// What executing `plan` this way needs to know, when `plan` can be.
    fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>>;

    /// Partition `partition` of `plan` (the replaced node), computed this way; `metrics`
    /// are the node's.
    fn execute(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<SendableRecordBatchStream>;
}

/// The node `replaced`, executed as `own` says; everything else is `replaced`'s.
#[derive(Debug)]
pub(crate) struct WithOwnExecution<E> {
    replaced: Arc<dyn ExecutionPlan>,
    own: E,
    metrics: ExecutionPlanMetricsSet,
}

impl<E: OwnExecution> WithOwnExecution<E> {
    /// `plan` executed `E`'s way, when it can be.
    fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        Ok(E::try_new(plan)?.map(|own| Self {
            replaced: Arc::clone(plan),
            own,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// The node executed `E`'s way.
    pub(crate) fn replaced(&self) -> &Arc<dyn ExecutionPlan> {
        &self.replaced
    }

    /// `plan` with each node that can be executed `E`'s way replaced: an optimizer rule's
    /// work.
    pub(crate) fn replace_in(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match Self::try_new(&node)? {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }
}

impl<E: OwnExecution> DisplayAs for WithOwnExecution<E> {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}, as ", E::NAME)?;
        self.replaced.fmt_as(t, f)
    }
}

impl<E: OwnExecution> ExecutionPlan for WithOwnExecution<E> {
    fn name(&self) -> &str {
        E::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.replaced.properties()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.replaced.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.replaced.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.replaced.maintains_input_order()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.replaced.benefits_from_input_partitioning()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.replaced.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.replaced.apply_expressions(f)
    }

    /// The replaced node with new children, executed `E`'s way if it still can be.
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[expect(deprecated, reason = "DataFusion 55 still requires this method")]
        let replaced = Arc::clone(&self.replaced).with_new_children(children)?;
        Ok(match Self::try_new(&replaced)? {
            Some(exec) => Arc::new(exec),
            None => replaced,
        })
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.own
            .execute(&self.replaced, partition, context, &self.metrics)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        self.replaced.child_stats_requests(partition)
    }

    fn statistics_from_inputs(
        &self,
        inputs: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.replaced.statistics_from_inputs(inputs, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::internal_err;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::physical_plan::filter::FilterExec;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    /// Executes a `FilterExec` as the filter itself would: what it changes is the wrapper's.
    #[derive(Debug)]
    struct AsItself;

    impl OwnExecution for AsItself {
        const NAME: &'static str = "AsItselfExec";

        fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
            Ok(plan.downcast_ref::<FilterExec>().map(|_| AsItself))
        }

        fn execute(
            &self,
            plan: &Arc<dyn ExecutionPlan>,
            partition: usize,
            context: Arc<TaskContext>,
            _metrics: &ExecutionPlanMetricsSet,
        ) -> Result<SendableRecordBatchStream> {
            if plan.downcast_ref::<FilterExec>().is_none() {
                return internal_err!("not a filter");
            }
            plan.execute(partition, context)
        }
    }

    /// `k > 2` over the rows 1..=5, in one partition.
    fn filter() -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(1..=5))],
        )
        .expect("a batch");
        let source = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)
            .expect("a memory source");
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("k", 0)),
            Operator::Gt,
            Arc::new(Literal::new(2_i64.into())),
        ));
        Arc::new(FilterExec::try_new(predicate, source).expect("a filter"))
    }

    #[tokio::test]
    async fn the_wrapper_is_the_replaced_node_but_for_its_name_and_execution() {
        let plan = filter();
        let wrapped =
            WithOwnExecution::<AsItself>::replace_in(Arc::clone(&plan)).expect("replaced");
        assert_eq!(wrapped.name(), "AsItselfExec");
        assert_eq!(wrapped.schema(), plan.schema());
        assert_eq!(wrapped.children().len(), 1);
        let shown = displayable(wrapped.as_ref()).one_line().to_string();
        assert!(
            shown.starts_with("AsItselfExec, as FilterExec: k@0 > 2"),
            "{shown}"
        );
        // New children: still executed its own way while the node can be.
        let children = wrapped.children().into_iter().cloned().collect();
        #[expect(deprecated, reason = "the method DataFusion 55's rules still call")]
        let rebuilt = Arc::clone(&wrapped)
            .with_new_children(children)
            .expect("rebuilt");
        assert_eq!(rebuilt.name(), "AsItselfExec");
        let ctx = SessionContext::new();
        let ours = collect(Arc::clone(&rebuilt), ctx.task_ctx())
            .await
            .expect("ran");
        let theirs = collect(plan, ctx.task_ctx()).await.expect("ran");
        let printed = |b: &[RecordBatch]| pretty_format_batches(b).expect("printed").to_string();
        assert_eq!(printed(&ours), printed(&theirs));
        assert_eq!(ours.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        assert!(rebuilt.metrics().is_some());
        // Another node is left as it is.
        let source = Arc::clone(wrapped.children()[0]);
        let kept = WithOwnExecution::<AsItself>::replace_in(Arc::clone(&source)).expect("walked");
        assert!(Arc::ptr_eq(&kept, &source));
    }
}
