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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    pos = layout(net)
    src, dst, w = (t.cpu().numpy() for t in net.edges())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(w):
        segments = [(pos[int(s)], pos[int(d)]) for s, d in zip(src, dst)]
        scale = np.abs(w).max() or 1.0
        colors = ["tab:red" if x > 0 else "tab:blue" for x in w]
        ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.3 + 2.5 * np.abs(w) / scale,
                                         alpha=0.6))
    n_in, n_fixed = net.n_in, net.n_in + net.n_out
    for group, color, label in (((0, n_in), "black", "input"), ((n_in, n_fixed), "tab:green", "output"),
                                ((n_fixed, 10**9), "tab:orange", "hidden")):
        pts = [p for i, p in pos.items() if group[0] <= i < group[1]]
        if pts:
            ax.scatter(*zip(*pts), s=28, c=color, label=label, zorder=3)
    ax.set_xlabel("level")
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or f"{net.n_hidden} hidden, {net.n_edges} edges, {net.n_params} params "
                          "(red +, blue -)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
