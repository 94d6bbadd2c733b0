"""Batched Monte-Carlo tree search: Gumbel root search (default) and PUCT.

Many searches (one per game in flight) advance in lock-step: each step every unfinished
search descends to one leaf (or a few, with virtual loss), all leaves are evaluated in
one network call, then expanded and backed up (`step`). The hot loop follows what was
measured on a 2-core CPU (DESIGN.md "Performance"):

- a new leaf keeps the network's logits and is expanded (legal moves generated, priors
  soft-maxed and sorted) only when a later simulation passes through it: most leaves of
  a small search are never revisited, and move generation is the costliest part;
- legal moves are generated once per node and cached; game-over is read from them, and
  so are the played move's targets: the node keeps python-chess's generation order
  (`Node.order`, `Search.legal_moves`), and a kept root is expanded once, in `advance`;
- a new leaf's terminal checks (a legal move? enough material? a repetition?) take
  `movegen`'s quick answers, python-chess's own; a leaf whose side to move can mate at once
  is a proven win (`movegen.has_mate_in_one`, checking moves only), so a move that allows a
  mate in one is refuted on its first visit rather than after the network learns it;
- the Gumbel root skips sigma in the first halving round, where every candidate is
  unvisited and shares it (all of a fast search): the choice is the same, exactly;
- nodes hold plain Python lists and floats, and no parent pointers, so reference
  counting frees a discarded subtree (the caller may switch the cyclic GC off);
- children are sorted by prior, so an interior selection scans the visited children
  plus the first unvisited one (every rule below prefers the highest-prior unvisited
  child, so the visited children are always a prefix);
- leaves are encoded in one numpy call per step.

Values are in [-1, 1] from the view of the side to move at the node; an edge's
statistics (`n`, `w`) are from the view of the player choosing it.

Gumbel search follows Danihelka et al., "Policy improvement by planning with Gumbel"
(ICLR 2022) and DeepMind's mctx: sequential halving over the top-m actions by
Gumbel + logit at the root, deterministic improved-policy selection below it, and the
improved policy softmax(logits + sigma(completed Q)) as the training target.

Over 500 lines: the node, its expansion, the selection rules, the backup and `Search` share
one node layout (the prefix of visited children, the lazy expansion) and one hot loop that
the list above tunes; apart, each would rely on the others' invariants from another file.
If it grows, the seam is the selection rules (`_sigma`, `_select_*`, `considered_visits`).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

import chess
import numpy as np

from .encoding import board_features, move_indices, planes_from_features
from .movegen import has_legal_move, has_mate_in_one, is_insufficient_material, is_repetition, mating_move


@dataclass(frozen=True)
class SearchConfig:
    """Knobs of one search; the defaults are self-play's."""

    algorithm: str = "gumbel"  # gumbel | puct
    simulations: int = 32
    gumbel_considered: int = 16
    gumbel_scale: float = 1.0  # 0: no root noise (evaluation, UCI)
    c_visit: float = 50.0
    c_scale: float = 0.1
    q_span_floor: float = 1e-8  # Gumbel: sigma divides Q by max(children's span, this); 1e-8 = mctx, 2 = no rescaling
    c_puct: float = 1.5
    fpu_reduction: float = 0.25
    dirichlet_alpha: float = 0.3
    dirichlet_epsilon: float = 0.25  # 0: no root noise
    virtual_loss: int = 1
    leaves_per_step: int = 1


class Node:
    """A position in the tree; edge statistics live in the parent's lists."""

    __slots__ = ("moves", "order", "priors", "n", "w", "children", "visits", "value", "terminal", "logits")

    def __init__(self) -> None:
        self.moves: list[chess.Move] = []
        self.order: list[int] = []  # per child, its index in python-chess's generation order
        self.priors: list[float] | None = None  # None until expanded
        self.n: list[int] = []
        self.w: list[float] = []
        self.children: list[Node | None] = []
        self.visits = 0
        self.value = 0.0
        self.terminal: float | None = None  # known without the network: -1 mated, 0 drawn, 1 mates in one
        self.logits: np.ndarray | None = None  # the network's policy row, until expanded

    @property
    def expanded(self) -> bool:
        """Whether its moves and priors are set (terminal nodes never are)."""
        return self.priors is not None

    @property
    def evaluated(self) -> bool:
        """Whether the network has evaluated it (expanded, or holding its logits)."""
        return self.priors is not None or self.logits is not None


def expand_node(node: Node, board: chess.Board) -> None:
    """Set an evaluated node's legal moves and priors (softmax of its logits over them),
    sorted by prior; `board` is at the node's position."""
    legal = list(board.generate_legal_moves())
    assert node.logits is not None  # only an evaluated node is expanded
    x = node.logits[move_indices(legal, board.turn)].astype(np.float64)
    x -= x.max()
    np.exp(x, out=x)
    x /= x.sum()
    sort = np.argsort(-x, kind="stable")
    order = sort.tolist()
    k = len(legal)
    node.moves = [legal[j] for j in order]
    node.order = order
    node.priors = x[sort].tolist()
    node.n = [0] * k
    node.w = [0.0] * k
    node.children = [None] * k
    node.logits = None


def terminal_value(board: chess.Board, legal: list[chess.Move] | bool, *, root: bool = False) -> float | None:
    """-1 or 0 when the game is over at `board` (a repetition inside the search counts as a
    draw, as lc0 does), else None. `legal`: `board`'s legal moves, or whether it has any."""
    if not legal:
        return -1.0 if board.is_check() else 0.0
    if is_insufficient_material(board) or board.halfmove_clock >= 100:
        return 0.0
    if not root and board.halfmove_clock >= 4 and is_repetition(board, 2):
        return 0.0
    return None


def repetitions(board: chess.Board) -> int:
    """Earlier occurrences of this position (0, 1 or 2+), for the encoding's repetition planes."""
    if board.halfmove_clock < 4 or not is_repetition(board, 2):
        return 0
    return 2 if board.is_repetition(3) else 1


@dataclass(slots=True)
class Leaf:
    """A new node waiting for the network."""

    search: "Search"
    node: Node
    path: list[tuple[Node, int]]  # empty: the search's root
    features: tuple[int, ...]


def _backup(path: list[tuple[Node, int]], value: float, vl: int) -> None:
    for node, i in reversed(path):
        value = -value
        node.n[i] += 1 - vl
        node.w[i] += value + vl
        node.visits += 1 - vl


def _sigma(node: Node, idxs: list[int], cfg: SearchConfig) -> list[float]:
    """mctx's qtransform_completed_by_mix_value for the children `idxs` of `node`.

    Unvisited children get the mixed value of the network's value and the prior-weighted
    Q of the visited ones; Q is min-max rescaled over all children, then scaled by
    (c_visit + max visits) * c_scale. Assumes every visited child is in `idxs`.

    The span divided by is at least `cfg.q_span_floor`: mctx's 1e-8 lets the best child gain
    the whole (c_visit + max visits) * c_scale however close the values are; 2 (the value
    range) never rescales, so gains follow value gaps.
    """
    n, w, p = node.n, node.w, node.priors
    assert p is not None  # a node with children is expanded
    sum_n = node.visits - 1
    qs = []
    lo = hi = None
    if sum_n > 0:
        sum_p = weighted = 0.0
        for i in idxs:
            if n[i]:
                q = w[i] / n[i]
                sum_p += p[i]
                weighted += p[i] * q
        v_mix = (node.value + sum_n * weighted / sum_p) / (sum_n + 1) if sum_p > 0 else node.value
    else:
        v_mix = node.value
    max_n = 0
    for i in idxs:
        ni = n[i]
        q = w[i] / ni if ni else v_mix
        if ni > max_n:
            max_n = ni
        qs.append(q)
    lo, hi = min(qs), max(qs)
    if len(idxs) < len(n):  # children outside idxs are unvisited: v_mix counts too
        lo, hi = min(lo, v_mix), max(hi, v_mix)
    scale = (cfg.c_visit + max_n) * cfg.c_scale / max(hi - lo, cfg.q_span_floor)
    return [scale * (q - lo) for q in qs]


def _select_gumbel_interior(node: Node, cfg: SearchConfig) -> int:
    """argmax of improved policy minus visit share, over the visited prefix and the first unvisited child."""
    n, w, p = node.n, node.w, node.priors
    assert p is not None  # a node with children is expanded
    sum_n = node.visits - 1
    if sum_n <= 0:
        return 0
    k = 0
    size = len(n)
    sum_p = weighted = 0.0
    max_n = 0
    while k < size and n[k]:
        q = w[k] / n[k]
        sum_p += p[k]
        weighted += p[k] * q
        if n[k] > max_n:
            max_n = n[k]
        k += 1
    v_mix = (node.value + sum_n * weighted / sum_p) / (sum_n + 1) if sum_p > 0 else node.value
    qs = [w[i] / n[i] for i in range(k)]
    lo, hi = min(qs), max(qs)
    if k < size:  # unvisited children take v_mix
        lo, hi = min(lo, v_mix), max(hi, v_mix)
    scale = (cfg.c_visit + max_n) * cfg.c_scale / max(hi - lo, cfg.q_span_floor)
    exp = math.exp  # exponents relative to hi: at most 0, so no overflow however many visits
    weights = [p[i] * exp(scale * (qs[i] - hi)) for i in range(k)]
    rest = exp(scale * (v_mix - hi)) if k < size else 0.0
    z = sum(weights) + max(1.0 - sum_p, 0.0) * rest
    inv = 1.0 / (1 + sum_n)
    best, best_i = -1e9, 0
    for i in range(k):
        s = weights[i] / z - n[i] * inv
        if s > best:
            best, best_i = s, i
    if k < size and p[k] * rest / z > best:
        best_i = k
    return best_i


def _select_puct(node: Node, priors: list[float], cfg: SearchConfig, scan_all: bool) -> int:
    """argmax Q + U; unvisited children take the node's value minus the FPU reduction."""
    n, w = node.n, node.w
    c = cfg.c_puct * math.sqrt(node.visits)
    fpu = node.value - cfg.fpu_reduction
    best, best_i = -1e9, 0
    for i in range(len(n)):
        ni = n[i]
        if ni:
            s = w[i] / ni + c * priors[i] / (1 + ni)
        else:
            s = fpu + c * priors[i]
            if not scan_all:
                return i if s > best else best_i
        if s > best:
            best, best_i = s, i
    return best_i


@functools.lru_cache(maxsize=256)
def considered_visits(m: int, simulations: int) -> tuple[int, ...]:
    """Sequential halving's visit target for each simulation (mctx's get_sequence_of_considered_visits)."""
    if m <= 1:
        return tuple(range(simulations))
    log2max = math.ceil(math.log2(m))
    seq: list[int] = []
    visits = [0] * m
    considered = m
    while len(seq) < simulations:
        extra = max(1, int(simulations / (log2max * considered)))
        for _ in range(extra):
            seq.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    return tuple(seq[:simulations])


class Search:
    """The search of one game's current position; `board` is the game's own board,
    pushed and popped during descent (never copied)."""

    __slots__ = (
        "board",
        "cfg",
        "rng",
        "root",
        "target",
        "started",
        "finished",
        "pending",
        "_gumbel",
        "_considered",
        "_seq",
        "_root_priors",
        "noise",
        "mate",
    )

    def __init__(self, board: chess.Board, cfg: SearchConfig, rng: random.Random, root: Node | None = None) -> None:
        self.board = board
        self.cfg = cfg
        self.rng = rng
        self.root = root if root is not None and root.evaluated else None
        self.target = cfg.simulations
        self.started = self.finished = self.pending = 0
        self._gumbel: list[float] = []
        self._considered: list[int] = []
        self._seq: tuple[int, ...] = ()
        self._root_priors: list[float] = []
        self.noise = True
        self.mate: int | None = None  # a root move that checkmates at once: the search's choice

    # -- lifecycle -----------------------------------------------------------------
    def start(self, simulations: int, *, noise: bool = True) -> None:
        """Begin a search of `simulations` simulations at the current position. `noise`: the
        config's root noise (Gumbel or Dirichlet) applies; self-play's fast, playout-capped
        searches go without it (KataGo): they are no policy target, and noise would spend
        their few simulations on moves the prior rates low."""
        self.target = simulations
        self.noise = noise
        self.started = self.finished = self.pending = 0
        if self.root is not None:
            if not self.root.expanded:
                expand_node(self.root, self.board)
            self._prepare_root()

    @property
    def done(self) -> bool:
        """All simulations are backed up."""
        return self.root is not None and self.finished >= self.target and self.pending == 0

    def advance(self, move: chess.Move) -> None:
        """Play `move` on the board and keep its subtree as the next root (tree reuse). A kept
        root is expanded at once: the caller reads game over from its legal moves, and the
        next `start()` would expand it anyway, so they are generated once."""
        child = None
        if self.root is not None:
            try:
                child = self.root.children[self.root.moves.index(move)]
            except ValueError:
                child = None
        self.board.push(move)
        self.root = child if child is not None and child.evaluated else None
        if self.root is not None and not self.root.expanded:
            expand_node(self.root, self.board)

    def legal_moves(self) -> tuple[list[chess.Move], list[int]]:
        """The root's legal moves in python-chess's generation order (what storage replays),
        and for each root child (the order of `policy()`'s moves) its index there: read off
        the expanded root rather than generated again."""
        root = self.root
        assert root is not None and root.priors is not None  # a search's results need its expanded root
        legal: list[chess.Move] = list(root.moves)
        for move, g in zip(root.moves, root.order):
            legal[g] = move
        return legal, root.order

    def _prepare_root(self) -> None:
        root, cfg = self.root, self.cfg
        assert root is not None and root.priors is not None  # start() expanded it
        k = len(root.moves)
        self.mate = mating_move(self.board, root.moves)
        if cfg.algorithm == "gumbel":
            # Sequential halving counts visits from zero; the subtrees below stay.
            root.n = [0] * k
            root.w = [0.0] * k
            root.visits = 1
            rnd = self.rng.random
            g = (
                [-math.log(-math.log(rnd() or 1e-300)) * cfg.gumbel_scale for _ in range(k)]
                if cfg.gumbel_scale > 0 and self.noise
                else [0.0] * k
            )
            logits = [math.log(max(p, 1e-30)) for p in root.priors]
            m = min(cfg.gumbel_considered, k)
            order = sorted(range(k), key=lambda i: g[i] + logits[i], reverse=True)
            self._gumbel = [g[i] + logits[i] for i in range(k)]
            self._considered = order[:m]
            if self.mate is not None and self.mate not in self._considered:
                # Searched, so the policy target sees its value; kept in Gumbel + logit order,
                # which the first halving round's shortcut relies on.
                self._considered = sorted([*order[: m - 1], self.mate], key=self._gumbel.__getitem__, reverse=True)
            self._seq = considered_visits(m, max(self.target, 1))
        else:
            pri = root.priors
            if cfg.dirichlet_epsilon > 0 and k > 1 and self.noise:
                noise = np.random.default_rng(self.rng.getrandbits(64)).dirichlet([cfg.dirichlet_alpha] * k)
                eps = cfg.dirichlet_epsilon
                pri = [(1 - eps) * p + eps * x for p, x in zip(pri, noise.tolist())]
            self._root_priors = pri

    # -- selection -----------------------------------------------------------------
    def _root_choice(self) -> int:
        root, cfg = self.root, self.cfg
        assert root is not None  # select() has a root
        if cfg.algorithm != "gumbel":
            return _select_puct(root, self._root_priors, cfg, scan_all=True)
        considered = self._considered
        seq = self._seq
        target = seq[min(self.started - 1, len(seq) - 1)]  # select() counted this one already
        n = root.n
        if target == 0:
            # Every candidate is unvisited, so all share one sigma (mixed value): the argmax of
            # Gumbel + logit + sigma is the first candidate in `considered`, which is sorted by
            # Gumbel + logit (float addition of one constant keeps that order, and the scan below
            # keeps the first of equals). The first halving round and every fast search skip sigma.
            for i in considered:
                if n[i] == 0:
                    return i
            return min(considered, key=n.__getitem__)
        sig = _sigma(root, considered, cfg)
        best, best_i = -1e18, -1
        for j, i in enumerate(considered):
            if n[i] == target:
                s = self._gumbel[i] + sig[j]
                if s > best:
                    best, best_i = s, i
        if best_i < 0:  # a collision or an early terminal left the counts off the schedule
            best_i = min(considered, key=n.__getitem__)
        return best_i

    def select(self) -> Leaf | None:
        """Descend to a new leaf and return it for evaluation; None if the simulation ended
        without one (terminal leaf backed up at once, or a collision with a pending leaf)."""
        board = self.board
        if self.root is None:
            if self.pending:
                return None
            node = Node()
            self.root = node
            self.pending += 1
            return Leaf(self, node, [], board_features(board, repetitions(board)))
        vl = self.cfg.virtual_loss
        gumbel = self.cfg.algorithm == "gumbel"
        cfg = self.cfg
        self.started += 1
        node = self.root
        i = self._root_choice()
        path: list[tuple[Node, int]] = []
        try:
            while True:
                path.append((node, i))
                node.n[i] += vl
                node.w[i] -= vl
                node.visits += vl
                board.push(node.moves[i])
                child = node.children[i]
                if child is None:
                    child = node.children[i] = Node()
                    child.terminal = terminal_value(board, has_legal_move(board))
                    if child.terminal is None and has_mate_in_one(board):
                        child.terminal = 1.0  # a proven win for the side to move there
                    if child.terminal is None:
                        self.pending += 1
                        return Leaf(self, child, path, board_features(board, 0))
                if child.terminal is not None:
                    child.visits += 1
                    _backup(path, child.terminal, vl)
                    self.finished += 1
                    return None
                if child.logits is not None:  # evaluated on an earlier visit: expand it now
                    expand_node(child, board)
                elif child.priors is None:  # another leaf of this search awaits the network here
                    for node_, j in path:  # undo the virtual loss: a collision is no visit
                        node_.n[j] -= vl
                        node_.w[j] += vl
                        node_.visits -= vl
                    self.started -= 1
                    return None
                node = child
                assert node.priors is not None  # expanded, now or on an earlier visit
                i = _select_gumbel_interior(node, cfg) if gumbel else _select_puct(node, node.priors, cfg, False)
        finally:
            for _ in path:
                board.pop()

    # -- results -------------------------------------------------------------------
    def policy(self) -> tuple[list[chess.Move], list[float]]:
        """The training target over the root's legal moves: the improved policy (Gumbel) or
        visit shares (PUCT); all on the mate when a move checkmates at once (the proven best
        move, which teaches the policy to finish won games)."""
        root = self.root
        assert root is not None and root.priors is not None  # a search's results need its expanded root
        if self.mate is not None:
            return list(root.moves), [float(i == self.mate) for i in range(len(root.moves))]
        if self.cfg.algorithm == "gumbel":
            idxs = list(range(len(root.moves)))
            sig = _sigma(root, idxs, self.cfg)
            x = [math.log(max(p, 1e-30)) + s for p, s in zip(root.priors, sig)]
            m = max(x)
            e = [math.exp(v - m) for v in x]
        else:
            e = [float(v) for v in root.n]
        z = sum(e)
        if z <= 0:
            return list(root.moves), list(root.priors)
        return list(root.moves), [v / z for v in e]

    def best_move(self) -> chess.Move:
        """The search's choice: a move that checkmates at once if there is one (a proven win,
        whatever the few simulations made of it), else Gumbel's most-visited considered action
        by Gumbel + logit + sigma(Q), or PUCT's most-visited move."""
        root = self.root
        assert root is not None  # a search's results need its root
        if self.mate is not None:
            return root.moves[self.mate]
        n = root.n
        if self.cfg.algorithm == "gumbel":
            considered = self._considered or list(range(len(n)))
            top = max(n[i] for i in considered)
            cands = [i for i in considered if n[i] == top]
            sig = _sigma(root, considered, self.cfg)
            score = {i: self._gumbel[i] + s for i, s in zip(considered, sig)} if self._gumbel else {}
            return root.moves[max(cands, key=lambda i: score.get(i, 0.0))]
        top = max(n)
        return root.moves[next(i for i in range(len(n)) if n[i] == top)]

    def root_value(self) -> float:
        """The search's value of the position for the side to move."""
        root = self.root
        assert root is not None  # a search's results need its root
        total = root.visits - 1
        if total <= 0:
            return root.value
        return (root.value + sum(root.w)) / (total + 1)


def expand(leaves: list[Leaf], evaluator) -> None:
    """Evaluate `leaves` in one network call, keep each one's logits and back up its value
    (a search's root is expanded at once: its moves are needed now)."""
    if not leaves:
        return
    logits, values, _ = evaluator.evaluate(planes_from_features([leaf.features for leaf in leaves]))
    vals = values.tolist()
    for b, leaf in enumerate(leaves):
        node = leaf.node
        node.logits = logits[b].copy()  # a row alone: a view would keep the whole batch alive
        node.value = vals[b]
        node.visits += 1
        search = leaf.search
        search.pending -= 1
        if leaf.path:
            _backup(leaf.path, vals[b], search.cfg.virtual_loss)
            search.finished += 1
        else:
            expand_node(node, search.board)
            search._prepare_root()


def step(searches: list[Search], evaluator) -> list[Leaf]:
    """One lock-step round: up to `leaves_per_step` leaves per unfinished search, one network call.
    Returns the leaves evaluated (their paths tell the depth reached)."""
    leaves: list[Leaf] = []
    for s in searches:
        for _ in range(s.cfg.leaves_per_step):
            if s.root is not None and s.started >= s.target:
                break
            leaf = s.select()
            if leaf is not None:
                leaves.append(leaf)
                if not leaf.path:
                    break
    expand(leaves, evaluator)
    return leaves


def run(searches: list[Search], evaluator) -> None:
    """Run searches (already `start`ed) to completion."""
    while not all(s.done for s in searches):
        step(searches, evaluator)


class UniformEvaluator:
    """A stand-in network: uniform priors and a 0 value everywhere (tests, pure-search baselines)."""

    def evaluate(self, planes: np.ndarray):
        n = planes.shape[0]
        from .encoding import POLICY_SIZE

        wdl = np.tile(np.array([0.0, 1.0, 0.0], dtype=np.float32), (n, 1))
        return np.zeros((n, POLICY_SIZE), dtype=np.float32), np.zeros(n, dtype=np.float32), wdl
