"""The Docker layer: how Phoenix's model becomes Docker objects and what Docker accepts
(names, interpolation, refusals, the rendered stack document, placement constraints).
Used by config (to check), stack, swarm and portainer; imports only core."""
