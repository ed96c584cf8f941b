"""The task collection (`inv --list`): composed here so that an installed Phoenix (no
checkout, no tasks.py) has the same tasks; tasks.py only re-exports it.  Each area
lives in phoenix_tasks/tasks/."""

from invoke import Collection

from phoenix_tasks.tasks import config, lab, maintenance, observe, portainer, shell, stacks, swarm, sync, vm

ns = Collection()
ns.add_task(config.validate)
ns.add_task(sync.sync_all)
ns.add_task(shell.completion)  # phoenix completion bash
for _task in stacks.TASKS:  # stacks per environment live in the swarm.* namespace
    swarm.ns.add_task(_task)
for _task in observe.TASKS:  # reads of an environment: swarm.logs, swarm.ps
    swarm.ns.add_task(_task)
for _task in maintenance.TASKS:  # node maintenance: swarm.drain, swarm.undrain, swarm.prune
    swarm.ns.add_task(_task)
ns.add_collection(swarm.ns)
ns.add_collection(lab.ns)
ns.add_collection(portainer.ns)
ns.add_collection(vm.ns)
