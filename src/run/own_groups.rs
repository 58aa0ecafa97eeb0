//! One of DataFusion's aggregate functions, with a grouped accumulator of featurecraft's for
//! the arguments where DataFusion's is costly.
//!
//! `count` (a DISTINCT count: `run::distinct`) and `min`/`max` (of strings:
//! `run::extremes`) are registered this way: the function keeps DataFusion's name,
//! signature, types, state, documentation and every other property, and only the grouped
//! accumulator of the arguments [`OwnGroups::takes`] is featurecraft's.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature, StatisticsArgs,
};
use std::fmt::Debug;
use std::hash::Hash;

/// Which arguments get featurecraft's grouped accumulator, and that accumulator.
pub(super) trait OwnGroups: Debug + Send + Sync + PartialEq + Eq + Hash + 'static {
    /// Whether these arguments get featurecraft's accumulator rather than the one of
    /// DataFusion's function `inner`.
    fn takes(&self, inner: &dyn AggregateUDFImpl, args: &AccumulatorArgs) -> bool;

    /// featurecraft's accumulator for arguments it [`OwnGroups::takes`].
    fn create(&self, args: &AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>>;
}

/// DataFusion's function `inner`, with `own`'s grouped accumulator where it takes the
/// arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct WithOwnGroups<F, O> {
    inner: F,
    own: O,
}

/// The function `inner` with `own`'s grouped accumulators; registering it in a session
/// replaces DataFusion's function of that name.
pub(super) fn with_own_groups<F, O>(inner: F, own: O) -> AggregateUDF
where
    F: AggregateUDFImpl + PartialEq + Eq + Hash + 'static,
    O: OwnGroups,
{
    AggregateUDF::new_from_impl(WithOwnGroups { inner, own })
}

impl<F, O> AggregateUDFImpl for WithOwnGroups<F, O>
where
    F: AggregateUDFImpl + PartialEq + Eq + Hash,
    O: OwnGroups,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.own.takes(&self.inner, &args) || self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if self.own.takes(&self.inner, &args) {
            self.own.create(&args)
        } else {
            self.inner.create_groups_accumulator(args)
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}
