"""`swarm.rm`: remove one environment of a stack, `<env>_<stack>`, and nothing else.

`docker stack rm` returns before Docker is done: services, tasks and networks go
away asynchronously, and a network still in use when the CLI tries is left behind.
Phoenix waits until the namespace's services, networks, configs and secrets are gone
(removing leftover networks again once their tasks are gone), so an immediate
redeploy works.  Configs and secrets Phoenix created carry the namespace label, so
only this environment's go; external ones are never touched.  Volumes are kept
unless asked (`volumes=True`): they are per node, removed on every swarm VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import PhoenixError
from ..core.model import VM, Config
from ..core.plan import Action, Outcome, Plan
from ..core.transport import Transport
from . import commands
from .facts import on_a_manager

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Leftovers:
    services: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.services or self.networks or self.configs or self.secrets)

    def describe(self) -> str:
        parts = [f"{len(v)} {k if len(v) != 1 else k[:-1]}" for k, v in
                 (("services", self.services), ("networks", self.networks), ("configs", self.configs),
                  ("secrets", self.secrets)) if v]
        return ", ".join(parts) or "nothing"


def parse_leftovers(stdout: str) -> Leftovers:
    found: dict[str, list[str]] = {"service": [], "network": [], "config": [], "secret": []}
    for line in stdout.splitlines():
        kind, _, ident = line.strip().partition(" ")
        if kind in found and ident:
            found[kind].append(ident)
    return Leftovers(*(tuple(found[k]) for k in ("service", "network", "config", "secret")))


@dataclass
class RemoveOutcome(Outcome):
    manager: VM | None = None
    leftovers: Leftovers = field(default_factory=Leftovers)
    volumes: dict[str, list[str]] = field(default_factory=dict)  # VM name -> volume names


def plan_remove(namespace: str, manager: VM, found: Leftovers, volumes: list[tuple[VM, list[str]]]) -> Plan:
    plan = Plan()
    if not found.empty:
        plan.actions.append(Action(kind="rm", where=manager, target=namespace,
                                   summary=f"docker stack rm {namespace} ({found.describe()})",
                                   argv=tuple(commands.stack_rm(namespace))))
    for vm, names in volumes:
        if names:
            plan.actions.append(Action(kind="rm-volumes", where=vm, target=namespace,
                                       summary=f"remove volumes {', '.join(names)} on {vm.name}",
                                       argv=tuple(commands.volume_rm(names))))
    if not volumes and plan.actions:
        plan.warnings.append("volumes are kept (run with --volumes to remove them on every node)")
    return plan


def _volumes(transport: Transport, config: Config, namespace: str) -> list[tuple[VM, list[str]]]:
    """(VM, the namespace's volumes on it) for every swarm VM, read in parallel."""
    results = transport.each(config.swarm_vms, lambda vm: transport.run(vm, commands.node_volumes(namespace),
                                                                        mutating=False))
    out = []
    for vm in config.swarm_vms:
        r = results[vm.name]
        if isinstance(r, PhoenixError):
            raise r
        out.append((vm, [line.strip() for line in r.stdout.splitlines() if line.strip()]))
    return out


def remove(transport: Transport, config: Config, namespace: str, *, dry_run: bool, volumes: bool = False,
           timeout_s: float = DEFAULT_TIMEOUT_S, show: Callable[[RemoveOutcome], None] = lambda o: None,
           clock=time.monotonic, sleep=time.sleep) -> RemoveOutcome:
    manager, res = on_a_manager(transport, config, commands.leftovers(namespace))
    found = parse_leftovers(res.stdout)
    vols = _volumes(transport, config, namespace) if volumes else []
    outcome = RemoveOutcome(plan_remove(namespace, manager, found, vols), dry_run=dry_run, manager=manager,
                            leftovers=found)
    show(outcome)
    if dry_run or outcome.plan.empty:
        return outcome
    deadline = clock() + timeout_s
    for action in outcome.plan.actions:
        if action.kind == "rm":
            # Its exit status is not the truth (a busy network fails it): the read is.
            transport.run(manager, action.argv, mutating=True, check=False)
            outcome.applied.append(action)
            left = _wait_gone(transport, manager, namespace, deadline, clock, sleep)
            if not left.empty:
                outcome.failed.append((namespace, f"still there after {timeout_s:.0f} s: {left.describe()}"))
                return outcome
        else:
            if not _retry(lambda: transport.run(action.where, action.argv, mutating=True, check=False).ok,
                          deadline, clock, sleep):
                outcome.failed.append((action.where, f"{action.summary}: failed (still in use?)"))
                continue
            outcome.applied.append(action)
    outcome.leftovers = parse_leftovers(transport.run(manager, commands.leftovers(namespace), mutating=False).stdout)
    if not outcome.leftovers.empty:
        outcome.pending.append(Action(kind="rm", where=manager, target=namespace,
                                      summary=f"still there: {outcome.leftovers.describe()}"))
    if volumes:
        outcome.volumes = {vm.name: names for vm, names in _volumes(transport, config, namespace) if names}
        outcome.pending += [Action(kind="rm-volumes", where=manager, target=namespace,
                                   summary=f"volumes left on {name}: {', '.join(n)}")
                            for name, n in outcome.volumes.items()]
    return outcome


def _retry(step: Callable[[], bool], deadline: float, clock, sleep, interval_s: float = 0.5) -> bool:
    while True:
        if step():
            return True
        if clock() >= deadline:
            return False
        sleep(interval_s)


def _wait_gone(transport: Transport, manager: VM, namespace: str, deadline: float, clock, sleep) -> Leftovers:
    """Until services, networks, configs and secrets of the namespace are gone; networks
    that outlive their services are removed again (the CLI gives up on busy ones)."""
    while True:
        left = parse_leftovers(transport.run(manager, commands.leftovers(namespace), mutating=False).stdout)
        if left.empty or clock() >= deadline:
            return left
        if not left.services and left.networks:
            transport.run(manager, commands.network_rm(left.networks), mutating=True, check=False)
        if not left.services and (left.configs or left.secrets):
            transport.run(manager, commands.stack_rm(namespace), mutating=True, check=False)
        sleep(0.5)
