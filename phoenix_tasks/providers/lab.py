"""The lab provider: a VM is a network namespace with its own dockerd and sshd.

The machinery lives in ``phoenix_tasks.lab``; this class maps the provider interface
onto it.  `create` makes the namespace, veth and keys; `start` starts the daemons,
waits until both answer and loads the stand-in images.
"""

from __future__ import annotations

import threading

from phoenix_tasks.lab import control, images, keys
from phoenix_tasks.lab import vm as labvm
from phoenix_tasks.lab.checks import BUSYBOX
from phoenix_tasks.model import VM, Config
from phoenix_tasks.providers.base import VMProvider, VMStatus

CREATE_STEPS = ("network", "host-key", "sshd-config")


class LabProvider(VMProvider):
    name = "lab"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.names = control.names_for(config)
        self._prepared = False
        self._lock = threading.Lock()

    def prepare(self) -> list[str]:
        """Checks (root, packages, subnet...), state record, bridge, key, rootfs."""
        with self._lock:
            control.refuse_unless_runnable(self.config)
            done = []
            if control.read_record(self.names.state_dir) is None:
                done.append(f"recorded the lab in {self.names.state_dir}")
            control.write_record(self.config, self.names)
            done += control.ensure_bridge(self.config, self.names)
            if keys.ensure_client_key(self.names):
                done.append(f"generated the lab's SSH key {self.names.private_key}")
            if images.ensure_rootfs_tar(self.names.rootfs_tar, BUSYBOX):
                done.append(f"built the stand-in rootfs {self.names.rootfs_tar}")
            self._prepared = True
            return done

    def _steps(self, vm: VM, wanted: tuple[str, ...] | None) -> list[str]:
        if not self._prepared:
            self.prepare()
        v = self.names.vm(vm.vmid)
        desired = control.desired_for(self.config, self.names, vm)
        labvm.record(v, vm)
        facts = labvm.read_facts(v, vm, desired.ssh_port)
        done = []
        for action in labvm.plan(v, desired, facts):
            if wanted is None or action.step in wanted:
                labvm.apply(v, desired, action)
                done.append(action.summary)
        return done

    def create(self, vm: VM) -> list[str]:
        return self._steps(vm, CREATE_STEPS)

    def start(self, vm: VM) -> list[str]:
        done = self._steps(vm, None)
        v = self.names.vm(vm.vmid)
        labvm.wait_ready(v, vm, self.config.hypervisor.vm_access.port)
        stand_ins = images.stand_ins_for_stacks(self.config.stacks_dir)
        present = labvm.engine_images(v) or frozenset()
        desired = control.desired_for(self.config, self.names, vm)
        for action in labvm.image_actions(v, vm, stand_ins, present):
            labvm.apply(v, desired, action)
            done.append(action.summary)
        if control.write_known_hosts(self.config, self.names, only_existing=True):
            done.append(f"wrote {self.names.known_hosts}")
        return done

    def stop(self, vm: VM) -> list[str]:
        return labvm.stop(self.names.vm(vm.vmid))

    def destroy(self, vm: VM) -> list[str]:
        return labvm.destroy(self.names.vm(vm.vmid))

    def status(self, vm: VM) -> VMStatus:
        (s,) = control.status_of(self.config, [vm])
        return VMStatus(vm, exists=s.namespace, running=s.engine and s.sshd,
                        parts=(("namespace", s.namespace), ("engine", s.engine),
                               ("sshd", s.sshd)))
