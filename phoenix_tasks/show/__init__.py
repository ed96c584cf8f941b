"""How plans, outcomes and the cluster status look in a terminal (rich), one module per area:
plans (every flow's plan and outcome), swarm, stacks, portainer, vms, sync.

Every flow's plan and outcome print the same way.  Text that comes from the config or
from a host is printed with markup off: a label like `zone=[/x]` is data, not style.
The modules import no flow module at load (rich tables and flow facts are imported
inside the functions that need them): start-up time."""
