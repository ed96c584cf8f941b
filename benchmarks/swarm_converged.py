"""Benchmark: a converged swarm run vs the floor, as ratios taken in one run.

For a lab of N VMs (default 3 and 8), brought up and converged first:
  floor    = one parallel `docker info` per VM over a fresh SSH connection each
             (the same transport Phoenix uses: Fabric/paramiko);
  ssh      = the same with OpenSSH's `ssh` binary, for reference;
  phoenix  = a full converged run (init + join + labels phases) on a fresh transport:
             facts, plan, "no changes".
Rounds are interleaved (floor, phoenix, ssh, ...) so that the machine's noise hits
all alike; the medians and their ratio are printed, with the number of remote
commands per VM (must be <= 2, none mutating).

Run as root:  .venv/bin/python benchmarks/swarm_converged.py [--nodes 3 8] [--rounds 7]
Traffic goes only to the lab's own namespaces (198.18.81.0/24 by default).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phoenix_tasks.config import load_config  # noqa: E402
from phoenix_tasks.lab import control  # noqa: E402
from phoenix_tasks.lab.configgen import write_lab_config  # noqa: E402
from phoenix_tasks.swarm import commands  # noqa: E402
from phoenix_tasks.swarm.apply import converge  # noqa: E402
from phoenix_tasks.swarm.plan import Options  # noqa: E402
from phoenix_tasks.core.transport import Transport  # noqa: E402


def floor_fabric(config) -> float:
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        results = t.each(config.swarm_vms, lambda vm: t.run(vm, commands.info(), mutating=False))
    assert all(not isinstance(r, Exception) for r in results.values()), results
    return time.perf_counter() - t0


def floor_ssh(config) -> float:
    access = config.hypervisor.vm_access
    t0 = time.perf_counter()
    procs = [subprocess.Popen(
        ["ssh", "-i", str(access.private_key_file), "-o", f"UserKnownHostsFile={access.known_hosts_file}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-F", "/dev/null",
         f"{access.user}@{vm.address}", "docker", "info", "--format", "'{{json .}}'"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for vm in config.swarm_vms]
    assert all(p.wait() == 0 for p in procs)
    return time.perf_counter() - t0


def phoenix_converged(config) -> tuple[float, Counter, int]:
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        outcome = converge(t, config, Options(label_policy=config.hypervisor.swarm.label_policy))
    elapsed = time.perf_counter() - t0
    assert outcome.ok and outcome.plan.empty, "the lab is not converged"
    return elapsed, Counter(r.vm for r in t.log), len(t.mutating_commands)


def bench(nodes: int, rounds: int, subnet: str, bridge: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="phx-bench-") as tmp:
        write_lab_config(Path(tmp) / "etc", nodes, subnet=subnet, bridge=bridge, state_dir=f"{tmp}/state")
        config = load_config(Path(tmp) / "etc")
        try:
            control.up(config)
            with Transport(config.hypervisor.vm_access) as t:
                first = converge(t, config, Options())
            assert first.ok, first
            floor_fabric(config), phoenix_converged(config)  # warm-up
            fl, ss, ph = [], [], []
            counts, mutating = Counter(), 0
            for _ in range(rounds):
                fl.append(floor_fabric(config))
                elapsed, counts, mutating = phoenix_converged(config)
                ph.append(elapsed)
                ss.append(floor_ssh(config))
            return {"nodes": nodes, "floor": statistics.median(fl), "ssh": statistics.median(ss),
                    "phoenix": statistics.median(ph), "max_cmds": max(counts.values()),
                    "cmds": dict(counts), "mutating": mutating}
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[3, 8])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--subnet", default="198.18.81.0/24")
    ap.add_argument("--bridge", default="phxbench1")
    args = ap.parse_args()
    print("| VMs | floor: parallel docker info (Fabric) | same with OpenSSH | Phoenix converged run | ratio to floor | max commands per VM | mutating |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for n in args.nodes:
        r = bench(n, args.rounds, args.subnet, args.bridge)
        ratio = r["phoenix"] / r["floor"]
        ok &= ratio <= 2.0 and r["max_cmds"] <= 2 and r["mutating"] == 0
        print(f"| {n} | {r['floor'] * 1000:.0f} ms | {r['ssh'] * 1000:.0f} ms | {r['phoenix'] * 1000:.0f} ms "
              f"| {ratio:.2f}x | {r['max_cmds']} | {r['mutating']} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
