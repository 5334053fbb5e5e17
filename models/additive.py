"""An explainable boosting member for small tables: bagged boosting of binned features, then pairs.

A GA²M grown as InterpretML's explainable boosting machine (EBM) grows one (Lou, Caruana,
Gehrke and Hooker 2013, "Accurate intelligible models with pairwise interactions"; the round
structure of interpret 0.7.8's `_boost.py`): a few rounds of random one-split steps smooth each
feature's shape, then each round measures every term's gain once and spends ten steps per term
on whichever term gains most, each a one-split step function at a small learning rate. Each
bag holds out its own stratified part for early stopping. Pairs are screened on the main
effects' residuals by their best four-cell split (FAST) and boosted the same way. The bags'
term tables are averaged. All bags run side by side as one array axis: a 1,000-row table fits
in a few seconds without native code of our own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

TEXT_TYPES = (pl.Utf8, pl.Categorical)


@dataclass
class Binner:
    """Per-feature bin codes: 0 is missing (or an unseen level), numbers by quantile cuts."""

    columns: list[str]
    cuts: dict[str, np.ndarray] = field(default_factory=dict)
    levels: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: Sequence[str], max_bins: int) -> Binner:
        out = cls(list(columns))
        for c in columns:
            if frame.schema[c] in TEXT_TYPES:
                counts = frame[c].cast(pl.Utf8).drop_nulls().value_counts(sort=True)
                names = counts[c].to_list()[: max_bins - 1]
                out.levels[c] = {v: i + 1 for i, v in enumerate(sorted(names))}
            else:
                v = frame[c].cast(pl.Float64, strict=False).drop_nulls().drop_nans().to_numpy()
                uniq = np.unique(v)
                if len(uniq) <= max_bins:
                    cuts = (uniq[:-1] + uniq[1:]) / 2
                else:
                    cuts = np.unique(np.quantile(v, np.linspace(0, 1, max_bins + 1)[1:-1]))
                out.cuts[c] = cuts
        return out

    @property
    def sizes(self) -> np.ndarray:
        return np.array(
            [
                len(self.levels[c]) + 1 if c in self.levels else len(self.cuts[c]) + 2
                for c in self.columns
            ]
        )

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Rows × features, int32 bin codes."""
        out = np.zeros((frame.height, len(self.columns)), dtype=np.int32)
        for j, c in enumerate(self.columns):
            if c in self.levels:
                mapped = (
                    frame[c]
                    .cast(pl.Utf8)
                    .replace_strict(self.levels[c], default=0, return_dtype=pl.Int32)
                )
                out[:, j] = mapped.fill_null(0).to_numpy()
            else:
                v = frame[c].cast(pl.Float64, strict=False).fill_nan(None).to_numpy()
                known = ~np.isnan(v)
                out[known, j] = 1 + np.searchsorted(self.cuts[c], v[known], side="right")
        return out


@dataclass
class AdditiveModel:
    """Intercept plus a table per feature and per chosen pair, in log-odds (bag averages)."""

    binner: Binner
    pair_binner: Binner
    intercept: float
    mains: list[np.ndarray]
    pairs: list[tuple[int, int, np.ndarray]]
    info: dict = field(default_factory=dict)

    def logit(self, frame: pl.DataFrame) -> np.ndarray:
        codes = self.binner.codes(frame)
        out = np.full(frame.height, self.intercept)
        for j, table in enumerate(self.mains):
            out += table[codes[:, j]]
        if self.pairs:
            pc = self.pair_binner.codes(frame)
            for i, j, table in self.pairs:
                out += table[pc[:, i], pc[:, j]]
        return out

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return _sigmoid(self.logit(frame))


def _sigmoid(f: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-f))


def _leaf_gain(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    return g * g / np.maximum(h, 1e-12)


def _newton(g, h):
    return -g / np.maximum(h, 1e-12)


def _sort_levels(G, H, C, nominal, axis, cat_smooth):
    """Orders a text axis's levels by mean gradient, per bag (as LightGBM splits categories);
    other bags keep their order. Returns the sorted histograms and the inverse order."""
    if not nominal.any():
        return [G, H, C], None
    n = G.shape[axis]
    other = tuple(a for a in range(1, G.ndim) if a != axis)
    ratio = G.sum(other) / (H.sum(other) + cat_smooth) if other else G / (H + cat_smooth)
    order = np.where(nominal[:, None], np.argsort(ratio, axis=1, kind="stable"), np.arange(n))
    shape = [G.shape[0]] + [1] * (G.ndim - 1)
    shape[axis] = n
    take = order.reshape(shape)
    back = np.argsort(order, axis=1, kind="stable").reshape(shape)
    return [np.take_along_axis(a, take, axis) for a in (G, H, C)], back


def _split_1d(G, H, C, min_leaf, rng, random_cut, nominal, cat_smooth=10.0):
    """One cut per bag (the best, or while smoothing a random valid one): (step values, gain)."""
    if G.shape[1] < 2:  # nothing to cut (a column with one value or none in these rows)
        return np.zeros(G.shape), np.zeros(len(G))
    (G, H, C), back = _sort_levels(G, H, C, nominal, 1, cat_smooth)
    gl, hl, cl = (np.cumsum(a, axis=1)[:, :-1] for a in (G, H, C))
    gt, ht, ct = G.sum(1, keepdims=True), H.sum(1, keepdims=True), C.sum(1, keepdims=True)
    valid = (cl >= min_leaf) & (ct - cl >= min_leaf)
    gain = np.where(valid, _leaf_gain(gl, hl) + _leaf_gain(gt - gl, ht - hl), -1.0)
    score = np.where(valid, rng.random(valid.shape), -1.0) if random_cut else gain
    rows = np.arange(len(G))
    cut = score.argmax(1)
    ok = valid[rows, cut]
    left = _newton(gl[rows, cut], hl[rows, cut])
    right = _newton(gt[:, 0] - gl[rows, cut], ht[:, 0] - hl[rows, cut])
    step = np.where(np.arange(G.shape[1])[None, :] <= cut[:, None], left[:, None], right[:, None])
    if back is not None:
        step = np.take_along_axis(step, back, 1)
    step = np.where(ok[:, None], step, 0.0)
    improvement = np.where(ok, gain[rows, cut] - _leaf_gain(gt[:, 0], ht[:, 0]), 0.0)
    return step, improvement


def _best_halves(G, H, C, min_leaf):
    """For each first cut on axis 1 of (B, a, b): each half's best gain and second cut (-1: none)."""
    out = []
    total = [a.sum(1, keepdims=True) for a in (G, H, C)]
    lower = [np.cumsum(a, axis=1) for a in (G, H, C)]
    for g, h, c in (lower, [t - lo for t, lo in zip(total, lower, strict=True)]):
        gl, hl, cl = (np.cumsum(a, axis=2) for a in (g, h, c))
        gt, ht, ct = gl[..., -1:], hl[..., -1:], cl[..., -1:]
        whole = _leaf_gain(gt[..., 0], ht[..., 0])  # the half left as one leaf
        valid = (cl[..., :-1] >= min_leaf) & (ct - cl[..., :-1] >= min_leaf)
        split = _leaf_gain(gl[..., :-1], hl[..., :-1]) + _leaf_gain(
            gt - gl[..., :-1], ht - hl[..., :-1]
        )
        split = np.where(valid, split, -1.0)
        if split.shape[2]:
            second = split.argmax(2)
            gain = np.take_along_axis(split, second[..., None], 2)[..., 0]
        else:
            second, gain = np.zeros(whole.shape, dtype=int), whole - 1
        use = gain > whole
        out.append((np.where(use, gain, whole), np.where(use, second, -1), ct[..., 0]))
    return out


def _steps_2d(g, h, first, seconds):
    """Step values of (B, a, b) for a first cut on axis 1 and each half's second cut."""
    nb, na, nbins = g.shape
    rows = np.arange(na)[None, :, None] <= first[:, None, None]  # lower half
    step = np.zeros(g.shape)
    for lower_half, second in ((rows, seconds[0]), (~rows, seconds[1])):
        cols = np.arange(nbins)[None, None, :] <= second[:, None, None]
        for part in (cols, ~cols):
            m = lower_half & part
            leaf = _newton((g * m).sum((1, 2)), (h * m).sum((1, 2)))
            step = np.where(m, leaf[:, None, None], step)
    return step


def _split_2d(G, H, C, min_leaf, nominal, cat_smooth=10.0):
    """A cut on one axis, then at most one cut on the other in each half: (step values, gain)."""
    (G, H, C), back0 = _sort_levels(G, H, C, nominal[0], 1, cat_smooth)
    (G, H, C), back1 = _sort_levels(G, H, C, nominal[1], 2, cat_smooth)
    nb = G.shape[0]
    rows = np.arange(nb)
    best_gain = np.full(nb, -1.0)
    best_step = np.zeros(G.shape)
    for axis in (0, 1):
        g, h, c = (a if axis == 0 else a.transpose(0, 2, 1) for a in (G, H, C))
        (lg, lcut, lc), (rg, rcut, rc) = _best_halves(g, h, c, min_leaf)
        valid = (lc[:, :-1] >= min_leaf) & (rc[:, :-1] >= min_leaf)
        gain = np.where(valid, lg[:, :-1] + rg[:, :-1], -1.0)
        if gain.shape[1] == 0:
            continue
        first = gain.argmax(1)
        top = gain[rows, first]
        better = top > best_gain
        if better.any():
            step = _steps_2d(g, h, first, (lcut[rows, first], rcut[rows, first]))
            step = step if axis == 0 else step.transpose(0, 2, 1)
            best_step = np.where(better[:, None, None], step, best_step)
            best_gain = np.where(better, top, best_gain)
    ok = best_gain >= 0
    step = best_step
    if back1 is not None:
        step = np.take_along_axis(step, back1, 2)
    if back0 is not None:
        step = np.take_along_axis(step, back0, 1)
    parent = _leaf_gain(G.sum((1, 2)), H.sum((1, 2)))
    return np.where(ok[:, None, None], step, 0.0), np.where(ok, best_gain - parent, 0.0)


def _logloss(y, f, mask):
    p = np.clip(_sigmoid(f), 1e-12, 1 - 1e-12)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return (loss * mask).sum(1) / np.maximum(mask.sum(1), 1)


@dataclass
class Terms:
    """Terms to boost: flat cell codes (terms × rows), each term's table shape within a common
    padded shape, and which axes are text."""

    codes: np.ndarray
    shape: tuple[int, ...]
    nominal: np.ndarray  # terms × axes

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Boosting:
    """Settings of one boosting stage."""

    learning_rate: float
    max_rounds: int
    patience: int
    min_leaf: int
    smoothing: int
    greedy_ratio: float
    nominal_gain_scale: float = 5.0


def _boost(terms: Terms, y, train, f, cfg: Boosting, rng):
    """Boosting of every bag at once, as the EBM boosts: `smoothing` cyclic rounds of random
    cuts, then rounds of one cyclic pass that only measures each term's gain and
    `greedy_ratio` × terms greedy steps that each improve the term with the largest (last
    measured) gain. Each bag stops when its held-out loss has not improved for `patience`
    rounds' worth of steps, and keeps its tables from its best step."""
    nb = f.shape[0]
    nterms = terms.codes.shape[0]
    valid, tr = ~train, train.astype(float)
    bag_rows = np.arange(nb)
    tables = np.zeros((nb, nterms, terms.size))
    best = tables.copy()
    dirty = np.zeros((nb, nterms), dtype=bool)
    gains = np.zeros((nb, nterms))
    best_loss = _logloss(y, f, valid)
    best_step = np.zeros(nb, dtype=int)
    live = np.ones(nb, dtype=bool)
    scale = np.where(
        terms.nominal.any(1) & (terms.nominal.shape[1] == 1), cfg.nominal_gain_scale, 1.0
    )
    # Rows per cell, per term and bag: fixed by the bag's training rows.
    counts = np.stack(
        [
            np.bincount(
                (bag_rows[:, None] * terms.size + terms.codes[t][None, :]).ravel(),
                tr.ravel(),
                nb * terms.size,
            ).reshape(nb, terms.size)
            for t in range(nterms)
        ]
    )
    step_no = 0
    patience = cfg.patience * nterms

    def split(chosen, random_cut=False):
        code = terms.codes[chosen]  # (B, n)
        idx = (bag_rows[:, None] * terms.size + code).ravel()
        p = _sigmoid(f)
        shape = (nb, *terms.shape)
        G = np.bincount(idx, ((p - y) * tr).ravel(), nb * terms.size).reshape(shape)
        H = np.bincount(idx, (p * (1 - p) * tr).ravel(), nb * terms.size).reshape(shape)
        C = counts[chosen, bag_rows].reshape(shape)
        nom = terms.nominal[chosen]
        if len(terms.shape) == 1:
            step, gain = _split_1d(G, H, C, cfg.min_leaf, rng, random_cut, nom[:, 0])
        else:
            step, gain = _split_2d(G, H, C, cfg.min_leaf, (nom[:, 0], nom[:, 1]))
        return step.reshape(nb, -1), gain * scale[chosen]

    def apply(chosen, step):
        nonlocal f, best_loss, step_no
        step = cfg.learning_rate * step * live[:, None]
        tables[bag_rows, chosen] += step
        dirty[bag_rows, chosen] |= live
        f = f + np.take_along_axis(step, terms.codes[chosen], 1)
        step_no += 1
        loss = _logloss(y, f, valid)
        improved = live & (loss < best_loss)
        for b in np.flatnonzero(improved):
            touched = np.flatnonzero(dirty[b])
            best[b, touched] = tables[b, touched]
            dirty[b, touched] = False
        best_loss = np.where(improved, loss, best_loss)
        best_step[improved] = step_no
        live[:] = live & (step_no - best_step < patience)

    for _ in range(cfg.smoothing):
        for t in range(nterms):
            apply(np.full(nb, t), split(np.full(nb, t), random_cut=True)[0])
    greedy = int(np.ceil(cfg.greedy_ratio * nterms))
    rounds = 0
    while live.any() and rounds < cfg.max_rounds:
        rounds += 1
        for t in range(nterms if greedy else 0):
            gains[:, t] = split(np.full(nb, t))[1]
        for _ in range(greedy if greedy else nterms):
            chosen = gains.argmax(1) if greedy else np.full(nb, _ % nterms)
            step, gain = split(chosen)
            gains[bag_rows, chosen] = gain
            apply(chosen, step)
            if not live.any():
                break
    return best, best_step


def _fast_pairs(pc, psizes, y, f, train, limit):
    """The `limit` pairs whose best four-cell split of the residuals gains most (FAST)."""
    p = _sigmoid(f)
    tr = train.astype(float)
    g, h = ((p - y) * tr).sum(0), (p * (1 - p) * tr).sum(0)  # summed over bags
    nfeat = pc.shape[1]
    scores = []
    for i in range(nfeat):
        for j in range(i + 1, nfeat):
            a, b = int(psizes[i]), int(psizes[j])
            if a < 2 or b < 2:
                continue
            cell = pc[:, i] * b + pc[:, j]
            G = np.bincount(cell, weights=g, minlength=a * b).reshape(a, b)
            H = np.bincount(cell, weights=h, minlength=a * b).reshape(a, b)
            gc, hc = (np.cumsum(np.cumsum(m, 0), 1) for m in (G, H))
            gt, ht = gc[-1, -1], hc[-1, -1]
            gi, hi = gc[:, -1:], hc[:, -1:]  # rows ≤ cut i, all columns
            gj, hj = gc[-1:, :], hc[-1:, :]
            quads = (
                _leaf_gain(gc, hc)
                + _leaf_gain(gi - gc, hi - hc)
                + _leaf_gain(gj - gc, hj - hc)
                + _leaf_gain(gt - gi - gj + gc, ht - hi - hj + hc)
            )
            scores.append((float(quads[:-1, :-1].max()), i, j))
    scores.sort(reverse=True)
    return [(i, j) for _, i, j in scores[:limit]]


def _pad_codes(
    codes: np.ndarray, shapes: list[tuple[int, ...]]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat cell codes (terms × rows) of every term within one padded shape (the largest along
    each axis); `codes` is terms × rows for single features, terms × rows × 2 for pairs."""
    shape = tuple(int(max(s[a] for s in shapes)) for a in range(len(shapes[0])))
    if len(shape) == 1:
        return np.ascontiguousarray(codes), shape
    return codes[:, :, 0] * shape[1] + codes[:, :, 1], shape


def fit_additive(
    frame: pl.DataFrame,
    y: np.ndarray,
    columns: Sequence[str],
    seed: int = 0,
    bags: int = 14,
    learning_rate: float = 0.03,
    max_rounds: int = 3000,
    patience: int = 10,
    min_leaf: int = 4,
    max_bins: int = 256,
    pair_bins: int = 32,
    pairs: int | None = None,
    smoothing: int = 50,
    greedy_ratio: float = 10.0,
    validation: float = 0.15,
) -> AdditiveModel:
    """Bagged main effects, then `pairs` screened pairs (default: as many as features)."""
    y = np.asarray(y, dtype=float)
    columns = list(columns)
    rng = np.random.default_rng(seed)
    binner = Binner.fit(frame, columns, max_bins)
    codes = binner.codes(frame)
    sizes = binner.sizes
    train = np.ones((bags, len(y)), dtype=bool)
    for b in range(bags):  # a stratified held-out part per bag
        for cls in (0.0, 1.0):
            rows = np.flatnonzero(y == cls)
            held = rng.choice(rows, int(round(validation * len(rows))), replace=False)
            train[b, held] = False
    rate = np.array([y[t].mean() for t in train]).clip(1e-6, 1 - 1e-6)
    intercepts = np.log(rate / (1 - rate))
    f = np.repeat(intercepts[:, None], len(y), axis=1)
    text = np.array([c in binner.levels for c in columns])
    main_codes, main_shape = _pad_codes(codes.T, [(int(s),) for s in sizes])
    stage = Boosting(learning_rate, max_rounds, patience, min_leaf, smoothing, greedy_ratio)
    mains, main_steps = _boost(
        Terms(main_codes, main_shape, text[:, None]), y, train, f, stage, rng
    )
    for j in range(len(columns)):
        f += np.take_along_axis(mains[:, j], np.repeat(codes[None, :, j], bags, 0), 1)
    pair_binner = Binner.fit(frame, columns, pair_bins)
    chosen_pairs: list[tuple[int, int, np.ndarray]] = []
    pair_steps = np.zeros(bags, dtype=int)
    limit = len(columns) if pairs is None else pairs
    if limit > 0 and len(columns) > 1:
        pc = pair_binner.codes(frame)
        psizes = pair_binner.sizes
        chosen = _fast_pairs(pc, psizes, y, f, train, limit)
        if chosen:
            pair_codes = np.stack([pc[:, [i, j]] for i, j in chosen])  # pairs × rows × 2
            shapes = [(int(psizes[i]), int(psizes[j])) for i, j in chosen]
            flat, shape = _pad_codes(pair_codes, shapes)
            nominal = np.array([[text[i], text[j]] for i, j in chosen])
            pair_stage = Boosting(learning_rate, max_rounds, patience, min_leaf, 0, greedy_ratio)
            tables, pair_steps = _boost(Terms(flat, shape, nominal), y, train, f, pair_stage, rng)
            mean = tables.mean(0).reshape(len(chosen), *shape)
            chosen_pairs = [
                (i, j, mean[k, : shapes[k][0], : shapes[k][1]]) for k, (i, j) in enumerate(chosen)
            ]
    mean_mains = mains.mean(0)
    info = {
        "additive_bags": bags,
        "additive_steps": float(np.mean(main_steps)),
        "additive_pair_steps": float(np.mean(pair_steps)),
        "additive_pairs": len(chosen_pairs),
    }
    return AdditiveModel(
        binner,
        pair_binner,
        float(intercepts.mean()),
        [mean_mains[j, : sizes[j]] for j in range(len(columns))],
        chosen_pairs,
        info,
    )
