"""Clean-up that never deletes a rollback target.

After a deploy that converged: the ledger keeps the last K records of the environment
(`swarm.keep_deploys`); older records are removed, and so are the environment's
content-named configs and secrets that neither a kept record nor a service of the
environment refers to.  Only objects carrying this environment's namespace label are
ever candidates: another environment's are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..core.model import VM
from ..core.transport import Transport
from . import ledger
from .commands import SEPARATOR, object_remove
from ..docker.render import STACK_NAMESPACE_LABEL

LIST_SCRIPT = (
    f'docker config ls --filter "label={STACK_NAMESPACE_LABEL}=$1" --format "config {{{{.Name}}}}"; '
    f'docker secret ls --filter "label={STACK_NAMESPACE_LABEL}=$1" --format "secret {{{{.Name}}}}"; '
    f"echo '{SEPARATOR}'; "
    # what the namespace's services use right now
    f'ids=$(docker service ls -q --filter "label={STACK_NAMESPACE_LABEL}=$1"); '
    'if [ -n "$ids" ]; then docker service inspect --format '
    "'{{range .Spec.TaskTemplate.ContainerSpec.Configs}}config {{.ConfigName}}\n{{end}}"
    "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}secret {{.SecretName}}\n{{end}}' $ids; fi"
)


def list_argv(namespace: str) -> list[str]:
    return ["sh", "-c", LIST_SCRIPT, "phoenix", namespace]


def parse_list(stdout: str) -> tuple[dict[str, str], set[str]]:
    """({object name: kind} of the namespace, names its services use)."""
    objects_part, _, used_part = stdout.partition(SEPARATOR)

    def pairs(text: str) -> Iterable[tuple[str, str]]:
        for line in text.splitlines():
            kind, _, name = line.strip().partition(" ")
            if kind in ("config", "secret") and name:
                yield kind, name

    return {name: kind for kind, name in pairs(objects_part)}, {name for _, name in pairs(used_part)}


@dataclass
class Collected:
    records: list[int] = field(default_factory=list)  # ledger seqs removed
    objects: list[str] = field(default_factory=list)  # "config NAME" / "secret NAME" removed
    kept: int = 0

    @property
    def empty(self) -> bool:
        return not (self.records or self.objects)

    def describe(self) -> str:
        if self.empty:
            return f"clean-up: nothing to remove ({self.kept} deploys kept)"
        return (f"clean-up: removed {len(self.records)} old ledger record(s) and {len(self.objects)} "
                f"config(s)/secret(s) no kept deploy uses ({self.kept} deploys kept)")


def plan_collect(entries: list[ledger.Entry], keep: int, objects: Mapping[str, str],
                 used: set[str]) -> tuple[list[ledger.Entry], list[tuple[str, str]], int]:
    """(records to remove, (kind, name) objects to remove, records kept): pure."""
    kept, old = ledger.retained(entries, keep)
    wanted = set(used)
    for e in kept:
        wanted.update(e.objects)
    doomed = sorted((kind, name) for name, kind in objects.items() if name not in wanted)
    return old, doomed, len(kept)


def collect(transport: Transport, manager: VM, namespace: str, keep: int) -> Collected:
    _, entries = ledger.read(transport, manager, namespace)
    objects, used = parse_list(transport.run(manager, list_argv(namespace), mutating=False).stdout)
    old, doomed, kept = plan_collect(entries, keep, objects, used)
    done = Collected(kept=kept)
    # an entry's result config exists unless the entry is incomplete (docker rm of a
    # missing name fails the whole command's exit status)
    names = [n for e in old for n in ((e.name,) if e.result == ledger.INCOMPLETE else (e.name, e.name + "-r"))]
    if names and transport.run(manager, ledger.remove_argv(names), mutating=True, check=False).ok:
        done.records = [e.seq for e in old]
    for kind in ("config", "secret"):
        batch = [name for k, name in doomed if k == kind]
        if batch:
            res = transport.run(manager, object_remove(kind, batch), mutating=True, check=False)
            if res.ok:
                done.objects += [f"{kind} {name}" for name in batch]
    return done
