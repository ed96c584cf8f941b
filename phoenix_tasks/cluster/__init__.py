"""Flows and reads over the whole cluster, across the swarm and its stacks: node
maintenance (drain waits for the tasks to move; undrain; prune) and the cluster status
(nodes, quorum, environments).  Above swarm/ and stack/."""
