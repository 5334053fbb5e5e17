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

    def per_tree(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each tree's split features and their (features, leaves) table of changes, built once."""
        cached = self.__dict__.get("_per_tree")
        if cached is None:
            ends = np.append(self.offsets[1:], self.leaf_features.shape[0])
            cached = []
            for start, end in zip(self.offsets, ends, strict=True):
                block = self.leaf_features[start:end].tocsc()
                used = np.flatnonzero(np.diff(block.indptr))
                cached.append((used, np.ascontiguousarray(block[:, used].toarray().T)))
            self.__dict__["_per_tree"] = cached
        return cached


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
    block: int = 2_000,
) -> np.ndarray:
    """(rows, features + 1) contributions to the log-odds; the last column is the bias.

    `threads` caps LightGBM's threads for the leaf lookups (callers running several parts side
    by side give each one).
    """
    width = table.leaf_features.shape[1]
    out = np.empty((len(matrix), width))
    per_tree = table.per_tree()
    caps = {"num_threads": threads} if threads else {}
    for start in range(0, len(matrix), chunk):
        part = matrix[start : start + chunk]
        leaves = booster.predict(part, num_iteration=num_iteration, pred_leaf=True, **caps)
        # Tree by tree, each split feature's change at the leaf each customer reached, added in
        # feature-major blocks small enough to stay in cache: a tree splits on a few features, so
        # this is a few lookups per tree and customer (a sparse leaf × feature product did the
        # same sums 2.4× slower at 300k customers × 330 trees).
        ids = np.asarray(leaves, dtype=np.int32).reshape(len(part), len(per_tree))
        for first in range(0, len(part), block):
            reached = np.ascontiguousarray(ids[first : first + block].T)
            acc = np.zeros((width, reached.shape[1]))
            for t, (used, changes) in enumerate(per_tree):
                if used.size:
                    acc[used] += np.take(changes, reached[t], axis=1)
            out[start + first : start + first + reached.shape[1]] = acc.T
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
