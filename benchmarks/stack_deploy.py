"""Benchmark: stack deploys on a lab, as ratios taken in one run.

A 3-VM lab, its swarm converged, `thinkheads_ai_app` deployed as `dev1`; then:
  floor      = one `docker info` on the manager over a fresh SSH connection (the
               same Fabric/paramiko transport Phoenix uses);
  ssh        = the same with OpenSSH's `ssh` binary, for reference;
  unchanged  = an unchanged `inv swarm.deploy` (the guarded deploy) on a fresh
               transport: render, read the stack's services and resolve the images'
               digests on the manager (two commands sent at once), compare, "no
               changes" (must be 2 commands on the manager, none mutating);
Rounds interleave the three (the machine is shared and noisy); medians and the ratio.
Then changed deploys (LOG_LEVEL toggled, so every service rolls) until converged:
total time and the share spent in Phoenix's wait (Swarm doing the work, plus the 5 s
a task must run before it counts).

Run as root:  .venv/bin/python benchmarks/stack_deploy.py [--rounds 7] [--changed 3]
Traffic goes only to the lab's own namespaces (198.18.85.0/24 by default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phoenix_tasks.config import load_config  # noqa: E402
from phoenix_tasks.lab import control  # noqa: E402
from phoenix_tasks.lab.configgen import write_lab_config  # noqa: E402
from phoenix_tasks.stack import deploy as deploy_module  # noqa: E402
from phoenix_tasks.stack.digests import pin  # noqa: E402
from phoenix_tasks.stack.transaction import Guard, guarded_deploy  # noqa: E402
from phoenix_tasks.docker.render import render  # noqa: E402
from phoenix_tasks.swarm import commands as swarm_commands  # noqa: E402
from phoenix_tasks.swarm.apply import converge  # noqa: E402
from phoenix_tasks.swarm.plan import Options  # noqa: E402
from phoenix_tasks.core.transport import Transport  # noqa: E402

APP = "thinkheads_ai_app"


def floor_fabric(config) -> float:
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        t.run(config.managers[0], swarm_commands.info(), mutating=False)
    return time.perf_counter() - t0


def floor_ssh(config) -> float:
    access, vm = config.hypervisor.vm_access, config.managers[0]
    t0 = time.perf_counter()
    subprocess.run(["ssh", "-i", str(access.private_key_file), "-o", f"UserKnownHostsFile={access.known_hosts_file}",
                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-F", "/dev/null",
                    f"{access.user}@{vm.address}", "docker", "info", "--format", "'{{json .}}'"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def deploy(config, env: str = "dev1"):
    """What `inv swarm.deploy --stack APP --env ENV` runs: the guarded deploy (stack read
    and digests resolved on the manager; lock and ledger only when something changes)."""
    def renderer(digests):
        return render(config.stacks[APP], env, amend=pin(digests) if digests else None)

    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        result = guarded_deploy(t, config, renderer, guard=Guard(command=f"swarm.deploy --stack {APP} --env {env}"),
                                dry_run=False)
    return time.perf_counter() - t0, result.outcome, t


def measure(config_dir: Path, stacks: Path, rounds: int, changed: int,
            each_round: Callable[[object], None] = lambda config: None) -> dict:
    """On a converged lab: a first deploy, then `rounds` of (floor, unchanged deploy,
    `each_round`) interleaved, then `changed` deploys with LOG_LEVEL toggled, Phoenix's
    wait timed inside them.  Seconds, every round; the unchanged deploy's command count."""
    config = load_config(config_dir, stacks)
    _, first, _ = deploy(config)
    assert first.ok, first.failed
    floor, unchanged, commands = [], [], 0
    for _ in range(rounds):
        floor.append(floor_fabric(config))
        elapsed, outcome, t = deploy(config)
        assert outcome.ok and not outcome.changes and len(t.log) == 2 and not t.mutating_commands, outcome
        unchanged.append(elapsed)
        commands = len(t.log)
        each_round(config)
    waited: list[float] = []
    real_wait = deploy_module.wait

    def timed_wait(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real_wait(*a, **kw)
        finally:
            waited.append(time.perf_counter() - t0)

    deploy_module.wait = timed_wait
    totals = []
    manifest = stacks / APP / "phoenix.json"
    try:
        for i in range(changed):
            doc = json.loads(manifest.read_text())
            doc["environments"]["dev1"] = {"variables": {"LOG_LEVEL": ("info", "warning")[i % 2]}}
            manifest.write_text(json.dumps(doc))
            elapsed, outcome, _ = deploy(load_config(config_dir, stacks))
            assert outcome.ok and outcome.changes, outcome.failed
            totals.append(elapsed)
    finally:
        deploy_module.wait = real_wait
    return {"floor": floor, "unchanged": unchanged, "commands": commands, "changed": totals, "waited": waited}


def bench(rounds: int, changed: int, subnet: str, bridge: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="phx-bench-") as tmp:
        stacks = Path(tmp) / "stacks"
        shutil.copytree(Path(__file__).resolve().parent.parent / "stacks", stacks)
        write_lab_config(Path(tmp) / "etc", 3, subnet=subnet, bridge=bridge, state_dir=f"{tmp}/state")
        config = load_config(Path(tmp) / "etc", stacks)
        try:
            control.up(config)
            with Transport(config.hypervisor.vm_access) as t:
                assert converge(t, config, Options()).ok
            ssh: list[float] = []
            r = measure(Path(tmp) / "etc", stacks, rounds, changed, each_round=lambda c: ssh.append(floor_ssh(c)))
            return {"floor": statistics.median(r["floor"]), "ssh": statistics.median(ssh),
                    "unchanged": statistics.median(r["unchanged"]), "changed": statistics.median(r["changed"]),
                    "waited": statistics.median(r["waited"])}
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--changed", type=int, default=3)
    ap.add_argument("--subnet", default="198.18.85.0/24")
    ap.add_argument("--bridge", default="phxbench3")
    args = ap.parse_args()
    r = bench(args.rounds, args.changed, args.subnet, args.bridge)
    ratio = r["unchanged"] / r["floor"]
    print("| floor: docker info on the manager (Fabric) | same with OpenSSH | unchanged deploy | ratio to floor |")
    print("|---|---|---|---|")
    print(f"| {r['floor'] * 1000:.0f} ms | {r['ssh'] * 1000:.0f} ms | {r['unchanged'] * 1000:.0f} ms | {ratio:.2f}x |")
    print()
    print("| changed deploy until converged | of which waiting | share |")
    print("|---|---|---|")
    print(f"| {r['changed']:.1f} s | {r['waited']:.1f} s | {r['waited'] / r['changed']:.0%} |")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
