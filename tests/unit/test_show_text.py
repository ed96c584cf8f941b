"""Output is text, never markup: values from the config, files or the swarm that look
like rich markup (`[/x]`, `[red]`) are printed as they are and never crash."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from phoenix_tasks.core.plan import LOCAL, Action, Blocked, Plan
from phoenix_tasks.show.plans import show_plan
from phoenix_tasks.show.stacks import show_environments
from phoenix_tasks.show.swarm import show_status
from phoenix_tasks.stack.envs import EnvService, EnvStack, Environment
from phoenix_tasks.cluster.status import ClusterStatus, NodeStatus

from conftest import REPO

HOSTILE = "[/x][red]boom[/red]"


def printed(fn, *args, markup=True) -> str:
    buf = io.StringIO()
    fn(Console(file=buf, width=300, markup=markup), *args)
    return buf.getvalue()


def node(labels):
    return NodeStatus(vmid=1001, name="portainer", address="198.18.42.11", role="manager", actual_role="manager",
                      state="member", node_status="ready", availability="active", reachable=True, leader=True,
                      node_id="abc", labels=labels, label_drift={"add": {"zone": HOSTILE}})


def test_a_node_label_that_looks_like_markup_is_printed_as_it_is():
    status = ClusterStatus([node({"zone": HOSTILE})], [], "portainer", "portainer", "cid", [f"problem {HOSTILE}"])
    for markup in (True, False):  # whatever console the caller passes
        text = printed(show_status, status, markup=markup)
        assert f"zone={HOSTILE}" in text and f"+zone={HOSTILE}" in text and f"problem {HOSTILE}" in text


def test_environments_and_plans_print_data_as_text():
    envs = [Environment(HOSTILE, [EnvStack(HOSTILE, "ns", "h", [EnvService(HOSTILE, "replicated", 1, 1)])])]
    assert printed(show_environments, envs).count(HOSTILE) == 3
    plan = Plan([Action("deploy", LOCAL, f"summary {HOSTILE}", ("echo", HOSTILE), target=HOSTILE)],
                [Blocked(HOSTILE, f"why {HOSTILE}")], [f"warn {HOSTILE}"])
    text = printed(lambda c, p: show_plan(c, p, verbose=True), plan)
    for piece in (f"summary {HOSTILE}", f"why {HOSTILE}", f"warn {HOSTILE}", "echo '[/x][red]boom[/red]'"):
        assert piece in text


def test_validate_with_a_config_dir_that_looks_like_markup(tmp_path):
    weird = tmp_path / "etc[" / "]"  # the path holds `[/]`
    weird.mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "validate"],
                         capture_output=True, text=True, env={"PHOENIX_CONFIG_DIR": str(weird), "PATH": "/usr/bin:/bin"},
                         timeout=60)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "etc[/]" in res.stderr and "file not found" in res.stderr, res.stderr


def test_text_from_the_cluster_reaches_no_terminal_raw_in_tables():
    """A node label, a service or environment name read from the swarm may hold an ESC
    (terminal escapes), a newline or 100 KB: every table cell keeps one printable line,
    cut to a bounded length (issue 21, item 7)."""
    evil = "\x1b]0;owned\x07\x1b[2Jzone\nx" + "y" * 100_000
    status = ClusterStatus([node({"zone": evil})], [], "portainer", "portainer", "cid", [])
    envs = [Environment("dev1", [EnvStack("app", "dev1_app", "h", [EnvService(evil, "replicated", 1, 1, evil)])])]
    for text in (printed(show_status, status), printed(show_environments, envs)):
        assert "\x1b" not in text and "\x07" not in text
        assert "owned" in text and "more characters" in text
        assert len(text) < 20_000
