"""sync/sync_all.py's own logic, without a VM: waiting for SSH on new VMs (a transport whose
`true` fails a given number of times), and the plan and result records the summary is
built from (hand-built outcomes of the VMs and swarm stages, and of Portainer's deploy)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.plan import Action, Blocked, Outcome, Plan
from phoenix_tasks.portainer.service import PortainerStatus
from phoenix_tasks.stack.deploy import DeployOutcome
from phoenix_tasks.stack.diff import ServiceChange
from phoenix_tasks.sync.sync_all import SyncPlan, SyncResult
from phoenix_tasks.sync.vm_stage import wait_for_ssh
from phoenix_tasks.core.transport import CommandResult, Unreachable
from phoenix_tasks.sync.vm_stage import VMsOutcome

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "etc" / "lab", REPO / "stacks")


@pytest.fixture(scope="module")
def vms(config):
    """portainer (manager), drphoenix, cpuworker: the lab's swarm VMs, by name."""
    return SimpleNamespace(**{vm.name: vm for vm in config.swarm_vms})


# -- wait_for_ssh ------------------------------------------------------------------------------

class Booting:
    """A transport to VMs that are booting: `hostname` on a VM fails (Unreachable, the
    attempt numbered) its given number of times, then answers the VM's name (or the
    name `answers_as` gives it); None: it never does.  `each` is Transport.each's
    contract: a result or the PhoenixError, by name."""

    def __init__(self, failures: dict[str, int | None], answers_as: dict[str, str] | None = None):
        self.failures = failures
        self.answers_as = answers_as or {}
        self.rounds: list[list[str]] = []
        self.runs: list[tuple[str, tuple, bool]] = []

    def each(self, hosts, fn, *, parallel=True):
        hosts = list(hosts)
        self.rounds.append([h.name for h in hosts])
        out = {}
        for host in hosts:
            try:
                out[host.name] = fn(host)
            except PhoenixError as exc:
                out[host.name] = exc
        return out

    def run(self, host, argv, *, mutating, check=True, **kw):
        self.runs.append((host.name, tuple(argv), mutating))
        attempt = sum(1 for name, _, _ in self.runs if name == host.name)
        left = self.failures[host.name]
        if left is None or attempt <= left:
            raise Unreachable(f"{host}: cannot reach {host.address}:22 over SSH: attempt {attempt}")
        return CommandResult(host, "hostname", 0, self.answers_as.get(host.name, host.name) + "\n", "")


class Clock:
    """sync's clock: time passes only when it sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    return c


def test_each_vm_is_polled_until_it_answers(vms, clock):
    t = Booting({"portainer": 0, "drphoenix": 2, "cpuworker": 3})
    assert wait_for_ssh(t, [vms.portainer, vms.drphoenix, vms.cpuworker], timeout_s=60, sleep=clock.sleep, clock=clock.monotonic) == {}
    assert t.rounds == [["portainer", "drphoenix", "cpuworker"], ["drphoenix", "cpuworker"],
                        ["drphoenix", "cpuworker"], ["cpuworker"]]
    assert clock.sleeps == [2.0, 2.0, 2.0]  # between rounds, none after the last
    assert {(argv, mutating) for _, argv, mutating in t.runs} == {(("hostname",), False)}


def test_all_answering_at_once_is_one_round_and_no_sleep(vms, clock):
    t = Booting({"portainer": 0, "drphoenix": 0})
    assert wait_for_ssh(t, [vms.portainer, vms.drphoenix], timeout_s=60, sleep=clock.sleep, clock=clock.monotonic) == {}
    assert len(t.rounds) == 1 and clock.sleeps == []


def test_no_vms_is_no_round(clock):
    t = Booting({})
    assert wait_for_ssh(t, [], timeout_s=60, sleep=clock.sleep, clock=clock.monotonic) == {}
    assert t.rounds == [] and clock.sleeps == []


def test_a_vm_that_never_answers_is_returned_with_its_last_error(vms, clock):
    t = Booting({"portainer": 1, "drphoenix": None})
    failed = wait_for_ssh(t, [vms.portainer, vms.drphoenix], timeout_s=10, sleep=clock.sleep, clock=clock.monotonic)
    # rounds at 0, 2, 4, 6, 8 and 10 s: the deadline is checked after each round
    assert failed == {"drphoenix": "drphoenix (vmid 1002): cannot reach 198.18.42.12:22 over SSH: attempt 6"}
    assert t.rounds == [["portainer", "drphoenix"]] * 2 + [["drphoenix"]] * 4  # portainer failed once
    assert clock.sleeps == [2.0] * 5


def test_an_address_that_answers_as_another_host_is_not_the_vm(vms, clock):
    t = Booting({"portainer": 0, "drphoenix": 0}, answers_as={"drphoenix": "someone-else"})
    lines = []
    failed = wait_for_ssh(t, [vms.portainer, vms.drphoenix], timeout_s=64, sleep=clock.sleep,
                          clock=clock.monotonic, report=lines.append)
    assert failed == {"drphoenix": "198.18.42.12 answers as host 'someone-else', not 'drphoenix'"}
    assert t.rounds[0] == ["portainer", "drphoenix"] and set(map(tuple, t.rounds[1:])) == {("drphoenix",)}
    # progress every 30 s of waiting, naming who is awaited
    assert lines == ["ssh: waiting for drphoenix (30 s of 64)", "ssh: waiting for drphoenix (60 s of 64)"]


def test_a_fully_qualified_hostname_is_the_vm(vms, clock):
    t = Booting({"portainer": 0}, answers_as={"portainer": "portainer.phoenix.thinkheads.ai"})
    assert wait_for_ssh(t, [vms.portainer], timeout_s=10, sleep=clock.sleep, clock=clock.monotonic) == {}


def test_no_attempt_outlives_the_wait(vms, clock):
    # Each attempt's command deadline is the time left (at least 1 s), never longer than
    # vm_access.command_timeout_s: --ssh-timeout S ends about S after the wait began.
    t = Booting({"drphoenix": None})
    t.access = type("Access", (), {"command_timeout_s": 30.0})()
    deadlines = []
    run = t.run

    def recording(host, argv, *, mutating, check=True, timeout=None, **kw):
        deadlines.append(timeout)
        clock.now += 1.5  # each attempt takes a while
        return run(host, argv, mutating=mutating, check=check, **kw)
    t.run = recording
    failed = wait_for_ssh(t, [vms.drphoenix], timeout_s=5, sleep=clock.sleep, clock=clock.monotonic)
    assert set(failed) == {"drphoenix"} and "cannot reach" in failed["drphoenix"]
    assert deadlines[0] == 5 and all(1 <= d <= 5 for d in deadlines) and deadlines == sorted(deadlines, reverse=True)
    assert clock.now - 1000.0 <= 5 + 1.5  # ended within the wait plus one attempt's own time
    assert all(0 <= s <= 2.0 for s in clock.sleeps)


def test_a_tiny_timeout_ends_after_one_round(vms):
    # The real clock: with no time to wait, one round decides.
    t = Booting({"portainer": 0, "drphoenix": None, "cpuworker": 1})
    slept = []
    failed = wait_for_ssh(t, [vms.portainer, vms.drphoenix, vms.cpuworker], timeout_s=0.0, sleep=slept.append)
    assert failed == {"drphoenix": "drphoenix (vmid 1002): cannot reach 198.18.42.12:22 over SSH: attempt 1",
                      "cpuworker": "cpuworker (vmid 1003): cannot reach 198.18.42.13:22 over SSH: attempt 1"}
    assert len(t.rounds) == 1 and slept == []


# -- hand-built outcomes -----------------------------------------------------------------------

def swarm_action(kind: str, vm) -> Action:
    return Action(kind=kind, where=vm, summary=f"{kind} {vm.name}", argv=("docker", kind), target=vm, phase=kind)


def deploy_outcome(**kw) -> DeployOutcome:
    return DeployOutcome(Plan(), **kw)


def answering(yes: bool = True) -> PortainerStatus:
    return PortainerStatus("prod_portainer_service", True, {}, answers=yes)


def applied_result(**kw) -> SyncResult:
    """A run that applied (not a dry run) and whose Portainer answers, unless kw says."""
    return SyncResult(SyncPlan(vms=[]), dry_run=False, **{"status": answering(), **kw})


# -- SyncResult.ok ------------------------------------------------------------------------------

def test_a_dry_run_with_nothing_wrong_is_ok_without_a_status():
    assert SyncResult(SyncPlan(vms=[]), dry_run=True).ok


def test_an_applied_run_is_ok_only_when_portainer_answers():
    assert applied_result().ok
    assert not applied_result(status=None).ok
    assert not applied_result(status=answering(False)).ok


def test_an_applied_run_with_every_stage_fine_is_ok(vms):
    result = applied_result(
        vms=VMsOutcome(plan=[vms.cpuworker], changes=["created cpuworker"]),
        swarm=Outcome(Plan(), applied=[swarm_action("join", vms.cpuworker)]),
        portainer=deploy_outcome(applied=[]))
    assert result.ok


@pytest.mark.parametrize("stage", ["vm-failed", "vm-still-down", "ssh", "swarm-failed", "swarm-blocked",
                                   "swarm-pending", "portainer-failed", "problem"])
def test_any_stage_failing_is_not_ok(vms, stage):
    broken = {
        "vm-failed": dict(vms=VMsOutcome(plan=[vms.cpuworker], failed=[(vms.cpuworker, "no disk")])),
        "vm-still-down": dict(vms=VMsOutcome(plan=[vms.cpuworker], still_down=[vms.cpuworker])),
        "ssh": dict(ssh_failed={"cpuworker": "timed out"}),
        "swarm-failed": dict(swarm=Outcome(Plan(), failed=[(vms.cpuworker, "join failed")])),
        "swarm-blocked": dict(swarm=Outcome(Plan(), blocked=[Blocked(vms.cpuworker, "another swarm")])),
        "swarm-pending": dict(swarm=Outcome(Plan(), pending=[swarm_action("labels", vms.cpuworker)])),
        "portainer-failed": dict(portainer=deploy_outcome(failed=[("prod_portainer_service", "deploy failed")])),
        "problem": dict(problems=["no swarm manager answers: Portainer was not deployed"]),
    }[stage]
    assert not applied_result(**broken).ok
    assert not SyncResult(SyncPlan(vms=[]), dry_run=True, **broken).ok


# -- changes_for / failure_for --------------------------------------------------------------------

def test_changes_for_names_what_the_run_did_on_each_vm(vms):
    result = applied_result(
        vms=VMsOutcome(plan=[vms.portainer, vms.drphoenix, vms.cpuworker],
                       failed=[(vms.cpuworker, "qemu: no disk")]),
        swarm=Outcome(Plan(), applied=[
            swarm_action("init", vms.portainer), swarm_action("join", vms.drphoenix),
            swarm_action("labels", vms.portainer), swarm_action("labels", vms.drphoenix),
            swarm_action("labels", vms.drphoenix)]))
    assert result.changes_for(vms.portainer) == ["created/started", "init", "labels"]
    assert result.changes_for(vms.drphoenix) == ["created/started", "join", "labels"]  # each kind once
    assert result.changes_for(vms.cpuworker) == []  # its create failed: nothing was done to it


def test_changes_for_a_run_that_changed_nothing(vms):
    result = applied_result(vms=VMsOutcome(), swarm=Outcome(Plan()))
    assert [result.changes_for(vm) for vm in (vms.portainer, vms.drphoenix)] == [[], []]
    assert SyncResult(SyncPlan(vms=[]), dry_run=False).changes_for(vms.portainer) == []


def test_failure_for_each_source_and_none(vms, config):
    result = applied_result(
        vms=VMsOutcome(plan=[vms.drphoenix, vms.cpuworker], failed=[(vms.cpuworker, "qemu: no disk")],
                       still_down=[vms.drphoenix]),
        swarm=Outcome(Plan(), failed=[(vms.portainer, "docker swarm init failed")]))
    assert result.failure_for(vms.cpuworker) == "qemu: no disk"
    assert result.failure_for(vms.portainer) == "docker swarm init failed"
    assert result.failure_for(vms.drphoenix) == "still down after the provider started it"
    template = next(vm for vm in config.vms if vm.is_template)
    assert result.failure_for(template) is None


def test_failure_for_ssh_and_blocked(vms):
    result = applied_result(ssh_failed={"drphoenix": "cannot reach 198.18.42.12:22 over SSH: timed out"},
                            swarm=Outcome(Plan(), blocked=[Blocked(vms.cpuworker, "member of another swarm"),
                                                           Blocked("prod_portainer_service", "not a VM")]))
    assert result.failure_for(vms.drphoenix) == "cannot reach 198.18.42.12:22 over SSH: timed out"
    assert result.failure_for(vms.cpuworker) == "member of another swarm"
    assert result.failure_for(vms.portainer) is None


def test_failure_for_says_the_first_cause(vms):
    # A VM the provider failed on is reported as that, not as what followed from it.
    result = applied_result(
        vms=VMsOutcome(plan=[vms.cpuworker], failed=[(vms.cpuworker, "qemu: no disk")],
                       still_down=[vms.cpuworker]),
        ssh_failed={"cpuworker": "timed out"},
        swarm=Outcome(Plan(), failed=[(vms.cpuworker, "join failed")],
                      blocked=[Blocked(vms.cpuworker, "blocked")]))
    assert result.failure_for(vms.cpuworker) == "qemu: no disk"
    result.vms = None
    assert result.failure_for(vms.cpuworker) == "join failed"
    result.swarm.failed = []
    assert result.failure_for(vms.cpuworker) == "timed out"
    result.ssh_failed = {}
    assert result.failure_for(vms.cpuworker) == "blocked"


# -- SyncPlan.empty -----------------------------------------------------------------------------

def test_a_plan_is_empty_when_every_stage_was_read_and_has_nothing_to_do():
    assert SyncPlan(vms=[], swarm=Outcome(Plan(), dry_run=True), portainer=deploy_outcome(dry_run=True)).empty


def test_a_plan_with_a_stage_not_read_yet_is_not_empty():
    assert not SyncPlan(vms=[]).empty
    assert not SyncPlan(vms=[], swarm=Outcome(Plan())).empty  # the swarm has no manager yet
    assert not SyncPlan(vms=[], portainer=deploy_outcome()).empty


@pytest.mark.parametrize("what", ["vms", "swarm", "portainer-changes", "portainer-behind"])
def test_a_plan_with_something_to_do_is_not_empty(vms, what):
    plan = SyncPlan(vms=[], swarm=Outcome(Plan()), portainer=deploy_outcome())
    if what == "vms":
        plan.vms = [vms.cpuworker]
    elif what == "swarm":
        plan.swarm = Outcome(Plan(actions=[swarm_action("join", vms.cpuworker)]))
    elif what == "portainer-changes":
        plan.portainer = deploy_outcome(changes=[ServiceChange("prod_portainer_service_portainer", "change")])
    else:
        plan.portainer = deploy_outcome(behind={"prod_portainer_service_portainer": "0/1"})
    assert not plan.empty


# -- the image gate in sync-all's Portainer stage -----------------------------------------------

class Recorder:
    """A sync Reporter that keeps every line it is given."""

    def __init__(self):
        self.lines: list[str] = []

    def __getattr__(self, name):
        return lambda first=None, *rest, **kw: self.lines.append(str(first))  # the text, not its style


def test_portainer_images_refused_by_their_registry_block_its_stage_and_change_nothing(vms, config):
    """As swarm.deploy's gate: an image the registry says does not exist (or refuses) is
    never deployed by tag; the run says which, fails, and Portainer is left as it runs."""
    from phoenix_tasks.sync import sync_all as sync
    gate = "image portainer/portainer-ce:9.9.9: registry docker.io answered: manifest unknown"
    plan = SyncPlan(vms=[], swarm=Outcome(Plan(), dry_run=True, facts=SimpleNamespace(control=vms.portainer)),
                    portainer=deploy_outcome(dry_run=True), rendered=SimpleNamespace(namespace="prod_portainer_service"),
                    portainer_blocked=[gate])
    assert not plan.empty

    class NoTransport:
        def __getattr__(self, name):
            raise AssertionError(f"the blocked stage used the transport ({name})")

    reporter = Recorder()
    result = sync.apply(config, NoTransport(), None, None, 9443, SimpleNamespace(prune=False), plan, reporter)
    assert not result.ok and result.portainer is None
    assert result.problems == ["Portainer was not deployed: 1 image(s) refused by their registry"]
    assert f"blocked prod_portainer_service: {gate}" in reporter.lines
