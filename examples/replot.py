#!/usr/bin/env python3
"""Replot figures from their JSON (figures/<id>.json) with matplotlib alone.

It reads nothing of this repository but the JSON files given, to show (and
to keep true: CI runs it on every figure) that another tool can replot a
figure from its data: panels with their axes, every series in its style,
bands, point labels, and the legend.

    python3 examples/replot.py figures/*.json --out /tmp/replots

writes /tmp/replots/<id>.png for each file. It fails (exit status 1, with the
file and what is wrong) if a figure cannot be replotted: a missing field, an
unknown style or source, a series pointing at no panel, lengths that do not
match, nothing finite to draw.
"""

import argparse
import json
import math
import os
import sys

STYLES = {"line", "points", "area", "arrows"}
SOURCES = {"measured", "theory"}


class Unplottable(Exception):
    pass


def need(obj, key, where):
    if key not in obj:
        raise Unplottable(f"{where}: no field {key!r}")
    return obj[key]


def numbers(values, where):
    """A list of numbers; null (an undefined value) becomes NaN."""
    if not isinstance(values, list):
        raise Unplottable(f"{where}: not a list")
    out = []
    for v in values:
        if v is None:
            out.append(math.nan)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            raise Unplottable(f"{where}: {v!r} is not a number")
    return out


def replot(path, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, encoding="utf-8") as f:
        fig_data = json.load(f)
    fid = need(fig_data, "id", path)
    panels = need(fig_data, "panels", path)
    series = need(fig_data, "series", path)
    if not panels:
        raise Unplottable(f"{path}: no panels")

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    axes = axes[0]
    for i, p in enumerate(panels):
        where = f"{path}: panel {i}"
        ax = axes[i]
        ax.set_title(need(p, "title", where), fontsize=8)
        ax.set_xlabel(need(p, "x_label", where))
        ax.set_ylabel(need(p, "y_label", where))
        if need(p, "x_log", where):
            ax.set_xscale("log")
        if need(p, "y_log", where):
            ax.set_yscale("log")
        if p.get("x_range") is not None:
            ax.set_xlim(*numbers(p["x_range"], f"{where}: x_range"))
        if p.get("y_range") is not None:
            ax.set_ylim(*numbers(p["y_range"], f"{where}: y_range"))

    drawn = [0] * len(panels)
    shown = set()
    for s in series:
        name = need(s, "name", f"{path}: a series")
        where = f"{path}: series {name!r}"
        panel, style, source = need(s, "panel", where), need(s, "style", where), need(s, "source", where)
        if not isinstance(panel, int) or not 0 <= panel < len(panels):
            raise Unplottable(f"{where}: panel {panel!r} is not one of the {len(panels)} panels")
        if style not in STYLES:
            raise Unplottable(f"{where}: unknown style {style!r} (known: {sorted(STYLES)})")
        if source not in SOURCES:
            raise Unplottable(f"{where}: unknown source {source!r} (known: {sorted(SOURCES)})")
        x, y = numbers(need(s, "x", where), f"{where}: x"), numbers(need(s, "y", where), f"{where}: y")
        if len(x) != len(y):
            raise Unplottable(f"{where}: {len(x)} x values, {len(y)} y values")
        color = need(s, "color", where)
        # One legend entry per colour, mark and label, as the figure's own legend has it
        # (data written before legend labels existed has none: the name stands in).
        text = s.get("legend_label") or name
        look = (color.lower(), style, source, bool(s.get("labels")))
        label = text if need(s, "legend", where) and (look, text) not in shown else None
        if label:
            shown.add((look, text))
        dashed = source == "theory"
        ax = axes[panel]
        if style == "line":
            band = s.get("band")
            if band is not None:
                lo, hi = numbers(need(band, "lo", where), f"{where}: band.lo"), numbers(need(band, "hi", where), f"{where}: band.hi")
                if not len(lo) == len(hi) == len(x):
                    raise Unplottable(f"{where}: band has {len(lo)}/{len(hi)} values for {len(x)} points")
                ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)
                if label:
                    label = f"{label} (band: {need(band, 'what', where)})"
            ax.plot(x, y, color=color, linestyle="--" if dashed else "-", linewidth=1.2, label=label)
        elif style == "points":
            ax.scatter(x, y, color=color, s=10, label=label, zorder=3)
            for xi, yi, text in zip(x, y, s.get("labels") or []):
                ax.annotate(text, (xi, yi), xytext=(4, 4), textcoords="offset points", color=color)
        elif style == "area":
            ax.fill(x, y, color=color, alpha=0.15, linewidth=0, label=label)
        elif style == "arrows":
            if len(x) % 2:
                raise Unplottable(f"{where}: arrows need tail/head pairs, got {len(x)} points")
            for k in range(0, len(x), 2):
                ax.annotate("", xy=(x[k + 1], y[k + 1]), xytext=(x[k], y[k]),
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8})
            if label:
                ax.plot([], [], color=color, label=label)
        if any(math.isfinite(a) and math.isfinite(b) for a, b in zip(x, y)):
            drawn[panel] += 1
    for i, count in enumerate(drawn):
        if count == 0:
            # Valid data (a measurement that never reached its target draws nothing), but say so.
            print(f"note: {path}: panel {i} has nothing to draw", file=sys.stderr)

    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    labels = [l for ax in axes for l in ax.get_legend_handles_labels()[1]]
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7, frameon=False)
        rows = math.ceil(len(labels) / min(3, len(labels)))
        fig.tight_layout(rect=(0, min(0.45, 0.05 * rows + 0.02), 1, 1))
    else:
        fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{fid}.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("figures", nargs="+", help="figure JSON files (figures/<id>.json)")
    parser.add_argument("--out", default="replots", help="where to write <id>.png (default: ./replots)")
    args = parser.parse_args()
    failed = 0
    for path in args.figures:
        try:
            print(f"replotted {path} -> {replot(path, args.out)}")
        except Exception as e:  # every failure names its file, and fails the run
            print(f"error: cannot replot {path}: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"error: {failed} of {len(args.figures)} figure(s) could not be replotted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
