"""mcts: batched Gumbel and PUCT search with virtual loss and tree reuse (DESIGN.md "Engine").

`UniformEvaluator` (uniform priors, value 0) stands in for the network: whatever the
search finds beyond that it finds by looking ahead to the end of the game.
"""

import math
import random

import chess
import numpy as np
import pytest
from support.positions import mates_after

from service.engine import mcts
from service.engine.mcts import (
    Node,
    Search,
    SearchConfig,
    UniformEvaluator,
    considered_visits,
    repetitions,
    terminal_value,
)

pytestmark = pytest.mark.unit

ALGORITHMS = ["gumbel", "puct"]
SCHOLAR = "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"  # Qxf7#
MIDDLEGAME = "r2q1rk1/pp2bppp/2n1bn2/3p4/3P4/2NBBN2/PP3PPP/R2Q1RK1 w - - 4 11"


def search_config(algorithm: str, simulations: int, **kw) -> SearchConfig:
    """Noise-free search: Gumbel considers every legal move, PUCT has no Dirichlet noise."""
    base = dict(
        algorithm=algorithm, simulations=simulations, gumbel_scale=0.0, gumbel_considered=256, dirichlet_epsilon=0.0
    )
    base.update(kw)
    return SearchConfig(**base)


def run_search(board, cfg: SearchConfig, *, evaluator=None, seed: int = 0) -> Search:
    board = chess.Board(board) if isinstance(board, str) else board
    s = Search(board, cfg, random.Random(seed))
    s.start(cfg.simulations)
    mcts.run([s], evaluator or UniformEvaluator())
    return s


def mates_in_one(board: chess.Board) -> list[chess.Move]:
    out = []
    for m in board.legal_moves:
        board.push(m)
        if board.is_checkmate():
            out.append(m)
        board.pop()
    return out


def check_tree(root: Node, board: chess.Board, *, root_counters: bool = True) -> int:
    """Statistics of the tree below `root` (at `board`) are exactly its backups; returns the node count.

    Every expanded node: visits == 1 + sum(n); a leaf visited once holds its logits, unexpanded;
    (its own evaluation plus the backups through it);
    every edge: child.visits == n[i] (terminal children count the times they were reached);
    every Q in [-1, 1]; moves == the legal moves, priors sorted and summing to 1. With
    `root_counters=False` the root's own counters are skipped (Gumbel resets them at `start`).
    """
    count = 0

    def visit(node: Node, is_root: bool) -> None:
        nonlocal count
        count += 1
        legal = list(board.legal_moves)
        if node.terminal is not None:
            assert not node.expanded and not node.n
            over = terminal_value(board, legal)
            if over is None:  # not over: a proven win, the side to move mates at once
                assert node.terminal == 1.0 and any(board.gives_check(m) and mates_after(board, m) for m in legal)
            else:
                assert node.terminal == over
            assert node.visits >= 1
            return
        if not node.expanded:  # a leaf visited once keeps its logits until a later visit expands it
            assert node.evaluated and node.visits == 1 and not is_root
            assert node.logits.shape == (1858,) and -1.0 <= node.value <= 1.0
            return
        assert node.logits is None
        assert set(node.moves) == set(legal) and len(node.moves) == len(legal)
        k = len(node.moves)
        assert len(node.priors) == len(node.n) == len(node.w) == len(node.children) == k
        assert all(a >= b for a, b in zip(node.priors, node.priors[1:]))
        assert math.isclose(sum(node.priors), 1.0, abs_tol=1e-6)
        assert -1.0 <= node.value <= 1.0
        check_counts = root_counters or not is_root
        if check_counts:
            assert node.visits == 1 + sum(node.n), board.fen()
        if not is_root:  # below the root the visited children are a prefix (sorted by prior)
            visited = [x > 0 for x in node.n]
            assert visited == sorted(visited, reverse=True)
        for i, child in enumerate(node.children):
            assert node.n[i] >= 0
            if node.n[i]:
                assert -1.0 - 1e-9 <= node.w[i] / node.n[i] <= 1.0 + 1e-9
            elif check_counts:
                assert node.w[i] == 0.0
            if child is None:
                if check_counts:
                    assert node.n[i] == 0
                continue
            if check_counts:
                assert child.visits == node.n[i], (board.fen(), node.moves[i].uci())
            board.push(node.moves[i])
            visit(child, False)
            board.pop()

    stack_before = list(board.move_stack)
    visit(root, True)
    assert board.move_stack == stack_before
    return count


# -- finding mates and not blundering --------------------------------------------------

MATE_IN_ONE = [
    pytest.param("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1", id="white-back-rank"),
    pytest.param(SCHOLAR, id="white-scholar"),
    pytest.param("rnbqkbnr/pppp1ppp/8/4p3/6P1/5P2/PPPPP2P/RNBQKBNR b KQkq - 0 2", id="black-fools-mate"),
    pytest.param("r5k1/8/8/8/8/8/5PPP/6K1 b - - 0 1", id="black-back-rank-last-move"),
]


@pytest.mark.parametrize("fen", MATE_IN_ONE)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_finds_mate_in_one(algorithm, fen):
    board = chess.Board(fen)
    legal = list(board.legal_moves)
    s = run_search(board, search_config(algorithm, 300, gumbel_considered=len(legal)))
    move = s.best_move()
    board.push(move)
    assert board.is_checkmate(), f"{algorithm} chose {move.uci()}"


def queen_hangs(board: chess.Board, colour: chess.Color) -> bool:
    """Whether the other side (to move) can take `colour`'s queen for less than a queen, or for free."""
    queens = board.pieces(chess.QUEEN, colour)
    for q in queens:
        for m in board.legal_moves:
            if m.to_square != q:
                continue
            if board.piece_type_at(m.from_square) != chess.QUEEN:
                return True
            board.push(m)
            defended = any(r.to_square == q for r in board.legal_moves)
            board.pop()
            if not defended:
                return True
    return False


# The queen's squares on the a-file and first rank are covered by the rooks: each of those
# moves loses the queen, and the capture (or another rook move) mates on the back rank.
HANGING_QUEEN = [
    pytest.param("6k1/5ppp/8/8/8/2r5/1r4PP/Q6K w - - 0 1", id="white"),
    pytest.param("q6k/1R4pp/2R5/8/8/8/5PPP/6K1 b - - 0 1", id="black"),
    pytest.param("6k1/3r1ppp/8/8/8/8/1r3PPP/Q5K1 w - - 0 1", id="white-two-rooks"),
]


@pytest.mark.parametrize("fen", HANGING_QUEEN)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_does_not_hang_the_queen_into_mate(algorithm, fen):
    board = chess.Board(fen)
    us = board.turn
    legal = list(board.legal_moves)
    assert not mates_in_one(board)
    losing = []
    for m in legal:
        board.push(m)
        if mates_in_one(board):
            losing.append(m)
        elif board.piece_type_at(m.to_square) == chess.QUEEN:
            assert not queen_hangs(board, us), "the position must make every hanging queen move lose to mate"
        board.pop()
    hanging_queen_moves = []
    for m in losing:
        board.push(m)
        if queen_hangs(board, us):
            hanging_queen_moves.append(m)
        board.pop()
    assert hanging_queen_moves and len(losing) < len(legal)

    s = run_search(board, search_config(algorithm, 300, gumbel_considered=len(legal)))
    move = s.best_move()
    board.push(move)
    assert not mates_in_one(board), f"{algorithm} chose {move.uci()}, which allows mate"
    assert not queen_hangs(board, us), f"{algorithm} chose {move.uci()}, which hangs the queen"


# -- visit counts, virtual loss, tree statistics --------------------------------------


@pytest.mark.parametrize("fen", [chess.STARTING_FEN, SCHOLAR, MIDDLEGAME])
@pytest.mark.parametrize("leaves_per_step, virtual_loss", [(1, 1), (4, 1), (4, 3)])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_root_visits_sum_to_simulations_and_tree_statistics_are_exact(algorithm, leaves_per_step, virtual_loss, fen):
    sims = 96
    board = chess.Board(fen)
    cfg = search_config(
        algorithm, sims, gumbel_considered=8, leaves_per_step=leaves_per_step, virtual_loss=virtual_loss
    )
    s = run_search(board, cfg)
    assert s.done and s.pending == 0
    assert s.finished == sims
    assert sum(s.root.n) == sims
    assert s.root.visits == 1 + sims
    assert board.fen() == fen and not board.move_stack  # pushed and popped back during descent
    nodes = check_tree(s.root, board)
    assert nodes > 1
    assert -1.0 <= s.root_value() <= 1.0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_default_noise_and_real_network_keep_the_tree_exact(algorithm):
    """Non-uniform priors and non-zero values from the tiny network, with the self-play noise on."""
    network = pytest.importorskip("service.engine.network")
    evaluator = network.Evaluator(network.build_network("tiny", 0))
    board = chess.Board(MIDDLEGAME)
    cfg = SearchConfig(algorithm=algorithm, simulations=48, leaves_per_step=4)
    s = run_search(board, cfg, evaluator=evaluator, seed=5)
    assert sum(s.root.n) == 48
    check_tree(s.root, board)
    assert len(set(s.root.priors)) > 1  # the network's priors are not uniform
    moves, probs = s.policy()
    assert set(moves) == set(board.legal_moves) and math.isclose(sum(probs), 1.0, abs_tol=1e-6)


def test_many_searches_step_in_lock_step():
    boards = [chess.Board(), chess.Board(SCHOLAR), chess.Board(MIDDLEGAME)]
    searches = [
        Search(b, search_config(a, 40, leaves_per_step=2), random.Random(i))
        for i, (b, a) in enumerate(zip(boards, ["gumbel", "puct", "gumbel"]))
    ]
    for s in searches:
        s.start(40)
    ev = UniformEvaluator()
    steps = 0
    while not all(s.done for s in searches):
        n = len(mcts.step(searches, ev))
        assert n <= 2 * len(searches)
        steps += 1
    assert steps < 40  # batched: fewer steps than simulations
    for s, b in zip(searches, boards):
        assert sum(s.root.n) == 40
        check_tree(s.root, b)


# -- policies -------------------------------------------------------------------------


@pytest.mark.parametrize("fen", [chess.STARTING_FEN, SCHOLAR, MIDDLEGAME])
@pytest.mark.parametrize("considered", [4, 16, 256])
def test_gumbel_policy_is_a_distribution_over_exactly_the_legal_moves(fen, considered):
    board = chess.Board(fen)
    s = run_search(board, SearchConfig(simulations=64, gumbel_considered=considered), seed=3)
    moves, probs = s.policy()
    legal = list(board.legal_moves)
    assert len(moves) == len(probs) == len(legal)
    assert set(moves) == set(legal)
    assert all(p >= 0 for p in probs)
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-6)
    best = s.best_move()
    assert best in legal
    i = s.root.moves.index(best)
    if s.mate is not None:  # a mate in one is the choice whatever the visits (lines that keep it open look won too)
        assert i == s.mate and mates_after(board, best)
    else:  # the chosen move is one of the most visited considered actions
        assert s.root.n[i] == max(s.root.n)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_a_mate_in_one_is_the_choice_and_the_target_however_few_simulations(algorithm):
    """With 2 simulations and 4 considered moves (Gumbel) the mate is rarely among the moves
    visited; it is played and is the whole policy target all the same. Without a mate in
    one, neither rule applies."""
    mate = chess.Move.from_uci("h5f7")
    for seed in range(5):
        board = chess.Board(SCHOLAR)
        cfg = SearchConfig(algorithm=algorithm, simulations=2, gumbel_considered=4)
        s = run_search(board, cfg, seed=seed)
        assert s.mate is not None and s.best_move() == mate
        moves, probs = s.policy()
        assert probs[moves.index(mate)] == 1.0 and sum(probs) == 1.0
        if algorithm == "gumbel":
            assert s.root.moves.index(mate) in s._considered  # searched, so its value is known
    s = run_search(chess.Board(MIDDLEGAME), SearchConfig(algorithm=algorithm, simulations=8))
    assert s.mate is None
    if algorithm == "gumbel":  # the improved policy, not a one-hot target
        assert sum(p > 0 for p in s.policy()[1]) > 1


def test_gumbel_policy_prefers_the_mate():
    board = chess.Board(SCHOLAR)
    s = run_search(board, search_config("gumbel", 200, gumbel_considered=len(list(board.legal_moves))))
    moves, probs = s.policy()
    assert moves[int(np.argmax(probs))] == chess.Move.from_uci("h5f7")


@pytest.mark.parametrize("fen", [chess.STARTING_FEN, MIDDLEGAME])
def test_puct_policy_is_the_visit_shares(fen):
    board = chess.Board(fen)
    s = run_search(board, SearchConfig(algorithm="puct", simulations=80), seed=1)
    moves, probs = s.policy()
    assert moves == s.root.moves
    total = sum(s.root.n)
    assert total == 80
    assert probs == pytest.approx([n / total for n in s.root.n], abs=1e-12)
    assert set(moves) == set(board.legal_moves)
    best = s.best_move()
    assert s.root.n[s.root.moves.index(best)] == max(s.root.n)


# -- sequential halving -----------------------------------------------------------------


@pytest.mark.parametrize(
    "m, n, expected",
    [
        (4, 8, (0, 0, 0, 0, 1, 1, 2, 2)),
        (4, 16, (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5)),
        (2, 6, (0, 0, 1, 1, 2, 2)),
        (3, 6, (0, 0, 0, 1, 1, 2)),
        (1, 5, (0, 1, 2, 3, 4)),
        (0, 3, (0, 1, 2)),
        (8, 4, (0, 0, 0, 0)),
        # rows of mctx's table of considered visits for 32 simulations
        (16, 32, (0,) * 16 + (1,) * 8 + (2,) * 4 + (3,) * 4),
        (13, 32, (0,) * 13 + (1,) * 6 + (2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7)),
    ],
)
def test_considered_visits_matches_mctx(m, n, expected):
    assert considered_visits(m, n) == expected


@pytest.mark.parametrize("m", [2, 3, 5, 8, 16, 30])
@pytest.mark.parametrize("n", [1, 7, 32, 200])
def test_considered_visits_shape(m, n):
    seq = considered_visits(m, n)
    assert len(seq) == n
    assert seq[: min(m, n)] == (0,) * min(m, n)
    assert list(seq) == sorted(seq)
    # each visit target v is reached only by actions that already had v-1
    for v in set(seq) - {0}:
        assert seq.count(v) <= seq.count(v - 1)


@pytest.mark.parametrize("m, sims", [(4, 8), (4, 16), (14, 15), (8, 32)])
def test_gumbel_root_follows_the_sequential_halving_schedule(m, sims):
    """As mctx: simulation k (0-based, k = sum of root visits) visits a considered action
    whose visit count equals considered_visits(m, sims)[k]."""
    board = chess.Board("4k3/8/8/8/8/8/8/4K2R w - - 0 1")  # 14 legal moves
    cfg = search_config("gumbel", sims, gumbel_considered=m)
    s = Search(board, cfg, random.Random(0))
    s.start(sims)
    ev = UniformEvaluator()
    mcts.step([s], ev)  # evaluates the root
    seq = considered_visits(min(m, 14), sims)
    off_schedule = []
    while not s.done:
        before = list(s.root.n)
        mcts.step([s], ev)
        (i,) = [j for j, (a, b) in enumerate(zip(before, s.root.n)) if a != b]
        k = sum(before)
        if before[i] != seq[k]:
            off_schedule.append((k, before[i], seq[k]))
    assert not off_schedule, off_schedule


def test_gumbel_visits_every_considered_action_in_the_first_round():
    board = chess.Board("4k3/8/8/8/8/8/8/4K2R w - - 0 1")
    k = board.legal_moves.count()
    s = run_search(board, search_config("gumbel", k + 1, gumbel_considered=k))
    assert min(s.root.n) >= 1, s.root.n


# -- the completed-Q transform against a reference implementation of mctx's --------------


def mctx_completed_q(node: Node, cfg: SearchConfig) -> np.ndarray:
    """mctx's qtransform_completed_by_mix_value over all children of `node` (rescaled, scaled)."""
    n = np.array(node.n, dtype=float)
    w = np.array(node.w, dtype=float)
    p = np.array(node.priors, dtype=float)
    visited = n > 0
    q = np.where(visited, w / np.maximum(n, 1), 0.0)
    sum_p = p[visited].sum()
    weighted = (p[visited] * q[visited]).sum() / sum_p if sum_p > 0 else 0.0
    v_mix = (node.value + n.sum() * weighted) / (n.sum() + 1)
    completed = np.where(visited, q, v_mix)
    lo, hi = completed.min(), completed.max()
    completed = (completed - lo) / max(hi - lo, cfg.q_span_floor)
    return (cfg.c_visit + n.max()) * cfg.c_scale * completed


def make_node(priors, n, q, value) -> Node:
    node = Node()
    k = len(priors)
    node.moves = [chess.Move.null()] * k
    node.children = [None] * k
    node.priors = list(priors)
    node.n = list(n)
    node.w = [qi * ni for qi, ni in zip(q, n)]
    node.value = value
    node.visits = 1 + sum(n)
    return node


def random_node(rng: random.Random, *, all_visited: bool = False) -> Node:
    k = rng.randint(2, 12)
    pri = sorted((rng.random() + 0.01 for _ in range(k)), reverse=True)
    z = sum(pri)
    visited = k if all_visited else rng.randint(0, k - 1)
    n = [rng.randint(1, 6) if i < visited else 0 for i in range(k)]
    return make_node([p / z for p in pri], n, [rng.uniform(-1, 1) for _ in range(k)], rng.uniform(-1, 1))


def test_sigma_over_all_children_matches_mctx():
    rng = random.Random(0)
    cfg = SearchConfig()
    for _ in range(500):
        node = random_node(rng, all_visited=rng.random() < 0.3)
        got = mcts._sigma(node, list(range(len(node.n))), cfg)
        assert np.allclose(got, mctx_completed_q(node, cfg), atol=1e-9)


def test_sigma_over_considered_children_with_few_visits_matches_mctx():
    """The root's considered subset, while some child is still unvisited in total visits."""
    rng = random.Random(1)
    cfg = SearchConfig()
    for _ in range(500):
        node = random_node(rng)
        if sum(node.n) >= len(node.n):
            continue
        k_visited = sum(1 for x in node.n if x)
        m = rng.randint(max(k_visited, 1), len(node.n))
        got = mcts._sigma(node, list(range(m)), cfg)
        assert np.allclose(got, mctx_completed_q(node, cfg)[:m], atol=1e-9)


def test_sigma_rescales_over_unconsidered_unvisited_children_too():
    cfg = SearchConfig()
    # 3 children, 2 considered with 2 visits each (sum_n = 4 >= 3); the third is unvisited
    node = make_node([0.5, 0.3, 0.2], [2, 2, 0], [0.1, -0.1, 0.0], 1.0)
    want = mctx_completed_q(node, cfg)[:2]  # v_mix = 0.22 lies above both Qs
    assert np.allclose(mcts._sigma(node, [0, 1], cfg), want)


@pytest.mark.parametrize("floor", [0.2, 2.0])
def test_sigma_with_a_span_floor_matches_the_reference(floor):
    rng = random.Random(3)
    cfg = SearchConfig(q_span_floor=floor)
    for _ in range(500):
        node = random_node(rng, all_visited=rng.random() < 0.3)
        got = mcts._sigma(node, list(range(len(node.n))), cfg)
        assert np.allclose(got, mctx_completed_q(node, cfg), atol=1e-9)
        scores = mctx_interior_scores(node, cfg)
        assert scores[mcts._select_gumbel_interior(node, cfg)] >= scores.max() - 1e-9


def test_rescaling_turns_a_hair_of_value_into_the_whole_gain():
    """Two visited moves 0.01 apart: min-max rescaling gives the better one the full
    (c_visit + max visits) * c_scale over the other; over the value range (a span floor of 2)
    the gain is that times 0.01 / 2."""
    node = make_node([0.5, 0.5], [4, 4], [0.50, 0.51], 0.5)
    full = (50.0 + 4) * 0.1
    rescaled = mcts._sigma(node, [0, 1], SearchConfig())
    plain = mcts._sigma(node, [0, 1], SearchConfig(q_span_floor=2.0))
    assert rescaled[1] - rescaled[0] == pytest.approx(full)
    assert plain[1] - plain[0] == pytest.approx(full * 0.01 / 2)


def mctx_interior_scores(node: Node, cfg: SearchConfig) -> np.ndarray:
    logits = np.log(np.maximum(np.array(node.priors), 1e-30))
    x = logits + mctx_completed_q(node, cfg)
    probs = np.exp(x - x.max())
    probs /= probs.sum()
    n = np.array(node.n, dtype=float)
    return probs - n / (1 + n.sum())


def test_gumbel_interior_selection_matches_mctx_while_a_child_is_unvisited():
    rng = random.Random(2)
    cfg = SearchConfig()
    for _ in range(1000):
        node = random_node(rng)
        scores = mctx_interior_scores(node, cfg)
        got = mcts._select_gumbel_interior(node, cfg)
        assert scores[got] >= scores.max() - 1e-9


def test_gumbel_interior_selection_matches_mctx_when_every_child_is_visited():
    cfg = SearchConfig()
    # two children, both visited, Qs close together; the raw value is far below them
    node = make_node([0.77, 0.23], [2, 5], [0.63, 0.64], -0.13)
    scores = mctx_interior_scores(node, cfg)
    assert int(np.argmax(scores)) == 1
    assert mcts._select_gumbel_interior(node, cfg) == 1


def test_gumbel_interior_selection_survives_many_visits():
    cfg = SearchConfig()
    node = make_node([0.6, 0.3, 0.1], [8000, 10, 0], [0.5, -0.5, 0.0], 0.0)
    scores = mctx_interior_scores(node, cfg)
    got = mcts._select_gumbel_interior(node, cfg)
    assert scores[got] >= scores.max() - 1e-9


# -- tree reuse ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tree_reuse_after_advance(algorithm):
    board = chess.Board()
    cfg = search_config(algorithm, 64, gumbel_considered=8)
    s = run_search(board, cfg)
    move = s.best_move()
    i = s.root.moves.index(move)
    child = s.root.children[i]
    assert child is not None and child.expanded
    child_visits = child.visits
    s.advance(move)
    assert s.root is child
    assert board.move_stack == [move]
    s.start(64)
    mcts.run([s], UniformEvaluator())
    assert s.root is child  # the search went on from the kept subtree
    assert board.move_stack == [move]
    if algorithm == "gumbel":
        # sequential halving counts the root's visits from zero; the subtrees keep theirs
        assert sum(s.root.n) == 64
        assert s.root.visits == 65
        check_tree(s.root, board, root_counters=False)
    else:
        assert sum(s.root.n) == child_visits - 1 + 64
        assert s.root.visits == child_visits + 64
        check_tree(s.root, board)
    assert s.finished == 64


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_advance_to_an_unexpanded_move_starts_a_fresh_tree(algorithm):
    board = chess.Board()
    s = run_search(board, search_config(algorithm, 4, gumbel_considered=2))
    unvisited = next(m for m, c in zip(s.root.moves, s.root.children) if c is None)
    s.advance(unvisited)
    assert s.root is None
    assert board.move_stack == [unvisited]
    s.start(16)
    mcts.run([s], UniformEvaluator())
    assert sum(s.root.n) == 16
    check_tree(s.root, board)


def test_search_accepts_a_kept_root_only_if_expanded():
    board = chess.Board()
    assert Search(board, SearchConfig(), random.Random(0), root=Node()).root is None
    s = run_search(board, SearchConfig(simulations=8))
    again = Search(board, SearchConfig(), random.Random(0), root=s.root)
    assert again.root is s.root


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_single_legal_move(algorithm):
    board = chess.Board("k7/p7/8/8/8/8/6q1/7K w - - 0 1")  # Kxg2 is forced
    (only,) = list(board.legal_moves)
    s = run_search(board, search_config(algorithm, 16))
    assert s.best_move() == only
    moves, probs = s.policy()
    assert moves == [only] and probs == pytest.approx([1.0])
    assert sum(s.root.n) == 16
    check_tree(s.root, board)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_single_legal_move_into_a_terminal_position(algorithm):
    board = chess.Board("k7/8/8/8/8/8/6q1/7K w - - 0 1")  # Kxg2 leaves two bare kings
    s = run_search(board, search_config(algorithm, 8))
    assert s.best_move() == chess.Move.from_uci("h1g2")
    child = s.root.children[0]
    assert child.terminal == 0.0 and child.visits == 8
    assert s.root_value() == 0.0
    check_tree(s.root, board)


# -- terminal positions and repetitions -----------------------------------------------------


def after(*sans: str, fen: str = chess.STARTING_FEN) -> chess.Board:
    board = chess.Board(fen)
    for san in sans:
        board.push_san(san)
    return board


@pytest.mark.parametrize(
    "board, value",
    [
        (after("f3", "e5", "g4", "Qh4#"), -1.0),  # White mated
        (after("e4", "e5", "Bc4", "Nc6", "Qh5", "Nf6", "Qxf7#"), -1.0),  # Black mated
        (chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1"), 0.0),  # stalemate
        (chess.Board("8/8/4k3/8/8/3K4/8/8 w - - 0 1"), 0.0),  # bare kings
        (chess.Board("8/8/4k3/8/8/3KN3/8/8 b - - 0 1"), 0.0),  # king and knight
        (chess.Board("8/8/4k3/8/8/3K4/3R4/8 w - - 100 80"), 0.0),  # fifty moves
        (chess.Board("8/8/4k3/8/8/3K4/3R4/8 w - - 99 80"), None),
        (chess.Board(), None),
    ],
)
def test_terminal_value(board, value):
    assert terminal_value(board, list(board.legal_moves)) == value
    assert terminal_value(board, list(board.legal_moves), root=True) == value


def test_repetition_is_terminal_only_below_the_root():
    board = after("Nf3", "Nf6", "Ng1", "Ng8")  # the start position, a second time
    legal = list(board.legal_moves)
    assert terminal_value(board, legal) == 0.0
    assert terminal_value(board, legal, root=True) is None
    once = after("Nf3", "Nf6", "Ng1")
    assert terminal_value(once, list(once.legal_moves)) is None


def test_repetitions_counts_earlier_occurrences():
    board = chess.Board()
    assert repetitions(board) == 0
    shuffle = ["Nf3", "Nf6", "Ng1", "Ng8"]
    for san in shuffle:
        board.push_san(san)
    assert repetitions(board) == 1
    for san in shuffle:
        board.push_san(san)
    assert repetitions(board) == 2
    for san in shuffle:
        board.push_san(san)
    assert repetitions(board) == 2
    board.push_san("e4")
    assert repetitions(board) == 0


def test_search_sees_a_repetition_draw_as_zero():
    """Going back to an earlier position is a terminal draw inside the tree."""
    board = after("Nf3", "Nf6", "Ng1")
    s = run_search(board, search_config("puct", 64, fpu_reduction=0.0))  # every reply once first
    back = s.root.moves.index(chess.Move.from_uci("f6g8"))
    child = s.root.children[back]
    assert child is not None and child.terminal == 0.0


def test_uniform_evaluator_shapes():
    logits, values, wdl = UniformEvaluator().evaluate(np.zeros((3, 22, 8, 8), dtype=np.float32))
    assert logits.shape == (3, 1858) and values.shape == (3,) and wdl.shape == (3, 3)
    assert np.all(values == 0) and np.allclose(wdl.sum(axis=1), 1)


# -- work done once (issue #25): the same choices, fewer computations -------------------------


class NoisyEvaluator:
    """Logits and values drawn from a hash of each position: a stand-in network with opinions
    (uniform priors and a zero value leave every sigma equal), the same on every call."""

    def evaluate(self, planes: np.ndarray):
        import zlib

        n = planes.shape[0]
        logits = np.empty((n, 1858), dtype=np.float32)
        values = np.empty(n, dtype=np.float32)
        for b in range(n):
            rng = np.random.default_rng(zlib.crc32(planes[b].tobytes()))
            logits[b] = rng.standard_normal(1858).astype(np.float32) * 2
            values[b] = rng.uniform(-1, 1)
        return logits, values, np.zeros((n, 3), dtype=np.float32)


def reference_root_choice(search: Search) -> int:
    """The Gumbel root's choice as it was computed before issue #25: sigma of every considered
    action at every simulation, argmax of Gumbel + logit + sigma among those on schedule."""
    root, cfg = search.root, search.cfg
    considered, seq = search._considered, search._seq
    target = seq[min(search.started - 1, len(seq) - 1)]
    sig = mcts._sigma(root, considered, cfg)
    n = root.n
    best, best_i = -1e18, -1
    for j, i in enumerate(considered):
        if n[i] == target:
            s = search._gumbel[i] + sig[j]
            if s > best:
                best, best_i = s, i
    if best_i < 0:
        best_i = min(considered, key=n.__getitem__)
    return best_i


@pytest.mark.parametrize(
    "considered, simulations, leaves_per_step, gumbel_scale",
    [(16, 32, 1, 1.0), (16, 8, 1, 1.0), (4, 16, 1, 1.0), (8, 32, 3, 1.0), (16, 32, 1, 0.0), (2, 5, 2, 1.0)],
)
def test_gumbel_root_choice_is_the_full_sigma_argmax(
    monkeypatch, considered, simulations, leaves_per_step, gumbel_scale
):
    """The first halving round skips sigma (every candidate unvisited shares it): the choice
    is still the one the full computation makes, at every simulation of many searches."""
    fast = Search._root_choice
    checked = []

    def both(self):
        choice = fast(self)
        assert choice == reference_root_choice(self)
        checked.append(choice)
        return choice

    monkeypatch.setattr(Search, "_root_choice", both)
    cfg = SearchConfig(
        simulations=simulations,
        gumbel_considered=considered,
        leaves_per_step=leaves_per_step,
        gumbel_scale=gumbel_scale,
    )
    searches = []
    for seed, fen in enumerate([chess.STARTING_FEN, MIDDLEGAME, SCHOLAR, "8/8/4k3/8/8/3K4/3R4/8 w - - 0 1"]):
        s = Search(chess.Board(fen), cfg, random.Random(seed))
        s.start(simulations)
        searches.append(s)
    mcts.run(searches, NoisyEvaluator())
    for s in searches:  # a second search on each kept tree: subtrees with visits already
        s.advance(s.best_move())
    searches = [s for s in searches if not s.board.is_game_over()]  # Qxf7# ends one
    for s in searches:
        s.start(simulations)
    mcts.run(searches, NoisyEvaluator())
    assert len(checked) >= 7 * (simulations - 1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_legal_moves_come_from_the_root_in_python_chess_order(algorithm):
    board = chess.Board(MIDDLEGAME)
    s = run_search(board, search_config(algorithm, 24, gumbel_considered=8), evaluator=NoisyEvaluator())
    for _ in range(4):
        legal, where = s.legal_moves()
        assert legal == list(board.generate_legal_moves())
        assert [legal[g] for g in where] == s.root.moves  # the policy's moves, placed
        moves, _ = s.policy()
        assert [legal[g] for g in where] == moves
        s.advance(s.best_move())
        s.start(24)
        mcts.run([s], NoisyEvaluator())


def test_advance_expands_the_kept_root_once():
    """The kept root's legal moves are generated when the move is played (game over is read
    from them), and the next search starts on them without generating them again."""
    board = chess.Board()
    s = run_search(board, SearchConfig(simulations=4, gumbel_considered=4), evaluator=NoisyEvaluator())
    move = next(m for m, c in zip(s.root.moves, s.root.children) if c is not None and not c.expanded)
    kept = s.root.children[s.root.moves.index(move)]
    s.advance(move)
    assert s.root is kept and kept.expanded and kept.logits is None
    assert s.legal_moves()[0] == list(board.generate_legal_moves())
    moves = kept.moves
    s.start(8)
    assert s.root.moves is moves  # start() found it expanded
