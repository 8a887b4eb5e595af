"""Draw a GraphNet: neurons placed by DAG level, edges coloured by sign, width by |w|."""
from __future__ import annotations

import numpy as np


def layout(net) -> dict[int, tuple[float, float]]:
    """Position of each live neuron: x = level, y spread evenly within the level."""
    if net.mode == "dag":
        level = net.levels().cpu().numpy()
    else:  # recurrent: inputs left, outputs right, hidden between
        level = np.where(net.neuron_alive.cpu().numpy(), 1, -1)
        level[: net.n_in] = 0
        level[net.n_in:net.n_in + net.n_out] = 2
    ids = np.nonzero(net.neuron_alive.cpu().numpy())[0]
    pos = {}
    for lv in sorted(set(level[ids].tolist())):
        members = [int(i) for i in ids if level[i] == lv]
        for k, i in enumerate(members):
            pos[i] = (float(lv), (k + 0.5) / len(members))
    return pos


def draw_graph(net, path, title: str | None = None) -> None:
    """A PNG of the net at `path` (written atomically): neurons by level, edges red (w > 0) or
    blue (w < 0) with width growing with |w|; a key beside the axes says so."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    from ..core.checkpoint import atomic_write_bytes
    pos = layout(net)
    src, dst, w = (t.detach().cpu().numpy() for t in net.edges())
    fig, ax = plt.subplots(figsize=(8, 4.5))
    scale = float(np.abs(w).max()) if len(w) else 0.0
    scale = scale or 1.0
    if len(w):
        segments = [(pos[int(s)], pos[int(d)]) for s, d in zip(src, dst)]
        colors = ["tab:red" if x > 0 else "tab:blue" for x in w]
        ax.add_collection(LineCollection(segments, colors=colors, linewidths=_width(np.abs(w), scale), alpha=0.6))
    n_in, n_fixed = net.n_in, net.n_in + net.n_out
    handles = []
    for group, color, label in (((0, n_in), "black", "input"), ((n_in, n_fixed), "tab:green", "output"),
                                ((n_fixed, 10**9), "tab:orange", "hidden")):
        pts = [p for i, p in pos.items() if group[0] <= i < group[1]]
        if pts:
            handles.append(ax.scatter(*zip(*pts), s=28, c=color, label=label, zorder=3))
    handles += [Line2D([], [], color="tab:red", lw=2, label="edge, w > 0"),
                Line2D([], [], color="tab:blue", lw=2, label="edge, w < 0")]
    handles += [Line2D([], [], color="grey", lw=_width(np.array([f * scale]), scale)[0], label=f"|w| = {f * scale:.2g}")
                for f in (1.0, 0.5, 0.1)]
    ax.set_xlabel("level")
    ax.set_yticks([])
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title or f"{net.n_hidden} hidden, {net.n_edges} edges, {net.n_params} params", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _width(abs_w: np.ndarray, scale: float) -> np.ndarray:
    """Line width of an edge: 0.3 points for w = 0 up to 2.8 for the largest |w| of the net."""
    return 0.3 + 2.5 * abs_w / scale
