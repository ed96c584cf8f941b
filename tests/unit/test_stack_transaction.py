"""The pure parts of the guarded flows (phoenix_tasks.stack.transaction): the ledger result of
a deploy's outcome, the objects a document names, the rollback target, the stored
document, and `check_restorable` over a real Transport whose connection answers the
pre-flight read with the recorded lab (tests/data/stack/preflight_lab.txt) and chosen
configs and secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from invoke import MockContext, Result

from phoenix_tasks.config import load_config
from phoenix_tasks.core.plan import Action, Blocked, Plan
from phoenix_tasks.portainer.service import Password, render_portainer
from phoenix_tasks.core.secrets import Secret
from phoenix_tasks.stack import commands
from phoenix_tasks.stack.deploy import DeployOutcome
from phoenix_tasks.stack.facts import parse_preflight
from phoenix_tasks.stack.transaction import (
    RollbackRefused,
    check_restorable,
    referenced_objects,
    result_of,
    rollback_target,
    stored_rendered,
)
from phoenix_tasks.stack.ledger import (
    CONVERGED,
    FAILED,
    INCOMPLETE,
    REMOVED,
    ROLLED_BACK,
    Entry,
)
from phoenix_tasks.docker.render import render
from phoenix_tasks.stack.wait import Verdict
from phoenix_tasks.core.transport import Transport, shell_command

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "etc" / "lab", REPO / "stacks")
MANAGER = CONFIG.managers[0]
NS = "dev1_thinkheads_ai_app"
RECORDED_CONFIG = "dev1_thinkheads_ai_app_api_settings_8e109b51"  # in preflight_lab.txt
WEB = "dev1_thinkheads_ai_app_api"


# -- result_of -------------------------------------------------------------------------------------

def outcome(**kw) -> DeployOutcome:
    return DeployOutcome(Plan(), **kw)


def test_result_of_a_converged_deploy():
    ok = outcome(verdicts={WEB: Verdict(WEB, "converged", "1/1 running")})
    assert result_of(ok) == (CONVERGED, "")


def test_result_of_a_failed_deploy_gives_the_reasons():
    failed = outcome(
        failed=[(WEB, "task abc123 failed (exit 1): no such file")],
        blocked=[Blocked(NS, "external network 'edge' does not exist")],
        pending=[Action("deploy", MANAGER, "docker stack deploy dev1_thinkheads_ai_app", target=NS)],
        verdicts={WEB: Verdict(WEB, "failed", "0/1 running", "task abc123 failed (exit 1): no such file")})
    state, reason = result_of(failed)
    assert state == FAILED
    assert reason == (f"{WEB}: task abc123 failed (exit 1): no such file; "
                      f"blocked {NS}: external network 'edge' does not exist; "
                      f"pending {NS}: docker stack deploy dev1_thinkheads_ai_app")


def test_result_of_a_deploy_swarm_rolled_back():
    # the detail as stack/wait.py's judge writes it for a service whose update swarm undid
    detail = ("Swarm rolled the update back (rollback_completed): rollback completed; "
              "task 4kq2 failed (exit 1): bad config")
    rolled = outcome(failed=[(WEB, detail)],
                     verdicts={WEB: Verdict(WEB, "failed", "-", detail),
                               "dev1_thinkheads_ai_app_inference": Verdict("x", "converged", "1/1 running")})
    assert result_of(rolled) == (ROLLED_BACK, f"{WEB}: {detail}")


def test_result_of_a_failed_deploy_whose_update_failed_is_not_rolled_back():
    detail = "update paused: update paused due to failure or early termination of task 4kq2"
    paused = outcome(failed=[(WEB, detail)], verdicts={WEB: Verdict(WEB, "failed", "-", detail)})
    assert result_of(paused) == (FAILED, f"{WEB}: {detail}")


# -- referenced_objects ------------------------------------------------------------------------------

def test_referenced_objects_of_a_rendered_stack_and_portainer():
    rendered = render(CONFIG.stacks["thinkheads_ai_app"], "dev1")
    assert referenced_objects(rendered.document) == (RECORDED_CONFIG,)
    portainer = render_portainer(CONFIG, Password("test", Secret("a-password-of-length")))
    [secret] = portainer.objects
    assert referenced_objects(portainer.document) == (secret.name,)
    assert referenced_objects(render_portainer(CONFIG, None).document) == ()


def test_referenced_objects_only_external_ones_with_a_name():
    doc = {"configs": {"a": {"external": True, "name": "cfg_a"}, "b": {"file": "./b.txt"},
                       "c": {"external": False, "name": "cfg_c"}, "d": None},
           "secrets": {"s": {"external": True, "name": "sec_s"}, "t": {"external": True}}}
    assert referenced_objects(doc) == ("cfg_a", "sec_s")
    assert referenced_objects({"services": {}}) == ()


# -- rollback_target -------------------------------------------------------------------------------------

def rec(seq: int, result: str = CONVERGED, kind: str = "deploy", document: str | None = "services: {}\n",
        hash: str | None = None) -> Entry:
    return Entry(namespace=NS, seq=seq, kind=kind, env="dev1", stack="thinkheads_ai_app",
                 hash=hash if hash is not None else (None if kind == "rm" else f"h{seq}"), who="alice@laptop",
                 command="swarm.deploy", started=1_700_000_000 + seq,
                 document=None if kind == "rm" else document, result=result)


def test_after_a_converged_latest_the_target_is_the_converged_one_before_it():
    entries = [rec(1), rec(2, FAILED), rec(3), rec(4, ROLLED_BACK), rec(5)]
    assert rollback_target(entries, None).seq == 3


def test_after_a_failed_latest_the_target_is_the_last_converged():
    assert rollback_target([rec(1), rec(2), rec(3, FAILED)], None).seq == 2
    assert rollback_target([rec(1), rec(2), rec(3, ROLLED_BACK)], None).seq == 2
    assert rollback_target([rec(1), rec(2), rec(3, INCOMPLETE)], None).seq == 2


def test_after_an_rm_the_target_is_the_last_converged_deploy():
    assert rollback_target([rec(1), rec(2), rec(3, REMOVED, kind="rm")], None).seq == 2


def test_a_converged_rollback_counts_as_what_runs_now():
    entries = [rec(1), rec(2), rec(3, kind="rollback")]
    assert rollback_target(entries, None).seq == 2


def test_no_earlier_converged_deploy_is_refused_listing_the_records():
    with pytest.raises(RollbackRefused) as exc:
        rollback_target([rec(1, FAILED), rec(2)], None)
    assert str(exc.value) == "no earlier converged deploy to go back to (records: #1 deploy failed h1; " \
                             "#2 deploy converged h2)"
    with pytest.raises(RollbackRefused, match=r"\(records: none\)"):
        rollback_target([], None)


def test_to_picks_that_record():
    entries = [rec(1), rec(2, FAILED), rec(3)]
    assert rollback_target(entries, 1).seq == 1
    assert rollback_target(entries, 2).seq == 2  # named explicitly: even one that failed


def test_to_a_missing_record_lists_the_records():
    entries = [rec(1), rec(2, REMOVED, kind="rm"), rec(3, FAILED)]
    with pytest.raises(RollbackRefused) as exc:
        rollback_target(entries, 9)
    assert str(exc.value) == "no ledger record #9 (records: #1 deploy converged h1; #2 rm removed -; " \
                             "#3 deploy failed h3)"


def test_to_an_rm_record_is_refused():
    with pytest.raises(RollbackRefused, match=r"^record #2 is a rm: there is no document to go back to$"):
        rollback_target([rec(1), rec(2, REMOVED, kind="rm")], 2)


def test_to_a_record_without_document_is_refused():
    with pytest.raises(RollbackRefused, match=r"^record #1 is a deploy: there is no document"):
        rollback_target([rec(1, document=None)], 1)


# -- stored_rendered ----------------------------------------------------------------------------------

def test_stored_rendered_is_the_document_exactly_as_sent():
    rendered = render(CONFIG.stacks["thinkheads_ai_app"], "dev1")
    e = rec(4, document=rendered.text, hash=rendered.hash)
    stored = stored_rendered(e)
    assert (stored.stack, stored.env, stored.namespace, stored.hash) == ("thinkheads_ai_app", "dev1", NS,
                                                                         rendered.hash)
    assert stored.text == rendered.text  # sent again byte for byte
    assert stored.document == yaml.safe_load(rendered.text)
    label = "io.phoenix.hash"
    assert stored.services["api"]["deploy"]["labels"][label] == rendered.services["api"]["deploy"]["labels"][label]
    assert stored.objects == () and stored.warnings == ()  # nothing to create: the objects must exist


@pytest.mark.parametrize("document", [None, "", "just a string\n", "- a\n- b\n", "services: 3\n",
                                      "version: '3.8'\n"])
def test_stored_rendered_refuses_a_document_without_services(document):
    with pytest.raises(RollbackRefused, match=r"^record #4 holds no readable compose document$"):
        stored_rendered(rec(4, document=document))


def test_stored_rendered_refuses_a_document_that_is_not_yaml():
    with pytest.raises(RollbackRefused, match="holds no readable compose document"):
        stored_rendered(rec(4, document="services: [\n  {: oops\n"))


# -- check_restorable ------------------------------------------------------------------------------------

def preflight_stdout(configs: list[str], secrets: list[str]) -> str:
    """The recorded lab's pre-flight read, with these configs and secrets (as `docker config
    ls --format '{{json .}}'` prints them)."""
    recorded = (REPO / "tests" / "data" / "stack" / "preflight_lab.txt").read_text()
    sections = recorded.split(commands.SEPARATOR)
    assert len(sections) == 7

    def rows(names):
        return "".join(json.dumps({"CreatedAt": "2 minutes ago", "ID": f"id{i:023d}", "Labels": "", "Name": n,
                                   "UpdatedAt": "2 minutes ago"}, separators=(",", ":")) + "\n"
                       for i, n in enumerate(names))

    return commands.SEPARATOR.join([*sections[:5], "\n" + rows(configs), "\n" + rows(secrets)])


def transport_answering(stdout: str, namespace: str = NS) -> Transport:
    runs = {shell_command(commands.preflight(namespace)): Result(stdout=stdout)}
    return Transport(CONFIG.hypervisor.vm_access, connect=lambda host, access: MockContext(run=runs))


DOC = """\
services:
  api:
    image: thinkheads/ai-api:1.4.0
configs:
  api_settings:
    external: true
    name: dev1_thinkheads_ai_app_api_settings_8e109b51
  proxy_conf:
    external: true
    name: dev1_thinkheads_ai_app_proxy_conf_0badc0de
secrets:
  token:
    external: true
    name: dev1_thinkheads_ai_app_token_12345678
  shared_ca:
    external: true
    name: shared_ca_v1
"""


def test_recorded_lab_read_parses():
    view = parse_preflight(preflight_stdout(["c1"], ["s1", "s2"]))
    assert view.configs == {"c1"} and view.secrets == {"s1", "s2"} and len(view.nodes) == 3


def test_check_restorable_names_every_missing_object():
    t = transport_answering(preflight_stdout([RECORDED_CONFIG], ["shared_ca_v1"]))
    with pytest.raises(RollbackRefused) as exc:
        check_restorable(t, MANAGER, rec(3, document=DOC))
    assert str(exc.value) == (
        "record #3 cannot be restored: config dev1_thinkheads_ai_app_proxy_conf_0badc0de, "
        "secret dev1_thinkheads_ai_app_token_12345678 no longer exist (removed by `swarm.rm` or by clean-up); "
        "nothing was changed")
    assert [(r.vm, r.mutating) for r in t.log] == [("portainer", False)]


def test_check_restorable_when_everything_exists():
    t = transport_answering(preflight_stdout(
        [RECORDED_CONFIG, "dev1_thinkheads_ai_app_proxy_conf_0badc0de"],
        ["dev1_thinkheads_ai_app_token_12345678", "shared_ca_v1"]))
    assert check_restorable(t, MANAGER, rec(3, document=DOC)) is None
    assert t.mutating_commands == []


def test_check_restorable_of_a_rendered_stack_on_the_recorded_lab():
    rendered = render(CONFIG.stacks["thinkheads_ai_app"], "dev1")
    recorded = (REPO / "tests" / "data" / "stack" / "preflight_lab.txt").read_text()
    check_restorable(transport_answering(recorded), MANAGER, rec(2, document=rendered.text))
    with pytest.raises(RollbackRefused, match=f"config {RECORDED_CONFIG} no longer exist"):
        check_restorable(transport_answering(preflight_stdout([], [])), MANAGER, rec(2, document=rendered.text))


def test_check_restorable_an_external_object_without_name_is_its_key():
    doc = "services:\n  api:\n    image: a:1\nsecrets:\n  shared_token:\n    external: true\n"
    t = transport_answering(preflight_stdout([], ["shared_token"]))
    check_restorable(t, MANAGER, rec(3, document=doc))


def test_check_restorable_of_a_document_that_is_not_a_mapping_is_refused():
    t = transport_answering(preflight_stdout([], []))
    with pytest.raises(RollbackRefused):
        check_restorable(t, MANAGER, rec(3, document="- a\n- b\n"))
