"""Docker Swarm over Fabric: facts (facts.py), classification and plan (plan.py),
apply (apply.py), cluster status (status.py); commands are built in commands.py."""
