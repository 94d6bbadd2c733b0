"""The dashboard's copy of the service's names (service/dashboard/dashboard.js has no build
step, so it spells them once, at its top) matches service.lifecycle and
service.event_types, and neither the script nor its stylesheet spells a state, an actor's
state or an event type anywhere else, or one that does not exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from service.event_types import STORED, EventType
from service.lifecycle import ACTIONS, ACTIVE, FINAL, ActorState, State

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[2] / "service" / "dashboard"
SCRIPT = (DASHBOARD / "dashboard.js").read_text(encoding="utf-8")
STYLE = (DASHBOARD / "dashboard.css").read_text(encoding="utf-8")


def js_object(name: str) -> str:
    """The body of `const NAME = Object.freeze({...});` in the script."""
    match = re.search(rf"const {name} = Object\.freeze\(\{{(.*?)\}}\);", SCRIPT, re.S)
    assert match, f"dashboard.js has no `const {name} = Object.freeze({{...}});`"
    return match.group(1)


def js_strings(body: str) -> dict[str, str]:
    """`KEY: "value"` pairs of an object literal."""
    return dict(re.findall(r'(\w+): "([^"]*)"', body))


STATE = js_strings(js_object("STATE"))
EVENT = js_strings(js_object("EVENT"))
ACTOR_STATE = js_strings(js_object("ACTOR_STATE"))


def js_set(source: str, where: str) -> set[str]:
    """The values of `new Set([STATE.X, EVENT.Y, ...])` (the first one in `source`)."""
    match = re.search(r"new Set\(\[([^\]]*)\]\)", source)
    assert match, f"no `new Set([...])` in {where}"
    names = {"STATE": STATE, "EVENT": EVENT}
    members = re.findall(r"(STATE|EVENT)\.(\w+)", match.group(1))
    assert len(members) == len(match.group(1).split(",")), f"{where}: only STATE.X / EVENT.X members"
    return {names[table][key] for table, key in members}


def js_const(name: str) -> str:
    """The line of `const NAME = ...;` (up to its end)."""
    match = re.search(rf"const {name} = (.*?);\n", SCRIPT, re.S)
    assert match, f"dashboard.js has no `const {name} = ...;`"
    return match.group(1)


def test_states_match_the_enum():
    assert STATE == {state.name: state.value for state in State}
    assert js_set(js_const("ACTIVE"), "ACTIVE") == {s.value for s in ACTIVE}
    assert js_set(js_const("TERMINAL"), "TERMINAL") == {s.value for s in FINAL}


def test_actor_states_match_the_enum():
    assert ACTOR_STATE == {state.name: state.value for state in ActorState}


def test_action_buttons_follow_the_state_machine():
    allowed = js_object("ALLOWED")
    lines = dict(re.findall(r"(\w+): (new Set\(\[[^\]]*\]\))", allowed))
    assert set(lines) == set(ACTIONS)
    for action, (sources, _target) in ACTIONS.items():
        assert js_set(lines[action], f"ALLOWED.{action}") == {s.value for s in sources}, action


def test_event_types_match_the_enum():
    assert EVENT == {kind.name: kind.value for kind in EventType}
    log_types = re.findall(r"EVENT\.(\w+)", js_const("LOG_TYPES"))
    assert {EVENT[key] for key in log_types} == {kind.value for kind in STORED}  # the log shows the stored ones


def test_no_other_spelling_in_the_script():
    """Outside STATE, ACTOR_STATE and EVENT, the script names a state, an actor's state or an
    event type only through them."""
    rest = SCRIPT
    for name in ("STATE", "ACTOR_STATE", "EVENT"):
        rest = rest.replace(js_object(name), "")
    values = [s.value for s in State] + [s.value for s in ActorState] + [k.value for k in EventType]
    quoted = re.findall(r"""["'`](%s)["'`]""" % "|".join(re.escape(v) for v in values), rest)
    assert quoted == [], f"dashboard.js spells {sorted(set(quoted))} outside STATE / ACTOR_STATE / EVENT"


def test_the_stylesheet_names_only_real_states_and_event_types():
    badges = set(re.findall(r"\.badge\.([\w-]+)", STYLE))
    assert badges and badges <= {s.value for s in State}, badges - {s.value for s in State}
    log_types = set(re.findall(r"""data-type=["']([^"']+)["']""", STYLE))
    assert log_types and log_types <= {k.value for k in EventType}, log_types - {k.value for k in EventType}


def test_the_service_spells_event_types_only_in_event_types():
    """No module of the service writes an event type as a string: each imports EventType."""
    root = DASHBOARD.parent
    types = {t.value for t in EventType}
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "event_types.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in types:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.value!r}")
    assert found == []
