"""The Proxmox provider: facts -> plan -> apply -> facts again, over the Proxmox VE API.

`plan(vms)` reads the cluster-wide guest list, then each configured VM live (config,
`status/current`, pending changes: never the list's seconds-old name or status), waits
for a VM that a running task holds locked (its clone) and reads it again, then plans
(`plan.plan_vms`).  `apply(plan)` sends the calls (`apply.Applier`) and plans again:
what is still planned then is reported as pending.  The single-VM verbs (`create`,
`start`) are that same plan cut to one VM.  Phoenix never stops nor deletes a
Proxmox VM: `stop` and `destroy` refuse, and say what to run instead.

The client (HTTPS with the API token, see `http`) and the public half of the VM
access key are read when the provider is made, before anything connects: a missing
token or key is a user error with no connection attempted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.core.model import VM, Config
from phoenix_tasks.core.plan import Blocked, Plan
from phoenix_tasks.providers.base import Report, VMProvider, VMsOutcome, VMStatus, plan_targets

from . import api
from .apply import Applier, StepFailed, Timing
from .classify import DRIFTED, LOCKED, MISSING, NOT_REPORTED, TEMPLATE, WRONG_NAME, classify
from .facts import ProxmoxFacts, read_facts
from .plan import Options, plan_vms

MESSAGE = "Phoenix does not {verb} Proxmox VMs: {instead}"


class KeyMissing(PhoenixError):
    pass


def public_key(private_key_file: Path) -> str:
    """The public half of the VM access key, one line: `<file>.pub`, else derived from
    the private key (an unencrypted one)."""
    pub = Path(str(private_key_file) + ".pub")
    try:
        line = pub.read_text().strip().splitlines()[0] if pub.exists() else ""
    except (OSError, IndexError):
        line = ""
    if line:
        return line
    import paramiko  # noqa: PLC0415 - only when there is no .pub file
    try:
        key = paramiko.PKey.from_path(private_key_file)
    except FileNotFoundError:
        raise KeyMissing(f"vm_access.private_key_file {private_key_file} does not exist: cloud-init needs its "
                         "public half for the VMs (make one with ssh-keygen -t ed25519)") from None
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise KeyMissing(f"the public half of vm_access.private_key_file {private_key_file} cannot be read "
                         f"({' '.join(str(exc).split()) or type(exc).__name__}): put it in {pub}") from None
    return f"{key.get_name()} {key.get_base64()}"


def default_client(config: Config, environ: Mapping[str, str]):
    from . import clients  # noqa: PLC0415 - the HTTPS or pvesh client, by proxmox.api
    return clients.client_for(config.hypervisor.proxmox, environ)


class ProxmoxProvider(VMProvider):
    name = "proxmox"

    def __init__(self, config: Config, *, client: Any = None, environ: Mapping[str, str] | None = None,
                 timing: Timing = Timing(), clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        if config.hypervisor.proxmox is None:
            raise PhoenixError(f"{config.hypervisor_file}: provider is proxmox but there is no proxmox section")
        self.config = config
        self.key = public_key(config.hypervisor.vm_access.private_key_file)
        self.client = client if client is not None else default_client(config, os.environ if environ is None else environ)
        self.timing = timing
        kw = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        self._applier_kw = kw
        self.facts: ProxmoxFacts | None = None  # the last read
        self._last = Options(self.key)  # the last plan's options (apply plans again with them)
        self._lock_failures: dict[int, str] = {}  # vmid -> why waiting for its lock failed (last plan)

    def __repr__(self) -> str:
        return f"ProxmoxProvider({self.client!r})"

    def close(self) -> None:
        from . import clients  # noqa: PLC0415
        clients.close(self.client)

    # -- facts ----------------------------------------------------------------------

    def request(self, call: api.ApiCall) -> Any:
        return self.client.request(call)

    def read(self) -> ProxmoxFacts:
        self.facts = read_facts(self.request, self.config)
        return self.facts

    def _applier(self, report: Report) -> Applier:
        return Applier(self.request, self.config, timing=self.timing, report=report, **self._applier_kw)

    def _settled(self, vms: list[VM], report: Report) -> ProxmoxFacts:
        """Facts with no wanted VM locked: wait for the task holding a lock (a clone
        still running, e.g. from a run that was stopped), then read again."""
        facts = self.read()
        applier = None
        self._lock_failures = {}
        for _ in range(3):
            locked = [(vm, c) for vm in vms if (c := classify(self.config, facts, self.key)[vm.vmid]).kind == LOCKED
                      and vm.vmid not in self._lock_failures]
            if not locked:
                break
            applier = applier or self._applier(report)
            for vm, c in locked:
                try:
                    applier.wait_for_lock(vm, c.guest.node, c.guest.lock or (c.config.lock if c.config else "") or "")
                except StepFailed as exc:  # that VM stays blocked, by name and step; the others go on
                    self._lock_failures[vm.vmid] = f"{exc.step}: {exc.why}"
            facts = self.read()
        return facts

    # -- plan and apply ---------------------------------------------------------------

    def plan(self, vms: Iterable[VM], *, apply_drift: bool = False, report: Report = lambda line: None) -> Plan:
        vms = list(vms)
        facts = self._settled(vms, report)
        opts = Options(self.key, apply_drift=apply_drift, vmids=frozenset(vm.vmid for vm in vms))
        self._last = opts
        plan = plan_vms(self.config, facts, opts)
        for i, b in enumerate(plan.blocked):
            why = self._lock_failures.get(getattr(b.subject, "vmid", None))
            if why:
                plan.blocked[i] = Blocked(b.subject, f"{b.reason}; {why}")
        return plan

    def apply(self, plan: Plan, *, report: Report) -> VMsOutcome:
        outcome = VMsOutcome(plan=plan_targets(plan), blocked=list(plan.blocked))
        if not plan.actions:
            return outcome
        for vm_result in self._applier(report).apply(plan):
            outcome.applied += vm_result.applied
            outcome.changes += vm_result.lines
            if vm_result.failed is not None:
                outcome.failed.append((vm_result.vm, f"{vm_result.failed.step}: {vm_result.failed.why}"))
            if any(a.kind == "start" for a in vm_result.applied):
                outcome.started.append(vm_result.vm)
        # read again: what is still planned (for the VMs that did not fail) is pending
        failed = {vm.vmid for vm, _ in outcome.failed}
        wanted = [vm for vm in outcome.plan if vm.vmid not in failed]
        if wanted:
            again = plan_vms(self.config, self.read(), Options(self.key, apply_drift=self._last.apply_drift,
                                                               vmids=frozenset(vm.vmid for vm in wanted)))
            outcome.pending = list(again.actions)
            outcome.still_down = [vm for vm in wanted if not self._running(vm)]
            classes = classify(self.config, self.facts, self.key)
            for vm in outcome.still_down:
                c = classes[vm.vmid]
                outcome.why_down[vm.vmid] = c.detail or (
                    "does not exist when read again" if c.kind == MISSING else
                    f"its live status (GET .../{vm.vmid}/status/current) says {c.guest.status}")
        return outcome

    def _running(self, vm: VM) -> bool:
        """Read live (status/current and the config), never from /cluster/resources."""
        g = self.facts.guest(vm.vmid) if self.facts else None
        return g is not None and g.running and g.name == vm.name

    # -- status -----------------------------------------------------------------------

    def statuses(self, vms: Iterable[VM]) -> list[VMStatus]:
        vms = list(vms)
        facts = self.read()
        classes = classify(self.config, facts, self.key)
        out = []
        for vm in vms:
            c = classes[vm.vmid]
            g = c.guest
            ours = g is not None and c.kind != WRONG_NAME
            detail = {MISSING: "does not exist", WRONG_NAME: c.detail}.get(c.kind, "")
            if ours:
                where = f"node {g.node}" + (f" (config: {self.config.hypervisor.proxmox.node_for(vm)})"
                                            if g.node != self.config.hypervisor.proxmox.node_for(vm) else "")
                parts = [where]
                if c.kind == TEMPLATE:
                    parts.append("template")
                if c.kind == LOCKED:
                    parts.append(c.detail)
                if c.kind == NOT_REPORTED:
                    parts.append(c.detail)
                if c.kind == DRIFTED:
                    parts.append("drift: " + "; ".join(str(d) for d in c.drift))
                if c.pending:
                    parts.append("pending until its next reboot: " + "; ".join(str(p) for p in c.pending))
                detail = ", ".join(parts)
            out.append(VMStatus(vm, exists=ours, running=ours and g.running and not g.template,
                                parts=(("template", bool(g and g.template)), ("locked", c.kind == LOCKED)),
                                detail=detail))
        return out

    def status(self, vm: VM) -> VMStatus:
        return self.statuses([vm])[0]

    # -- one VM -----------------------------------------------------------------------

    def _one(self, vm: VM, keep: Callable[[str], bool]) -> list[str]:
        plan = self.plan([vm])
        if plan.blocked:
            raise PhoenixError("; ".join(f"{b.subject}: {b.reason}" for b in plan.blocked))
        plan.actions = [a for a in plan.actions if keep(a.kind)]
        outcome = self.apply(plan, report=lambda line: None)
        if outcome.failed:
            raise PhoenixError("; ".join(f"{v}: {m}" for v, m in outcome.failed))
        return outcome.changes

    def create(self, vm: VM) -> list[str]:
        """Clone and configure the VM if it does not exist (not started)."""
        return self._one(vm, lambda kind: kind != "start")

    def start(self, vm: VM) -> list[str]:
        return self._one(vm, lambda kind: kind == "start")

    def stop(self, vm: VM) -> list[str]:
        raise PhoenixError(MESSAGE.format(verb="stop", instead=f"run `qm shutdown {vm.vmid}` on the Proxmox host"))

    def destroy(self, vm: VM) -> list[str]:
        raise PhoenixError(MESSAGE.format(verb="delete", instead=f"{vm} stays; remove it by hand on the Proxmox host "
                                          "if you mean to"))
