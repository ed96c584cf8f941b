"""Docker Swarm over Fabric: facts (facts.py), classification and plan (plan.py),
apply (apply.py); commands are built in commands.py.  The cluster status and node
maintenance, which also read stacks, are in cluster/."""
