"""The lab provider: a VM is a network namespace with its own dockerd and sshd.

The machinery lives in ``phoenix_tasks.lab``; this class maps the provider interface
onto it.  `prepare` also starts the lab registry; `create` makes the namespace, veth
and keys; `start` starts the daemons, waits until both answer and pulls the stand-in
images from the lab registry (the first VM started pushes them there).
"""

from __future__ import annotations

import threading

from phoenix_tasks.lab import control, mirror
from phoenix_tasks.lab import vm as labvm
from phoenix_tasks.core.model import VM, Config
from phoenix_tasks.providers.base import VMProvider, VMStatus

CREATE_STEPS = ("network", "host-key", "sshd-config")


class LabProvider(VMProvider):
    name = "lab"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.names = control.names_for(config)
        self._prepared = False
        self._lock = threading.Lock()
        self._publisher: mirror.Publisher | None = None

    def prepare(self) -> list[str]:
        """Checks (root, packages, subnet...), state record, bridge, key, rootfs, registry."""
        with self._lock:
            done = control.prepare(self.config, self.names)
            self._prepared = True
            return done

    def _up(self, vm: VM, steps: tuple[str, ...] | None) -> list[str]:
        if not self._prepared:
            self.prepare()
        with self._lock:
            if self._publisher is None:
                self._publisher = control.publisher_for(self.config, self.names)
        result = control.up_vm(self.config, self.names, vm, self._publisher, lambda line: None, steps)
        if result.error:
            raise control.LabFailed(result.error)
        # What publishing did is reported once, with the VM whose start did it.
        return list(result.actions) + self._publisher.take_done()

    def create(self, vm: VM) -> list[str]:
        return self._up(vm, CREATE_STEPS)

    def start(self, vm: VM) -> list[str]:
        done = self._up(vm, None)
        with self._lock:  # VMs start in parallel; one known_hosts for all
            if control.write_known_hosts(self.config, self.names, only_existing=True):
                done.append(f"wrote {self.names.known_hosts}")
        return done

    def stop(self, vm: VM) -> list[str]:
        return labvm.stop(self.names.vm(vm.vmid))

    def destroy(self, vm: VM) -> list[str]:
        return labvm.destroy(self.names.vm(vm.vmid))

    def status(self, vm: VM) -> VMStatus:
        return self.statuses([vm])[0]

    def statuses(self, vms) -> list[VMStatus]:
        """Every VM read in parallel.  Running is what a hypervisor would say: the VM is
        on (its namespace, and its sshd: the VM's "OS").  A stopped dockerd inside a
        running VM is the swarm stage's finding (named there), not something the
        provider repairs; `lab.up` does repair it, as a lab tool."""
        vms = list(vms)
        real = [vm for vm in vms if not vm.is_template]
        read = dict(zip((vm.vmid for vm in real), control.status_of(self.config, real)))
        out = []
        for vm in vms:
            s = read.get(vm.vmid)
            if s is None:
                out.append(VMStatus(vm, exists=False, running=False, detail="a template: the lab makes no templates"))
                continue
            detail = f"namespace {s.netns}" + ("" if s.link else f", link {self.names.vm(vm.vmid).veth} down") \
                + ("" if s.engine or not s.sshd else ", engine not answering")
            out.append(VMStatus(vm, exists=s.namespace, running=s.sshd,
                                parts=(("namespace", s.namespace), ("engine", s.engine), ("sshd", s.sshd)),
                                detail=detail if s.namespace else ""))
        return out
