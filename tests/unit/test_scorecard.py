"""Self-play scorecard: exact counts, rates, streaks and lengths on hand-computed sequences."""

import json
from types import SimpleNamespace

import pytest

from service.stats.scorecard import Scorecard

pytestmark = pytest.mark.unit

# W W D L W, from white's side: (result, plies, termination, adjudicated, duration_s)
GAMES = [
    ("1-0", 40, "checkmate", False, 1.0),
    ("1-0", 60, "move_cap", True, 2.0),
    ("1/2-1/2", 80, "move_cap", True, 3.0),
    ("0-1", 30, "checkmate", False, 4.0),
    ("1-0", 50, "checkmate", False, 5.0),
]


def card_of(games) -> Scorecard:
    card = Scorecard()
    for g in games:
        card.add(*g)
    return card


def test_counts_and_rates():
    card = card_of(GAMES)
    assert (card.games, card.white_wins, card.black_wins, card.draws) == (5, 3, 1, 1)
    assert card.decisive == 4
    assert card.adjudicated == 2
    assert card.adjudicated_decisive == 1
    assert card.terminations == {"checkmate": 3, "move_cap": 2}
    assert card.white_score == pytest.approx(0.7)
    assert card.black_score == pytest.approx(0.3)
    assert card.white_win_rate == pytest.approx(0.6)
    assert card.black_win_rate == pytest.approx(0.2)
    assert card.draw_rate == pytest.approx(0.2)
    assert card.decisive_rate == pytest.approx(0.8)


def test_streaks():
    card = card_of(GAMES)
    # W W | D | L W: a decisive run counts wins of either colour.
    assert card.longest_decisive_streak == 2
    assert card.longest_draw_streak == 1
    assert (card.current_result, card.current_streak) == ("1-0", 1)

    card = card_of([("1/2-1/2", 10, "stalemate", False)] * 3 + [("0-1", 10, "checkmate", False)] * 2)
    assert card.longest_draw_streak == 3
    assert card.longest_decisive_streak == 2
    assert (card.current_result, card.current_streak) == ("0-1", 2)


def test_lengths_and_duration():
    card = card_of(GAMES)
    assert card.mean_plies == pytest.approx(52.0)
    assert card.median_plies == 50.0
    assert min(card.plies) == 30 and max(card.plies) == 80
    assert card.mean_duration_s == pytest.approx(3.0)
    assert card_of([("1-0", 10, "checkmate", False), ("0-1", 21, "checkmate", False)]).median_plies == 15.5


def test_to_dict_sections():
    d = card_of(GAMES).to_dict()
    json.dumps(d)
    assert d["games"] == 5
    assert d["adjudicated"] == 2
    assert d["terminations"] == {"checkmate": 3, "move_cap": 2}
    r = d["results"]
    assert (r["white_wins"], r["black_wins"], r["draws"], r["decisive"]) == (3, 1, 1, 4)
    assert r["draw_rate"] == pytest.approx(0.2)
    assert r["white_win_rate"] == pytest.approx(0.6)
    white, black = r["by_colour"]["white"], r["by_colour"]["black"]
    assert (white["wins"], white["losses"], white["draws"]) == (3, 1, 1)
    assert (black["wins"], black["losses"], black["draws"]) == (1, 3, 1)
    assert white["score"] == pytest.approx(0.7) and black["score"] == pytest.approx(0.3)
    assert d["streaks"] == {"longest_decisive": 2, "longest_draw": 1, "current": {"result": "1-0", "length": 1}}
    assert d["length"] == {"mean": 52.0, "median": 50.0, "min": 30, "max": 80, "total_plies": 260}
    assert d["duration"]["mean_s"] == pytest.approx(3.0)


def test_empty_card_has_no_division_errors():
    card = Scorecard()
    d = card.to_dict()
    json.dumps(d)
    assert d["games"] == 0 and d["adjudicated"] == 0
    assert d["results"]["white_wins"] == d["results"]["draws"] == 0
    assert d["results"]["draw_rate"] is None
    assert d["results"]["by_colour"]["white"]["score"] is None
    assert d["length"]["mean"] is None and d["length"]["median"] is None and d["length"]["min"] is None
    assert d["streaks"]["current"] == {"result": None, "length": 0}
    assert d["duration"]["mean_s"] is None
    assert d["terminations"] == {}


def test_rejects_unknown_result():
    with pytest.raises(ValueError):
        Scorecard().add("*", 10, "checkmate", False)


def test_from_records_matches_add():
    records = [
        SimpleNamespace(result=r, plies=p, termination=t, adjudicated=a, duration_s=s) for r, p, t, a, s in GAMES
    ]
    assert Scorecard.from_records(records).to_dict() == card_of(GAMES).to_dict()


def test_from_selfplay_game_records():
    import chess

    from service.engine.selfplay import GameRecord

    moves = [chess.Move.from_uci(u) for u in ("f2f3", "e7e5", "g2g4", "d8h4")]
    rec = GameRecord(1, moves, "0-1", "checkmate", False, 1.0, duration_s=0.5)
    card = Scorecard.from_records([rec])
    assert (card.games, card.black_wins, card.plies, card.mean_duration_s) == (1, 1, [4], 0.5)
