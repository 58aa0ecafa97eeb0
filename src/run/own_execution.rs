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
    pub(crate) fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        Ok(E::try_new(plan)?.map(|own| Self {
            replaced: Arc::clone(plan),
            own,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
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
