"""Where the architecture diagram puts its nodes and how its edges run (``diagram.py``
draws them): a top-to-bottom layered layout computed here, no external tool.

Rows: longest-path layering (a node sits one row below its lowest input), so parallel
branches of different lengths share rows and a merge waits below its longest branch.
Lanes (columns): a node continues the lane of an input whose first consumer it is (a chain
stays in a straight column); any other node takes the leftmost lane free over the rows it
and its outgoing edges span, so branches stand side by side and lanes are reused once a
branch has merged. An edge that would run through other nodes of its lane (a skip
connection around a residual block) is drawn as an arc beside the column instead.

>>> preds = [[], [0], [1], [0, 2]]          # 0 -> 1 -> 2 -> 3 and a skip 0 -> 3
>>> rows(preds), lanes(preds, rows(preds))
([0, 1, 2, 3], [0, 0, 0, 0])
>>> route(0, 3, rows(preds), lanes(preds, rows(preds)))
'arc'
"""

from __future__ import annotations

from collections.abc import Sequence


def rows(preds: Sequence[Sequence[int]]) -> list[int]:
    """The row of each node: 0 for a node without inputs, else one more than the lowest
    of its inputs. Nodes are numbered in a topological order (every input comes first)."""
    out: list[int] = []
    for i, ps in enumerate(preds):
        if any(p >= i for p in ps):
            raise ValueError(f"layout: node {i} takes input from node(s) "
                             f"{[p for p in ps if p >= i]}, which come later; number the "
                             "nodes in the order they were computed")
        out.append(1 + max((out[p] for p in ps), default=-1))
    return out


def successors(preds: Sequence[Sequence[int]]) -> list[list[int]]:
    """The consumers of each node, in the order they were computed."""
    succ: list[list[int]] = [[] for _ in preds]
    for i, ps in enumerate(preds):
        for p in dict.fromkeys(ps):
            succ[p].append(i)
    return succ


def lanes(preds: Sequence[Sequence[int]], row: Sequence[int]) -> list[int]:
    """The lane (column, 0 leftmost) of each node; see the module docstring."""
    succ = successors(preds)
    # the rows a node holds in its lane: its own, and those its edges run down before
    # they turn towards a consumer in another lane
    end = [max([row[i]] + [row[s] - 1 for s in succ[i]]) for i in range(len(preds))]
    lane: list[int] = []
    held: dict[int, list[tuple[int, int]]] = {}
    taken: set[tuple[int, int]] = set()  # (lane, row) with a node in it
    for v, ps in enumerate(preds):
        mine = next((lane[p] for p in ps if succ[p][0] == v and (lane[p], row[v]) not in taken),
                    None)
        if mine is None:
            mine = 0
            while any(a <= end[v] and row[v] <= b for a, b in held.get(mine, ())):
                mine += 1
        lane.append(mine)
        held.setdefault(mine, []).append((row[v], end[v]))
        taken.add((mine, row[v]))
    return lane


def route(p: int, v: int, row: Sequence[int], lane: Sequence[int]) -> str:
    """How the edge p -> v runs: 'straight' (next row, or down a lane with nothing in
    between), 'down-then-across' (down p's lane, then over to v), 'across-then-down'
    (over to v's lane, then down it) or 'arc' (beside the column, around the nodes in
    the way)."""
    between = range(row[p] + 1, row[v])
    occupied = {(lane[i], row[i]) for i in range(len(row))}

    def clear(ln: int) -> bool:
        return not any((ln, r) in occupied for r in between)

    if not between or (lane[p] == lane[v] and clear(lane[p])):
        return "straight"
    if lane[p] != lane[v] and clear(lane[p]):
        return "down-then-across"
    if lane[p] != lane[v] and clear(lane[v]):
        return "across-then-down"
    return "arc"


def edge_path(how: str, a: tuple[float, float], b: tuple[float, float],
              side: float) -> tuple[str, tuple[float, float]]:
    """The SVG path of an edge that runs ``how`` (``route``) from a = (x, y), the bottom of
    its source, to b, the top of its consumer (for an arc: their right sides, at mid-height,
    the arc running down the line x = ``side``), and where its label goes.

    >>> edge_path("straight", (10, 0), (10, 40), 0)
    ('M10.0,0.0 L10.0,40.0', (15.0, 23.0))
    """
    (x0, y0), (x1, y1) = a, b
    if how == "arc":  # out of the source's right, down beside the column, into the consumer
        r = 10
        return (f"M{x0:.1f},{y0:.1f} H{side - r:.1f} Q{side:.1f},{y0:.1f} {side:.1f},"
                f"{y0 + r:.1f} V{y1 - r:.1f} Q{side:.1f},{y1:.1f} {side - r:.1f},{y1:.1f} "
                f"H{x1:.1f}", (side + 4, (y0 + y1) / 2))
    if how == "down-then-across":
        return (f"M{x0:.1f},{y0:.1f} V{y1 - 16:.1f} L{x1:.1f},{y1:.1f}",
                (x0 + 5, (y0 + y1 - 16) / 2))
    if how == "across-then-down":
        return (f"M{x0:.1f},{y0:.1f} L{x1:.1f},{y0 + 16:.1f} V{y1:.1f}",
                (x1 + 5, (y0 + 16 + y1) / 2))
    return f"M{x0:.1f},{y0:.1f} L{x1:.1f},{y1:.1f}", ((x0 + x1) / 2 + 5, (y0 + y1) / 2 + 3)
