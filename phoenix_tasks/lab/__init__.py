"""The local lab: each "VM" is a network namespace on a bridge with its own dockerd and sshd.

Modules, by what they hold:

- ``naming``: names and paths derived from the lab settings and a vmid (pure).
- ``commands``: every command the lab runs, as pure functions returning argv lists.
- ``checks``: refusals before anything is made (root, packages, subnet, IPs).
- ``system``: running commands and reading facts from this machine.
- ``procs``: pid files, liveness, and killing what the lab started (never by name).
- ``keys``: the lab's SSH key pair, host keys, known_hosts and sshd_config.
- ``images``: stand-in images built from busybox-static (and openssl, for TLS ports) for
  every image the stacks use; Docker Hub names; the fingerprint of a build.
- ``registry``: the lab registry process (docker-registry on the bridge address, :5000).
- ``registry_api``: reading that registry over HTTP (a tag's digest and labels).
- ``mirror``: stand-ins pushed to the registry once per bring-up; variants for tests.
- ``var_lib_docker``: the host's /var/lib/docker, where VMs mount their data root:
  made if missing, removed again only by the lab that made it.
- ``vm``: one VM: observe facts, plan actions, apply them.
- ``control``: the whole lab: up, down (also from the state dir alone), status.
- ``configgen``: an N-VM lab configuration directory for tests and benchmarks.
"""
