"""Per-feature contributions by path attribution (Saabas): the cost of a prediction, not of TreeSHAP.

Each tree's output is split along the path a customer takes: every split hands the change in the
node's expected value to the feature it splits on; the root's values sum to the bias. The parts
add up to the model's log-odds exactly (like TreeSHAP), but cost one table lookup per tree and
depth level, where TreeSHAP costs leaves × depth² per tree — the difference between explaining
1M customers in seconds and in many minutes. Unlike TreeSHAP, features split near the root get
somewhat more credit; training logs how often the two agree on the top reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from scipy import sparse


@dataclass
class PathTable:
    """Leaf-by-feature matrix: the value change each feature made on the path to each leaf."""

    offsets: np.ndarray  # first global leaf id of each tree
    leaf_features: sparse.csr_matrix  # (all leaves, features + 1); the last column stays 0
    bias: float


def path_table(booster: lgb.Booster, num_iteration: int | None = None) -> PathTable:
    dump = booster.dump_model(num_iteration=num_iteration)
    width = len(dump["feature_names"]) + 1
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    offsets, bias, leaf_id = [], 0.0, 0
    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        offsets.append(leaf_id)
        if "leaf_value" in root:  # a tree without splits only shifts the bias
            bias += root["leaf_value"]
            leaf_id += 1
            continue
        bias += root["internal_value"]
        stack = [(root, [])]
        while stack:
            node, path = stack.pop()
            for side in ("left_child", "right_child"):
                child = node[side]
                value = child.get("leaf_value", child.get("internal_value"))
                step = [*path, (node["split_feature"], value - node["internal_value"])]
                if "leaf_index" in child:
                    for f, d in step:
                        rows.append(leaf_id + child["leaf_index"])
                        cols.append(f)
                        vals.append(d)
                else:
                    stack.append((child, step))
        leaf_id += tree["num_leaves"]
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(leaf_id, width))
    matrix.sum_duplicates()  # a feature split twice on one path gets both changes
    return PathTable(np.asarray(offsets, dtype=np.int64), matrix, bias)


def path_contributions(
    booster: lgb.Booster,
    matrix,
    table: PathTable,
    num_iteration: int | None = None,
    chunk: int = 20_000,
    threads: int | None = None,
) -> np.ndarray:
    """(rows, features + 1) contributions to the log-odds; the last column is the bias.

    `threads` caps LightGBM's threads for the leaf lookups (callers running several parts side
    by side give each one).
    """
    leaves_total, width = table.leaf_features.shape
    out = np.empty((len(matrix), width))
    trees = len(table.offsets)
    # 32-bit leaf ids, shifted in place, and one shared ones/indptr: at 300k customers × 330 trees
    # the 64-bit copies and fresh buffers cost as much as the sparse product itself.
    index = np.int32 if chunk * trees < 2**31 and leaves_total < 2**31 else np.int64
    offsets = table.offsets.astype(index)
    ones = np.ones(chunk * trees)
    caps = {"num_threads": threads} if threads else {}
    indptr = np.arange(0, chunk * trees + 1, trees, dtype=index)
    for start in range(0, len(matrix), chunk):
        part = matrix[start : start + chunk]
        leaves = booster.predict(part, num_iteration=num_iteration, pred_leaf=True, **caps)
        ids = np.asarray(leaves, dtype=index).reshape(len(part), trees)
        ids += offsets
        n = len(part)
        # One row per customer with a 1 at each leaf it reached: × leaf-by-feature = its sums.
        reached = sparse.csr_matrix(
            (ones[: n * trees], ids.ravel(), indptr[: n + 1]), shape=(n, leaves_total), copy=False
        )
        out[start : start + n] = (reached @ table.leaf_features).toarray()
    out[:, -1] = table.bias
    return out


def agreement(fast: np.ndarray, exact: np.ndarray, k: int = 3) -> dict[str, float]:
    """How often two contribution matrices name the same strongest and top-k risk-raising features."""
    kk = min(k, exact.shape[1] - 1)
    top_fast = np.argsort(-fast[:, :-1], axis=1)[:, :kk]
    top_exact = np.argsort(-exact[:, :-1], axis=1)[:, :kk]
    overlap = [len(set(a) & set(b)) / kk for a, b in zip(top_fast, top_exact, strict=True)]
    return {
        "top1": float(np.mean(top_fast[:, 0] == top_exact[:, 0])),
        "topk": float(np.mean(overlap)),
    }
