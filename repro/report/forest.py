"""A forest plot of a table's rows against its Baseline: per column, each row's EPE difference
with its 95% bootstrap interval (repro.report.claims), the paper's own difference beside it."""

from repro.report.figures import new_figure
from repro.report.statistics import Difference


def plot_forest(title: str, rows: list[str], columns: list[str], deltas: dict, paper: dict[tuple[str, str], float]):
    """One panel per column, one line per row with a difference in `deltas` ((row, column) ->
    Difference, or a string saying why there is none: not drawn); `paper` holds the paper's
    differences where it has both numbers. Filled: the interval resolves the difference."""
    fig = new_figure(4.6 * len(columns), 0.9 + 0.45 * len(rows))
    fig.suptitle(title, fontsize=9)
    for ax, col in zip(fig.subplots(1, len(columns), squeeze=False, sharey=True)[0], columns):
        ax.axvline(0, color="grey", linewidth=0.8)
        for y, row in enumerate(rows):
            found = deltas.get((row, col))
            if isinstance(found, Difference):
                ax.plot([found.low, found.high], [y, y], color="C0", linewidth=1.5)
                face = "C0" if found.excludes_zero else "white"
                ax.plot(found.delta, y, "o", color="C0", markerfacecolor=face, label="ours [95% CI]")
            if (row, col) in paper:
                ax.plot(paper[row, col], y, "x", color="C3", label="paper")
        ax.set(title=col, xlabel="Δ EPE vs Baseline (mm)", yticks=range(len(rows)), yticklabels=rows, ylim=(len(rows) - 0.5, -0.5))
        ax.grid(alpha=0.3, axis="x")
        unique = dict(zip(*reversed(ax.get_legend_handles_labels())))  # label -> handle, once each
        if unique:
            ax.legend(unique.values(), unique.keys(), fontsize=6)
    return fig
