"""Players: random, material-greedy, network+MCTS, external UCI, and play_game between them."""

import shutil
import sys
import textwrap

import chess
import chess.engine
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import mcts
from service.engine.players import (
    GameResult,
    GreedyPlayer,
    MCTSPlayer,
    Player,
    RandomPlayer,
    UciPlayer,
    material_gain,
    play_game,
)
from service.engine.selfplay import adjudicate

pytestmark = pytest.mark.unit

QUEEN_OR_PAWN = "4k3/8/8/3q1p2/8/4N3/8/4K3 w - - 0 1"  # Nxd5 wins the queen, Nxf5 a pawn
MATE_OR_QUEEN = "6k1/5ppp/8/8/8/1q6/8/N2RK3 w - - 0 1"  # Rd8# beats Nxb3 (the queen)
BACK_RANK = "6k1/5ppp/8/8/8/8/r4PPP/3R2K1 w - - 0 1"  # Rd8#
SCHOLAR = "r1bqkbnr/pppp1ppp/2n5/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"  # Qxf7#
PROMOTE_OR_ROOK = "4k3/1P6/8/8/8/8/r7/R3K3 w - - 0 1"  # b8=Q (+8) beats Rxa2 (+5)


def random_board(seed: int, plies: int) -> chess.Board:
    """A position reached by random play (with its move stack), not yet over."""
    player = RandomPlayer(seed)
    board = chess.Board()
    for _ in range(plies):
        if board.is_game_over():
            break
        board.push(player.choose(board))
    return board


def replay(result: GameResult, start: chess.Board | None = None) -> chess.Board:
    board = chess.Board() if start is None else start.copy()
    for move in result.moves:
        assert board.is_legal(move)
        board.push(move)
    return board


# -- protocol ------------------------------------------------------------------------------
def test_players_satisfy_the_protocol():
    for p in (RandomPlayer(), GreedyPlayer(), MCTSPlayer(mcts.UniformEvaluator(), simulations=8)):
        assert isinstance(p, Player)
        assert isinstance(p.name, str) and p.name
        p.close()


# -- random --------------------------------------------------------------------------------
def test_random_is_legal_and_seeded():
    a = play_game(RandomPlayer(1), RandomPlayer(2), max_plies=60)
    b = play_game(RandomPlayer(1), RandomPlayer(2), max_plies=60)
    c = play_game(RandomPlayer(3), RandomPlayer(4), max_plies=60)
    assert a == b
    assert a.moves != c.moves
    replay(a)


# -- greedy --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_greedy_takes_the_queen(seed):
    assert GreedyPlayer(seed).choose(chess.Board(QUEEN_OR_PAWN)).uci() == "e3d5"


@pytest.mark.parametrize("seed", range(5))
def test_greedy_prefers_mate_in_one(seed):
    assert GreedyPlayer(seed).choose(chess.Board(MATE_OR_QUEEN)).uci() == "d1d8"
    assert GreedyPlayer(seed).choose(chess.Board(BACK_RANK)).uci() == "d1d8"


def test_greedy_counts_promotions():
    board = chess.Board(PROMOTE_OR_ROOK)
    assert material_gain(board, chess.Move.from_uci("b7b8q")) == 8
    assert material_gain(board, chess.Move.from_uci("a1a2")) == 5
    assert GreedyPlayer().choose(board).uci() == "b7b8q"
    ep = chess.Board("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 1")
    assert material_gain(ep, chess.Move.from_uci("e5d6")) == 1


def test_greedy_plays_random_legal_moves_without_captures():
    board = chess.Board()
    moves = {GreedyPlayer(seed).choose(board) for seed in range(20)}
    assert all(board.is_legal(m) for m in moves)
    assert len(moves) > 3  # not a fixed move: ties are broken at random
    assert board == chess.Board() and not board.move_stack


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), plies=st.integers(0, 80))
def test_greedy_never_leaves_material_on_the_table(seed, plies):
    board = random_board(seed, plies)
    if board.is_game_over():
        return
    fen = board.fen()
    move = GreedyPlayer(seed).choose(board)
    assert board.fen() == fen
    assert board.is_legal(move)
    board.push(move)
    mated = board.is_checkmate()
    board.pop()
    if not mated:
        assert material_gain(board, move) == max(material_gain(board, m) for m in board.legal_moves)


# -- MCTS ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
@pytest.mark.parametrize("fen", [BACK_RANK, SCHOLAR, MATE_OR_QUEEN])
def test_mcts_finds_mate_in_one_and_leaves_the_board_alone(algorithm, fen):
    board = chess.Board(fen)
    player = MCTSPlayer(mcts.UniformEvaluator(), simulations=200, algorithm=algorithm)
    move = player.choose(board)
    assert board.fen() == fen and not board.move_stack
    board.push(move)
    assert board.is_checkmate()
    assert player.last_value is not None and player.last_value > 0
    assert player.last_simulations == 200
    assert sum(player.last_policy.values()) == pytest.approx(1.0)
    assert max(player.last_policy, key=player.last_policy.get) == move


def test_mcts_keeps_the_move_stack_of_the_board_it_is_given():
    board = random_board(7, 20)
    stack, fen = list(board.move_stack), board.fen()
    move = MCTSPlayer(mcts.UniformEvaluator(), simulations=64).choose(board)
    assert board.is_legal(move)
    assert board.move_stack == stack and board.fen() == fen


def test_mcts_refuses_a_finished_game():
    board = chess.Board(BACK_RANK)
    board.push_uci("d1d8")
    with pytest.raises(ValueError):
        MCTSPlayer(mcts.UniformEvaluator(), simulations=8).choose(board)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_mcts_reuses_its_tree_on_continuations_only(algorithm):
    player = MCTSPlayer(mcts.UniformEvaluator(), simulations=64, algorithm=algorithm)
    board = chess.Board()
    board.push(player.choose(board))
    assert not player.last_reused
    # The same player on both sides: each position is the last one plus its own move.
    for _ in range(4):
        move = player.choose(board)
        assert player.last_reused and board.is_legal(move)
        assert player.last_simulations == 64
        board.push(move)
    player.choose(chess.Board(QUEEN_OR_PAWN))  # an unrelated position
    assert not player.last_reused
    # The searched move played from another start position (no a7 pawn): not the same tree.
    move = player.choose(chess.Board())
    other = chess.Board("rnbqkbnr/1ppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1")
    other.push(move)
    player.choose(other)
    assert not player.last_reused
    # After reset() nothing is kept.
    start = chess.Board()
    start.push(player.choose(start))
    player.reset()
    player.choose(start)
    assert not player.last_reused


def test_mcts_without_reuse_searches_afresh():
    player = MCTSPlayer(mcts.UniformEvaluator(), simulations=16, reuse_tree=False)
    board = chess.Board()
    board.push(player.choose(board))
    player.choose(board)
    assert not player.last_reused


def test_mcts_rejects_bad_settings():
    with pytest.raises(ValueError):
        MCTSPlayer(mcts.UniformEvaluator(), simulations=0)
    with pytest.raises(ValueError):
        MCTSPlayer(mcts.UniformEvaluator(), simulations=8, algorithm="alphabeta")


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_mcts_with_the_tiny_network_plays_legal_games(algorithm):
    from service.engine.network import Evaluator, build_network

    player = MCTSPlayer(Evaluator(build_network("tiny", 0)), simulations=24, algorithm=algorithm, leaves_per_step=4)
    result = play_game(player, RandomPlayer(1), max_plies=10)
    replay(result)
    assert len(result.moves) == 10 and result.termination == "move_cap"
    assert -1.0 <= player.last_value <= 1.0


# -- play_game -----------------------------------------------------------------------------
def test_play_game_returns_legal_consistent_games():
    for g in range(6):
        white, black = (GreedyPlayer(g), RandomPlayer(g)) if g % 2 == 0 else (RandomPlayer(g), GreedyPlayer(g))
        result = play_game(white, black, max_plies=120)
        end = replay(result)
        assert result.result in ("1-0", "0-1", "1/2-1/2")
        if result.termination == "checkmate":
            assert end.is_checkmate()
            assert result.result == ("0-1" if end.turn == chess.WHITE else "1-0")
        elif result.termination == "move_cap":
            assert len(result.moves) == 120
            assert result.result == adjudicate(end, "material", 3)
        else:
            assert result.result == "1/2-1/2"


def test_greedy_beats_random():
    score = 0.0
    for g in range(20):
        greedy, rand = GreedyPlayer(g), RandomPlayer(1000 + g)
        white, black = (greedy, rand) if g % 2 == 0 else (rand, greedy)
        result = play_game(white, black, max_plies=80, adjudication="material")
        white_score = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}[result.result]
        score += white_score if g % 2 == 0 else 1.0 - white_score
    assert score >= 14  # measured 19-20 of 20 over several seed ranges


def test_play_game_from_an_opening_keeps_it_and_caps_plies_played():
    opening = chess.Board()
    for uci in ("e2e4", "e7e5", "g1f3"):
        opening.push_uci(uci)
    fen = opening.fen()
    result = play_game(RandomPlayer(1), RandomPlayer(2), board=opening, max_plies=10, adjudication="none")
    assert opening.fen() == fen and len(opening.move_stack) == 3
    assert opening.turn == chess.BLACK
    end = replay(result, opening)
    assert len(result.moves) == 10 and result.termination == "move_cap"
    assert result.result == "1/2-1/2" and end.ply() == 13


def test_play_game_ends_at_once_when_the_opening_is_over():
    board = chess.Board(BACK_RANK)
    board.push_uci("d1d8")
    assert play_game(RandomPlayer(), RandomPlayer(), board=board) == GameResult("1-0", "checkmate", [])


def test_play_game_rejects_illegal_and_board_changing_players():
    class Illegal:
        name = "illegal"

        def choose(self, board):
            return chess.Move.from_uci("e2e5")

        def close(self):
            pass

    class Pusher(Illegal):
        name = "pusher"

        def choose(self, board):
            move = next(iter(board.legal_moves))
            board.push(move)
            return move

    with pytest.raises(ValueError, match="illegal"):
        play_game(Illegal(), RandomPlayer())
    with pytest.raises(RuntimeError, match="pusher"):
        play_game(Pusher(), RandomPlayer())


# -- UCI -----------------------------------------------------------------------------------
FAKE_ENGINE = textwrap.dedent("""
    import sys
    import chess

    log = open(sys.argv[1], "a")
    board = chess.Board()
    for line in sys.stdin:
        line = line.strip()
        log.write(line + "\\n"); log.flush()
        if line == "uci":
            print("id name fake-uci")
            print("option name UCI_LimitStrength type check default false")
            print("option name UCI_Elo type spin default 1350 min 1320 max 3190")
            print("uciok")
        elif line == "isready":
            print("readyok")
        elif line.startswith("position"):
            parts = line.split()
            if parts[1] == "startpos":
                board, rest = chess.Board(), parts[2:]
            else:
                board, rest = chess.Board(" ".join(parts[2:8])), parts[8:]
            for uci in rest[1:]:
                board.push_uci(uci)
        elif line.startswith("go"):
            print("bestmove " + min(m.uci() for m in board.legal_moves))
        elif line == "quit":
            break
        sys.stdout.flush()
""")


def test_uci_player_with_a_fake_engine(tmp_path):
    script, log = tmp_path / "fake_uci.py", tmp_path / "log.txt"
    script.write_text(FAKE_ENGINE)
    options = {"UCI_LimitStrength": True, "UCI_Elo": 1500}
    with UciPlayer(
        [sys.executable, str(script), str(log)], options=options, limit=chess.engine.Limit(nodes=1)
    ) as player:
        assert player.name == "fake-uci"
        assert isinstance(player, Player)
        board = random_board(3, 9)
        stack = list(board.move_stack)
        move = player.choose(board)
        assert move == min(board.legal_moves, key=lambda m: m.uci())
        assert board.move_stack == stack
        result = play_game(player, RandomPlayer(1), max_plies=6)
        replay(result)
    player.close()  # a second close is harmless
    sent = log.read_text()
    assert "setoption name UCI_LimitStrength value true" in sent
    assert "setoption name UCI_Elo value 1500" in sent
    assert "quit" in sent


def test_uci_player_quits_the_engine_on_a_bad_option(tmp_path):
    script, log = tmp_path / "fake_uci.py", tmp_path / "log.txt"
    script.write_text(FAKE_ENGINE)
    with pytest.raises(chess.engine.EngineError):
        UciPlayer(
            [sys.executable, str(script), str(log)], options={"NoSuchOption": 1}, limit=chess.engine.Limit(nodes=1)
        )


def test_uci_player_with_stockfish():
    from service.sessions.evaluation import uci_command

    stockfish = uci_command("stockfish")  # PATH, else Debian's /usr/games
    if shutil.which(stockfish[0]) is None:
        pytest.fail("Debian's stockfish is not installed: the Makefile's install step installs it")
    with UciPlayer(stockfish, limit=chess.engine.Limit(depth=4)) as full:
        assert "stockfish" in full.name.lower()
        assert full.choose(chess.Board(BACK_RANK)).uci() == "d1d8"
    # Weakened, as an evaluation anchor: still far above a random mover.
    options = {"UCI_LimitStrength": True, "UCI_Elo": 1500, "Threads": 1, "Hash": 16}
    with UciPlayer(stockfish, options=options, limit=chess.engine.Limit(time=0.01), name="sf1500") as weak:
        assert weak.name == "sf1500"
        result = play_game(weak, RandomPlayer(1), max_plies=40)
        replay(result)
        assert result.result in ("1-0", "1/2-1/2")
