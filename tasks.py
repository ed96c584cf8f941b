"""Phoenix task collection: `inv --list` shows every task.

This file only composes collections; each area lives in phoenix_tasks/tasks/.
"""

from invoke import Collection

from phoenix_tasks.tasks import config, lab, swarm, sync

ns = Collection()
ns.add_task(config.validate)
ns.add_task(sync.sync_all)
ns.add_collection(swarm.ns)
ns.add_collection(lab.ns)
