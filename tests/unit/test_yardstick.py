"""The yardstick of evaluation (issue #24 item 3): the Stockfish ladder as EVAL_OPPONENTS
entries, Stockfish's adjudication at the cap, and the canonical name of the rules a result
was made under. Real Debian stockfish throughout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import chess
import chess.engine
import pytest

from service.engine import arena, players
from service.engine.players import Opponent, OpponentKind, RandomPlayer, ladder_player, parse_opponent
from service.engine.yardstick import LEGACY, Adjudication, StockfishAdjudicator, Yardstick, resolve, score_result

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

QUEEN_UP = "4k3/8/8/8/8/8/3Q4/4K3 w - - 0 1"  # white a queen up, nothing else
BALANCED = "4k3/pppp4/8/8/8/8/PPPP4/4K3 w - - 0 1"  # kings and four pawns each, mirrored
BACK_RANK = "6k1/5ppp/8/8/8/8/r4PPP/3R2K1 w - - 0 1"  # material level, white mates: Rd8#


def test_stockfish_is_installed():
    """The tests below play real Stockfish (DESIGN.md "Tests": evaluation against Debian's stockfish)."""
    assert players.stockfish_binary() is not None, "install Debian's stockfish (make stockfish)"


@pytest.mark.parametrize(
    "entry, parsed",
    [
        ("gen0", Opponent("gen0", OpponentKind.GEN0)),
        ("random", Opponent("random", OpponentKind.RANDOM)),
        ("greedy", Opponent("greedy", OpponentKind.GREEDY)),
        ("uci", Opponent("uci", OpponentKind.UCI)),
        ("stockfish-s0-d1", Opponent("stockfish-s0-d1", OpponentKind.STOCKFISH, 0, 1)),
        ("stockfish-s20-d30", Opponent("stockfish-s20-d30", OpponentKind.STOCKFISH, 20, 30)),
    ],
)
def test_opponent_entries_parse(entry, parsed):
    assert parse_opponent(entry) == parsed


@pytest.mark.parametrize(
    "entry",
    ["foo", "stockfish", "stockfish-s0", "stockfish-s21-d1", "stockfish-s0-d0", "stockfish-s0-d31",
     "stockfish-s-1-d1", "Stockfish-s0-d1", "stockfish-s0-d1 ", "stockfish-s100-d1", "uci-1500"],
)  # fmt: skip
def test_malformed_entries_are_refused_saying_what_is_accepted(entry):
    with pytest.raises(ValueError, match=r"stockfish-s\{SKILL\}-d\{DEPTH\}"):
        parse_opponent(entry)


def test_yardstick_names_are_canonical():
    assert str(Yardstick(150, Adjudication.STOCKFISH, cp=300, depth=10)) == "cap150/stockfish300cp@d10"
    assert str(Yardstick(150, Adjudication.MATERIAL)) == LEGACY == "cap150/material3"
    assert str(Yardstick(300, Adjudication.NONE)) == "cap300/none"
    with pytest.raises(ValueError, match="auto"):
        Yardstick(150, Adjudication.AUTO)


def test_the_migration_gives_old_rows_the_legacy_yardstick():
    path = ROOT / "migrations" / "versions" / "0004_evaluation_yardstick.py"
    spec = importlib.util.spec_from_file_location("m0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.LEGACY_YARDSTICK == LEGACY == str(Yardstick(arena.EVAL_MAX_PLIES, Adjudication.MATERIAL))


def test_auto_is_stockfish_when_installed_else_material(monkeypatch, tmp_path):
    assert resolve("auto") is Adjudication.STOCKFISH
    assert resolve("material") is Adjudication.MATERIAL
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(players, "DEBIAN_STOCKFISH", tmp_path / "stockfish")
    assert players.stockfish_binary() is None
    assert resolve("auto") is Adjudication.MATERIAL
    assert resolve("stockfish") is Adjudication.STOCKFISH  # asked for: the settings' check refuses it


@pytest.mark.parametrize(
    "score, expected",
    [
        (chess.engine.PovScore(chess.engine.Cp(300), chess.WHITE), "1-0"),
        (chess.engine.PovScore(chess.engine.Cp(299), chess.WHITE), "1/2-1/2"),
        (chess.engine.PovScore(chess.engine.Cp(-299), chess.WHITE), "1/2-1/2"),
        (chess.engine.PovScore(chess.engine.Cp(300), chess.BLACK), "0-1"),  # black to move, black ahead
        (chess.engine.PovScore(chess.engine.Mate(7), chess.WHITE), "1-0"),
        (chess.engine.PovScore(chess.engine.Mate(2), chess.BLACK), "0-1"),
        (chess.engine.PovScore(chess.engine.Mate(-3), chess.BLACK), "1-0"),  # black is mated
    ],
)
def test_scores_become_results(score, expected):
    assert score_result(score, 300) == expected


def mirrored(fen: str) -> chess.Board:
    """The same position with colours swapped (and the other side to move)."""
    return chess.Board(fen).mirror()


def test_stockfish_adjudicates_fixed_positions():
    adjudicator = StockfishAdjudicator(cp=300, depth=10)
    try:
        assert adjudicator(chess.Board(QUEEN_UP)) == "1-0"
        assert adjudicator(mirrored(QUEEN_UP)) == "0-1"
        assert adjudicator(chess.Board(BALANCED)) == "1/2-1/2"
        assert adjudicator(chess.Board()) == "1/2-1/2"
        assert adjudicator(chess.Board(BACK_RANK)) == "1-0"  # material level: the mate decides
        assert adjudicator(mirrored(BACK_RANK)) == "0-1"
    finally:
        adjudicator.close()
        adjudicator.close()  # twice is safe


def test_an_adjudicator_never_asked_starts_no_process():
    adjudicator = StockfishAdjudicator(cp=300, depth=10)
    adjudicator.close()
    assert adjudicator._engine is None


def test_a_ladder_rung_is_named_by_its_entry_and_plays_at_its_depth():
    player = ladder_player(parse_opponent("stockfish-s0-d1"))
    try:
        assert player.name == "stockfish-s0-d1"
        assert player.limit.depth == 1
        board = chess.Board()
        assert player.choose(board) in board.legal_moves
    finally:
        player.close()
    with pytest.raises(ValueError, match="ladder"):
        ladder_player(parse_opponent("greedy"))


def test_a_random_mover_against_the_first_rung_with_stockfish_adjudication():
    """A real match through the arena: the random mover takes nothing off stockfish-s0-d1,
    and every game cut at the cap is scored by Stockfish, not by material."""
    rung = ladder_player(parse_opponent("stockfish-s0-d1"))
    seen: list[chess.Board] = []
    adjudicator = StockfishAdjudicator(cp=300, depth=10)

    def scored(board: chess.Board) -> str:
        seen.append(board.copy())
        return adjudicator(board)

    try:
        result = arena.play_match(RandomPlayer(7), rung, pairs=2, max_plies=40, adjudicator=scored)
    finally:
        rung.close()
        adjudicator.close()
    assert result is not None and len(result.games) == 4
    assert result.wins == 0 and result.losses >= 3
    assert sum(g.adjudicated for g in result.games) == len(seen)
    for game in result.games:
        board = chess.Board()
        for uci in game.moves:
            move = chess.Move.from_uci(uci)
            assert move in board.legal_moves
            board.push(move)
        if game.adjudicated:
            assert board.fen() in {b.fen() for b in seen}


def test_the_stockfish_rule_needs_an_adjudicator_and_others_work_as_before():
    with pytest.raises(ValueError, match="adjudicator"):
        arena.play_match(RandomPlayer(1), RandomPlayer(2), pairs=1, adjudication="stockfish")
    calls: list[str] = []

    def white_wins(board: chess.Board) -> str:
        calls.append(board.fen())
        return "1-0"

    result = arena.play_match(RandomPlayer(1), RandomPlayer(2), pairs=3, max_plies=20, adjudicator=white_wins)
    assert result is not None
    capped = [g for g in result.games if g.adjudicated]
    assert len(calls) == len(capped) > 0
    assert all(g.result == "1-0" for g in capped)
    drawn = arena.play_match(RandomPlayer(1), RandomPlayer(2), pairs=3, max_plies=20, adjudication="none")
    assert drawn is not None
    assert all(g.result == "1/2-1/2" for g in drawn.games if g.adjudicated)


def test_a_sessions_evaluation_plays_the_ladder_and_names_its_yardstick(monkeypatch, tmp_path):
    """The worker's evaluation: a ladder rung is an opponent named by its entry, every result
    names the yardstick, and no Stockfish process outlives its match."""
    import psutil

    from service.config import SessionConfig
    from service.engine import network
    from service.sessions.evaluation import Evaluations, yardstick_for

    cfg = SessionConfig(
        chess_preset="tiny", eval_games=2, eval_simulations=2, eval_opponents=["stockfish-s0-d1", "random"]
    )
    evaluations = Evaluations(cfg, "cpu", None)
    results = list(evaluations.play(network.build_network("tiny", 1), 1, 10, lambda: False))
    assert [r["opponent"] for r in results] == ["stockfish-s0-d1", "random", "gen0"]
    assert {r["yardstick"] for r in results} == {"cap150/stockfish300cp@d10"}
    assert all(r["wins"] + r["draws"] + r["losses"] == 2 for r in results)
    assert not [p for p in psutil.Process().children(recursive=True) if "stockfish" in p.name()]

    assert str(yardstick_for(cfg.model_copy(update={"eval_adjudication": "none"}))) == "cap150/none"
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(players, "DEBIAN_STOCKFISH", tmp_path / "stockfish")
    assert str(yardstick_for(cfg)) == LEGACY  # auto without Stockfish: material
