"""Benchmark: `lab.up` for N VMs, time until every VM is ready.

Ready = SSH answers with the lab key (strict host keys) and `docker info` works there,
on every VM.  Each size runs on a fresh lab (own subnet, bridge and state dir) that is
torn down afterwards.

    sudo .venv/bin/python benchmarks/lab_up.py            # 3 and 8 VMs, 3 rounds each
    sudo .venv/bin/python benchmarks/lab_up.py --sizes 3 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import fabric  # noqa: E402
import paramiko  # noqa: E402

from phoenix_tasks.config import load_config  # noqa: E402
from phoenix_tasks.lab import control  # noqa: E402
from phoenix_tasks.lab.configgen import write_lab_config  # noqa: E402

SUBNET = "198.18.88.0/24"
BRIDGE = "phxbench0"


def docker_info_over_ssh(config, vm) -> str:
    access = config.hypervisor.vm_access
    conn = fabric.Connection(
        host=vm.address, user=access.user, port=access.port, connect_timeout=5,
        config=fabric.Config(overrides={"load_ssh_configs": False}),
        connect_kwargs={"key_filename": str(access.private_key_file),
                        "look_for_keys": False, "allow_agent": False})
    conn.client.load_host_keys(str(access.known_hosts_file))
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with conn:
        return conn.run("docker info --format '{{.Name}}'", hide=True,
                        in_stream=False).stdout.strip()


def one_round(nodes: int) -> tuple[float, float]:
    """(seconds lab.up took, seconds until every VM answered docker info over SSH)."""
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp:
        write_lab_config(Path(tmp) / "etc", nodes, subnet=SUBNET, bridge=BRIDGE,
                         state_dir=f"{tmp}/state")
        config = load_config(Path(tmp) / "etc")
        try:
            start = time.monotonic()
            control.up(config)
            up_s = time.monotonic() - start
            with ThreadPoolExecutor(max_workers=nodes) as pool:
                names = list(pool.map(lambda vm: docker_info_over_ssh(config, vm),
                                      config.real_vms))
            ready_s = time.monotonic() - start
            assert names == [vm.name for vm in config.real_vms], names
            return up_s, ready_s
        finally:
            control.down(config.hypervisor.lab.state_dir, BRIDGE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'VMs':>4} {'round':>5} {'lab.up s':>9} {'ready s':>8}")
    for nodes in args.sizes:
        ready = []
        for r in range(args.rounds):
            up_s, ready_s = one_round(nodes)
            ready.append(ready_s)
            print(f"{nodes:>4} {r + 1:>5} {up_s:>9.2f} {ready_s:>8.2f}", flush=True)
        print(f"{nodes:>4} median ready {statistics.median(ready):.2f} s, "
              f"max {max(ready):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
