"""The operations kit under deploy/ and docker-compose.yml hold together (Docker is not run):

- deploy/prometheus/alerts.yml passes `promtool check rules`, its unit tests
  (deploy/prometheus/alerts_test.yml) pass `promtool test rules`, and prometheus.yml with
  its rule_files passes `promtool check config`;
- every metric name in the alerting rules and in the Grafana dashboard's queries is one the
  service exposes (read from the real app's /metrics exposition: DESIGN.md's names and
  prometheus-fastapi-instrumentator's) or one Prometheus makes itself (`up`, `ALERTS`);
- docker-compose.yml parses, and its prometheus and grafana services mount files that exist,
  where the configs expect them.

promtool comes from Debian's `prometheus` package (/usr/bin/promtool); without it these
tests fail and say so.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.app import create_app
from service.config import Settings
from service.telemetry import METRIC_NAMES

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "continuous-play.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = ROOT / "docker-compose.yml"

PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
"""Series Prometheus makes itself: the scrape's `up`, and the state of its alerting rules."""


# -- promtool ------------------------------------------------------------------------------------
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.fail(
            "promtool not found (on PATH or /usr/bin/promtool): install Debian's `prometheus` package "
            "(apt-get install prometheus) to check deploy/prometheus/alerts.yml",
            pytrace=False,
        )
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_alert_rules_pass_promtool_check():
    output = run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert "SUCCESS" in output


def test_alert_rules_pass_their_unit_tests():
    output = run_promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))
    assert "SUCCESS" in output


def test_prometheus_config_loads_the_alert_rules():
    output = run_promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert "1 rule files found" in output


# -- metric names ----------------------------------------------------------------------------------
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's `$variables` allowed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        name = match.group(0)
        if expr[match.end() :].lstrip().startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(name)
    return names


def test_metric_names_reads_promql():
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{handler!~"/x"}[5m])))'
        " / ignoring (result) group_left sum without (a) (increase(mcts_continuous_play_games_total"
        '{session_id=~"$session_id"}[$__rate_interval])) > 1e6 and up offset 5m or abs(x_total) == +Inf'
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "mcts_continuous_play_games_total",
        "up",
        "x_total",
    }


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """Every series name the real app's /metrics can expose: its families (DESIGN.md's names,
    the instrumentator's HTTP metrics) with the suffixes of their types."""
    app = create_app(Settings(_env_file=None, api_keys=[], cors_origins=[], enable_prometheus=True))

    async def scrape() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await client.get("/healthz")
            response = await client.get("/metrics")
            assert response.status_code == 200
            return response.text

    text = asyncio.run(scrape())
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        elif kind == "summary":
            names.update({f"{name}_sum", f"{name}_count"})
    assert set(METRIC_NAMES) <= names, "the app does not expose every DESIGN.md name"
    assert "http_request_duration_seconds_bucket" in names and "http_requests_total" in names
    return names


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_exposed_metrics(exposed):
    used = set()
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        unknown = names - exposed - PROMETHEUS_BUILTINS
        assert not unknown, f"{rule['alert']} uses metrics the service does not expose: {sorted(unknown)}"
        used |= names
    assert "mcts_continuous_play_alerts_total" in used  # the alerts the service raises itself
    assert {
        "mcts_continuous_play_elo_estimate",
        "mcts_continuous_play_training_loss",
        "mcts_continuous_play_games_total",
        "http_requests_total",
    } <= used


def test_alert_rules_are_complete_and_mirror_the_settings():
    rules = _rules()
    for rule in rules:
        assert "for" in rule, f"{rule['alert']} has no `for`"
        assert rule.get("labels", {}).get("severity"), f"{rule['alert']} has no severity label"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), f"{rule['alert']} lacks annotations"
    severities = {rule["labels"]["severity"] for rule in rules}
    assert {"warning", "critical"} <= severities
    defaults = Settings(_env_file=None)
    by_name: dict[str, list[str]] = {}
    for rule in rules:
        by_name.setdefault(rule["alert"], []).append(" ".join(rule["expr"].split()))
    elo = " ".join(by_name["ContinuousPlayEloRegression"])
    assert f"< {defaults.alert_elo_regression:g} " in elo and f"<= {2 * defaults.alert_elo_regression:g}" in elo
    loss = " ".join(by_name["ContinuousPlayLossSpike"])
    assert f"> {defaults.alert_loss_spike_factor:g} * avg_over_time" in loss
    assert "memory_growth" in by_name["ContinuousPlayWorkerMemoryGrowth"][0]
    assert "timeout_rate" in by_name["ContinuousPlayWorkerTimeouts"][0]


# -- the Grafana dashboard -------------------------------------------------------------------------
def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every query of the dashboard: panels, annotations, variables."""
    exprs = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            exprs.append((f"annotation {annotation['name']}", annotation["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and query:
            match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", query)
            exprs.append((f"variable {variable['name']}", match.group(1) if match else query))
    return exprs


def test_dashboard_queries_use_only_exposed_metrics(dashboard, exposed):
    used = set()
    for where, expr in dashboard_exprs(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - exposed - PROMETHEUS_BUILTINS
        assert not unknown, f"{where} queries metrics the service does not expose: {sorted(unknown)}"
        used |= names
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    missing = set(METRIC_NAMES) - bases
    assert not missing, f"DESIGN.md metrics on no panel: {sorted(missing)}"


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$session_id": ".*"}


def test_dashboard_queries_are_valid_promql(dashboard, tmp_path):
    """promtool parses every query (as recording rules, Grafana's variables filled in)."""
    rules = []
    for number, (where, expr) in enumerate(dashboard_exprs(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: a Grafana variable this test does not know: {expr!r}"
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"dashboard queries promtool rejects:\n{done.stdout}{done.stderr}"


def test_dashboard_has_the_expected_panels(dashboard):
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in panels)
    for wanted in (
        "Games per minute",
        "Elo",
        "Training loss per head",
        "Self-play results",
        "Simulations per second",
        "HTTP latency (p50, p99)",
    ):
        assert wanted in titles, f"no panel {wanted!r} in {titles}"
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    latency = next(p for p in panels if p["title"].startswith("HTTP latency"))
    exprs = " ".join(t["expr"] for t in latency["targets"])
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    assert "http_request_duration_seconds_bucket" in exprs
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    for panel in panels:
        assert panel["datasource"]["uid"] == uid
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    assert dashboard["uid"] == "continuous-play" and dashboard["templating"]["list"][0]["name"] == "session_id"


# -- docker-compose.yml ----------------------------------------------------------------------------
def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (./...)."""
    binds = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            binds[target] = (ROOT / source).resolve()
    return binds


def test_compose_mounts_the_ops_kit(dashboard):
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"api", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for target, source in _binds(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}: it does not exist"

    prometheus = _binds(services["prometheus"])
    config_path = "/etc/prometheus/prometheus.yml"
    assert prometheus[config_path] == PROMETHEUS_CONFIG
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    for rule_file in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]:
        in_container = str(Path(config_path).parent / rule_file)
        assert prometheus.get(in_container) == ALERTS, f"rule file {rule_file} is not mounted at {in_container}"

    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana")
    assert any(port.endswith(":3000") for port in grafana["ports"])
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = _binds(grafana)
    assert mounts["/etc/grafana/provisioning/datasources"] == DATASOURCES.parent
    assert mounts["/etc/grafana/provisioning/dashboards"] == DASHBOARD_PROVIDERS.parent
    provider_path = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]["options"]["path"]
    assert mounts[provider_path] == DASHBOARD.parent
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home is None or home == f"{provider_path}/{DASHBOARD.name}"
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in grafana.get("depends_on", [])


# -- no placeholder secrets ------------------------------------------------------------------------
REQUIRED_SECRETS = ("API_KEYS", "GRAFANA_ADMIN_PASSWORD")
"""Variables docker-compose.yml must refuse to run without: `${VAR:?message}`, no default."""
PLACEHOLDERS = ("change-me", "change-me-ray-token", "admin")
"""The defaults these variables had: a deployment must never run with one of them."""
_REFERENCE = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])((?:[^}])*))?\}")


class ComposeError(Exception):
    """What `docker compose config` refuses a file for (a required variable without a value)."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`value` (a parsed compose document or part of it) with its variables substituted as
    Compose does: `$$` is a literal `$`; `${VAR}`, `${VAR:-default}` / `${VAR-default}`;
    `${VAR:?message}` / `${VAR?message}` refuse an unset (with `:`, or empty) variable."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, colon, op, arg = match.groups()
        if name is None:
            return "$"
        given = env.get(name)
        missing = given is None or (colon == ":" and given == "")
        if op == "-" and missing:
            return arg
        if op == "?" and missing:
            raise ComposeError(f"required variable {name} is missing a value: {arg}")
        return given or ""

    return _REFERENCE.sub(substitute, value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_interpolate_follows_compose():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a${SET}b$${SET}${UNSET:-d}${EMPTY:-e}${EMPTY-f}${UNSET-g}", env) == "avb${SET}deg"
    assert interpolate("${EMPTY?x}", env) == ""
    for text in ("${UNSET:?say so}", "${EMPTY:?say so}", "${UNSET?say so}"):
        with pytest.raises(ComposeError, match="say so"):
            interpolate(text, env)


def test_compose_refuses_to_run_with_placeholder_secrets(tmp_path):
    compose = yaml.safe_load(COMPOSE.read_text())
    for text in _strings(compose):
        for name in REQUIRED_SECRETS:
            for match in re.finditer(r"\$\{" + name + r"\b([^}]*)\}", text):
                assert match.group(1).startswith(":?") and len(match.group(1)) > 10, (
                    f"{match.group(0)}: {name} must be required, with a message saying what to set"
                )
        assert not any(re.search(r":?-" + re.escape(p) + r"\}", text) for p in PLACEHOLDERS), text
        assert "change-me" not in text, text
    # `docker compose config` fails naming each variable in turn, and passes once they are set
    env: dict[str, str] = {}
    for name in REQUIRED_SECRETS:
        with pytest.raises(ComposeError, match=f"required variable {name} "):
            interpolate(compose, env)
        with pytest.raises(ComposeError, match=f"required variable {name} "):
            interpolate(compose, {**env, name: ""})
        env[name] = f"secret-{name.lower()}"
    services = interpolate(compose, env)["services"]
    assert services["api"]["environment"]["API_KEYS"] == "secret-api_keys"
    assert services["api-ray"]["environment"]["API_KEYS"] == "secret-api_keys"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "secret-grafana_admin_password"

    # RAY_AUTH_TOKEN has no default either; the Ray nodes (profile `ray`) refuse to start
    # without one (a required variable would also stop `docker compose up` without that
    # profile: Compose interpolates every service before it applies profiles)
    assert services["ray-head"]["environment"]["RAY_AUTH_TOKEN"] == ""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    ran = tmp_path / "ray-ran"
    (fake_bin / "ray").write_text(f'#!/bin/sh\necho "$@" > {ran}\n')
    (fake_bin / "ray").chmod(0o755)
    for name in ("ray-head", "ray-worker"):
        command = services[name]["command"]
        assert command[:2] == ["sh", "-c"], f"{name}: the token check needs a shell"
        for token in ("", "a-real-token"):
            ran.unlink(missing_ok=True)
            done = subprocess.run(
                command,
                env={"PATH": f"{fake_bin}:/usr/bin:/bin", "RAY_AUTH_TOKEN": token},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if token:
                assert done.returncode == 0 and ran.read_text().startswith("start "), (name, done.stderr)
            else:
                assert done.returncode != 0 and "RAY_AUTH_TOKEN" in done.stderr and not ran.exists(), (name, done)


def test_compose_ray_profile_spreads_one_session_over_several_worker_nodes():
    """Profile `ray` with its defaults: two or more worker nodes, a head without CPUs (every
    role on the workers), a fixed number of self-play actors per session (`auto` would count
    api-ray's cores, not the cluster's) and CPUs on the workers for every session's learner and
    actors (an actor that finds none waits for a node)."""
    env = {name: "secret" for name in REQUIRED_SECRETS}
    services = interpolate(yaml.safe_load(COMPOSE.read_text()), env)["services"]
    workers = services["ray-worker"]["deploy"]["replicas"]
    worker_cpus = int(re.search(r"--num-cpus=(\d+)", services["ray-worker"]["command"][2]).group(1))
    assert "--num-cpus=0 " in services["ray-head"]["command"][2]
    api = services["api-ray"]["environment"]
    actors, threads, sessions = (int(api[k]) for k in ("SELFPLAY_ACTORS", "TORCH_THREADS", "MAX_CONCURRENT_SESSIONS"))
    assert workers >= 2 and actors >= 2, "one session's actors on several nodes"
    assert sessions * (threads + actors) <= workers * worker_cpus
    assert api["WORKER_BACKEND"] == "ray" and api["RAY_ADDRESS"].startswith("ray://ray-head:")


def test_compose_api_serves_the_names_it_is_reached_by():
    """Prometheus scrapes the api by its service name: that Host must be in ALLOWED_HOSTS."""
    compose = interpolate(yaml.safe_load(COMPOSE.read_text()), {name: "x" for name in REQUIRED_SECRETS})
    allowed = compose["services"]["api"]["environment"].get("ALLOWED_HOSTS", "").split(",")
    for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                assert target.rsplit(":", 1)[0] in allowed, f"{target} is not in the api's ALLOWED_HOSTS"
