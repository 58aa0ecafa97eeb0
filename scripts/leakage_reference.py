"""The leakage screen's scores computed by scikit-learn and scipy (tests/leakage.rs).

Reads a Parquet file of sampled rows and prints, as JSON, each feature's score against the
label by the rules of featurecraft's screen (src/run/leakage.rs), computed with
`sklearn.metrics.roc_auc_score` and `scipy.stats.spearmanr`:
- binary label: max(AUC, 1 - AUC); multiclass: the largest one-vs-rest AUC over the classes
  present (one AUC when only two are present); regression: |Spearman rho|;
- over rows where the feature and the label are both present (and the feature not NaN);
- text and boolean features with at most 50 distinct values are scored by each value's
  share of the class (its mean label, for regression); with more they are not scored;
- not scored below 25 rows, with fewer than two classes, or when either side is constant;
  a class is compared only with at least 5 rows on each side (the class and the others).

usage: leakage_reference.py ROWS.parquet LABEL_COLUMN binary|multiclass|regression
"""

import json
import math
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

MIN_ROWS = 25
MIN_CLASS_ROWS = 5
MAX_CATEGORIES = 50


def present(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def column_values(column):
    """(values, is_category) of a feature column, or None when it is not scored."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        values = column.to_pylist()
        if len({v for v in values if v is not None}) > MAX_CATEGORIES:
            return None
        return values, True
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return column.cast(pa.int64()).to_pylist(), False
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if pa.types.is_decimal(kind):
            return column.cast(pa.float64()).to_pylist(), False
        return column.to_pylist(), False
    return None


def encoded(values, target):
    """Each row's value replaced by the mean of `target` over the rows of its value."""
    sums = {}
    for v, t in zip(values, target):
        s = sums.setdefault(v, [0.0, 0])
        s[0] += t
        s[1] += 1
    return [sums[v][0] / sums[v][1] for v in values]


def auc(x, positive):
    if all(positive) or not any(positive):
        return None
    a = roc_auc_score(np.array(positive, dtype=int), np.array(x))
    return max(a, 1.0 - a)


def score(values, is_category, labels, label_type):
    rows = [i for i in range(len(labels)) if present(labels[i]) and present(values[i])]
    if len(rows) < MIN_ROWS:
        return None
    x = [values[i] for i in rows]
    y = [labels[i] for i in rows]
    if label_type == "regression":
        y = [float(v) for v in y]
        if is_category:
            x = encoded(x, y)
        if len(set(x)) < 2 or len(set(y)) < 2:
            return None
        return abs(spearmanr(x, y).statistic)
    classes = sorted({str(v) for v in y})
    if len(classes) < 2:
        return None
    y = [str(v) for v in y]
    scored = classes[:1] if len(classes) == 2 else classes
    best = None
    for c in scored:
        positive = [v == c for v in y]
        if sum(positive) < MIN_CLASS_ROWS or len(positive) - sum(positive) < MIN_CLASS_ROWS:
            continue
        xs = encoded(x, [1.0 if p else 0.0 for p in positive]) if is_category else x
        a = auc(xs, positive)
        if a is not None and (best is None or a > best):
            best = a
    return best


def main():
    path, label_column, label_type = sys.argv[1:4]
    table = pq.read_table(path)
    labels = table.column(label_column).to_pylist()
    out = {}
    for name in table.column_names:
        if name == label_column:
            continue
        values = column_values(table.column(name))
        out[name] = None if values is None else score(values[0], values[1], labels, label_type)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
