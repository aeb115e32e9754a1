"""The report's figures, drawn with matplotlib's Agg backend from small pandas frames.

Every figure has a fixed size in inches and is saved at a fixed dpi without
"tight" cropping, so a PNG's pixel size depends only on how many panels it has
(documented in README: report) and re-running the report gives the same files.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, same output everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

DPI = 100
HEADLINE_SIZE = (9.0, 6.0)  # 900 x 600 px
HEATMAP_SIZE = (14.0, 7.0)  # 1400 x 700 px
FACET_PANEL = (4.0, 3.2)  # per panel; plus FACET_EXTRA for legend and title
FACET_EXTRA = (2.2, 0.9)
FACET_COLUMNS = 3  # (2 x 2 for four panels)
COUNTRY_WIDTH = 14.0  # 1400 px wide, 60 + 340 px per model panel high
COUNTRY_PANEL_HEIGHT = 3.4
COUNTRY_EXTRA_HEIGHT = 0.6

THRESHOLD_LABEL = "τ: W1 threshold (fraction of the answer scale)"
SHARE_LABEL = "questions with W1 < τ (%)"
W1_LABEL = "W1 (fraction of the answer scale)"

_MODEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#bcbd22")
_BASELINE_STYLES = {
    "uniform": {"color": "#7f7f7f", "linestyle": ":", "marker": "x"},
    "majority-leaky": {"color": "#8c564b", "linestyle": "--", "marker": "v"},
    "global-prior": {"color": "#555555", "linestyle": "--", "marker": "s"},
    "group-prior": {"color": "#222222", "linestyle": "-", "marker": "D"},
}
_CONTINENT_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def facet_size(n_panels: int) -> tuple[float, float]:
    """Inches of a small-multiples figure: up to FACET_COLUMNS panels per row."""
    columns, rows = _grid(n_panels)
    return (FACET_PANEL[0] * columns + FACET_EXTRA[0], FACET_PANEL[1] * rows + FACET_EXTRA[1])


def country_size(n_panels: int) -> tuple[float, float]:
    return (COUNTRY_WIDTH, COUNTRY_PANEL_HEIGHT * max(n_panels, 1) + COUNTRY_EXTRA_HEIGHT)


def _grid(n_panels: int) -> tuple[int, int]:
    """(columns, rows): up to FACET_COLUMNS per row, but 4 panels as 2 x 2."""
    columns = 2 if n_panels == 4 else max(1, min(n_panels, FACET_COLUMNS))
    return columns, max(1, math.ceil(n_panels / columns))


def model_styles(models: list[str]) -> dict[str, dict]:
    """One fixed colour/line/marker per model: baselines in greys and dashes, models in colour."""
    styles, colour = {}, 0
    for model in models:
        if model in _BASELINE_STYLES:
            styles[model] = dict(_BASELINE_STYLES[model])
        else:
            styles[model] = {"color": _MODEL_COLOURS[colour % len(_MODEL_COLOURS)], "linestyle": "-", "marker": "o"}
            colour += 1
    return styles


def save(figure: Figure, path) -> None:
    # No bbox_inches="tight": it would make the pixel size depend on the labels.
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(figure)


def _curve(axes, rows: pd.DataFrame, style: dict, label: str | None, band: bool) -> None:
    rows = rows.sort_values("threshold")
    axes.plot(rows["threshold"], rows["pct_questions_below"], label=label, linewidth=1.8, markersize=4, **style)
    if band and rows["ci_low"].notna().any():
        axes.fill_between(
            rows["threshold"], rows["ci_low"], rows["ci_high"], color=style["color"], alpha=0.12, linewidth=0
        )


def _share_axes(axes, thresholds: np.ndarray) -> None:
    axes.set_xlim(float(thresholds.min()), float(thresholds.max()))
    axes.set_ylim(0, 100)
    axes.grid(True, color="#dddddd", linewidth=0.6)


def headline_curve(
    curves: pd.DataFrame,
    models: list[str],
    noise_floor_curve: pd.DataFrame | None,
    threshold: float,
    group_label: str = "everyone",
) -> Figure:
    """The published figure: % of questions with W1 < τ against τ, one line per model,
    its bootstrap interval as a band, and the humans-vs-humans noise floor for reference."""
    styles = model_styles(models)
    figure, axes = plt.subplots(figsize=HEADLINE_SIZE)
    for model in models:
        _curve(axes, curves[curves["model"] == model], styles[model], model, band=True)
    if noise_floor_curve is not None and len(noise_floor_curve):
        # a wide pale band behind the models: the ceiling, not a competitor
        axes.plot(
            noise_floor_curve["threshold"],
            noise_floor_curve["pct_below"],
            color="#9ecae1",
            linewidth=7,
            alpha=0.7,
            solid_capstyle="round",
            zorder=1,
            label="noise floor (humans vs resampled humans)",
        )
    axes.axvline(threshold, color="#999999", linewidth=0.8, linestyle=":")
    axes.text(threshold, 98, f" τ = {threshold:g}", va="top", ha="left", fontsize=8, color="#555555")
    _share_axes(axes, curves["threshold"].to_numpy(dtype=float))
    axes.set_xlabel(THRESHOLD_LABEL)
    axes.set_ylabel(SHARE_LABEL)
    axes.set_title(f"Share of questions whose answer distribution is within τ of the humans' ({group_label})")
    axes.legend(loc="lower right", fontsize=8, framealpha=0.9)
    figure.tight_layout()
    return figure


def facet_curves(curves: pd.DataFrame, models: list[str], group_values: list[str], grouping_label: str) -> Figure:
    """Small multiples: the headline curve within each group value, same axes everywhere."""
    styles = model_styles(models)
    columns, rows = _grid(len(group_values))
    figure, grid = plt.subplots(
        rows, columns, figsize=facet_size(len(group_values)), sharex=True, sharey=True, squeeze=False
    )
    thresholds = curves["threshold"].to_numpy(dtype=float)
    for index, axes in enumerate(grid.flat):
        if index >= len(group_values):
            axes.set_visible(False)
            continue
        value = group_values[index]
        in_group = curves[curves["group_value"] == value]
        for model in models:
            _curve(axes, in_group[in_group["model"] == model], styles[model], model if index == 0 else None, band=False)
        _share_axes(axes, thresholds)
        counts = in_group.groupby("model")["n_questions"].max()
        suffix = f" ({int(counts.max())} questions)" if len(counts) else ""
        axes.set_title(textwrap.shorten(str(value), 34, placeholder="…") + suffix, fontsize=9)
        if index % columns == 0:
            axes.set_ylabel(SHARE_LABEL, fontsize=8)
        if index >= len(group_values) - columns:
            axes.set_xlabel("τ (W1 threshold)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_tick_params(labelbottom=True)
    width, height = facet_size(len(group_values))
    right = 1 - FACET_EXTRA[0] / width
    figure.legend(loc="center left", bbox_to_anchor=(right + 0.01, 0.5), fontsize=8, frameon=False)
    figure.suptitle(f"Share of questions with W1 < τ, by {grouping_label}", fontsize=11)
    figure.tight_layout(rect=(0, 0, right, 1 - 0.35 / height))
    return figure


def w1_heatmap(matrix: pd.DataFrame, categories: pd.Series) -> Figure:
    """Models (rows) x questions (columns, grouped by category) coloured by overall W1.

    `matrix` is indexed by model with one column per question, in display order;
    `categories` gives each column's category. Blank cells: not scored."""
    figure, axes = plt.subplots(figsize=HEATMAP_SIZE)
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    colours = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    top = max(0.5, float(np.nanmax(matrix.to_numpy(dtype=float)))) if values.count() else 0.5
    image = axes.imshow(values, aspect="auto", cmap=colours, vmin=0.0, vmax=top, interpolation="nearest")
    axes.set_yticks(range(len(matrix.index)), [str(m) for m in matrix.index], fontsize=9)
    questions = list(matrix.columns)
    if len(questions) <= 80:
        axes.set_xticks(range(len(questions)), questions, rotation=90, fontsize=6)
    else:
        axes.set_xticks([])
    axes.set_xlabel("question (grouped by category)")
    # category blocks: separators and a label centred over each block, on the top axis
    boundaries, centres, names = [], [], []
    start = 0
    labels = list(categories)
    for end in range(1, len(labels) + 1):
        if end == len(labels) or labels[end] != labels[start]:
            centres.append((start + end - 1) / 2)
            names.append(textwrap.shorten(str(labels[start]), 30, placeholder="…"))
            if end < len(labels):
                boundaries.append(end - 0.5)
            start = end
    for boundary in boundaries:
        axes.axvline(boundary, color="white", linewidth=1.5)
    top_axis = axes.secondary_xaxis("top")
    top_axis.set_xticks(centres, names, rotation=35, ha="left", fontsize=7)
    colourbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    colourbar.set_label(W1_LABEL)
    figure.suptitle(
        "W1 per model and question, everyone (darker is closer to the humans; grey = not scored)", fontsize=11
    )
    figure.tight_layout()
    return figure


def w1_by_country(
    by_country: pd.DataFrame, models: list[str], continent_of: dict[str, str], overall_mean: dict[str, float]
) -> Figure:
    """Mean W1 over questions per country, one panel per model, bars sorted best first and
    coloured by continent; the dashed line is the model's mean W1 over everyone."""
    figure, grid = plt.subplots(max(len(models), 1), 1, figsize=country_size(len(models)), squeeze=False)
    continents = sorted({continent_of.get(c, "other") for c in by_country["group_value"]})
    colour_of = {name: _CONTINENT_COLOURS[i % len(_CONTINENT_COLOURS)] for i, name in enumerate(continents)}
    for axes, model in zip(grid[:, 0], models):
        rows = by_country[(by_country["model"] == model) & by_country["mean_w1"].notna()].sort_values(
            ["mean_w1", "group_value"]
        )
        colours = [colour_of[continent_of.get(c, "other")] for c in rows["group_value"]]
        axes.bar(range(len(rows)), rows["mean_w1"], color=colours, width=0.8)
        axes.set_xticks(range(len(rows)), list(rows["group_value"]), rotation=90, fontsize=7)
        axes.set_xlim(-0.6, max(len(rows), 1) - 0.4)
        mean = overall_mean.get(model)
        everyone = ""
        if mean is not None and np.isfinite(mean):
            axes.axhline(mean, color="black", linestyle="--", linewidth=0.8)
            everyone = f"; dashed line: everyone together, {mean:.3f}"
        top = float(rows["mean_w1"].max()) if len(rows) else 0.0
        axes.set_ylim(0, max(top, mean if mean is not None and np.isfinite(mean) else 0.0, 0.05) * 1.3)
        axes.set_ylabel("mean W1 over questions", fontsize=8)
        axes.set_title(
            f"{model}: mean W1 per country (sorted, lower is closer to the humans{everyone})", fontsize=10, loc="left"
        )
        axes.grid(True, axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
    handles = [Patch(color=colour_of[name], label=name) for name in continents]
    if handles:
        grid[0, 0].legend(
            handles=handles,
            loc="upper left",
            fontsize=7,
            ncols=min(len(handles), 4),
            title="continent",
            title_fontsize=7,
        )
    figure.tight_layout()
    return figure
