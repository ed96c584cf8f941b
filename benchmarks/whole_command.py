"""Benchmark: the whole command a user types, against the floor and docker's own wait (issue 24).

One 3-VM lab (bridge `phxh24a`, 198.18.140.0/24 by default, state in a temp dir, torn
down afterwards): a cold `inv sync-all` (its stages), a first `inv swarm.deploy` of
thinkheads_ai_app as dev1, then rounds interleaved, every command a fresh process:
  floor          = one parallel `ssh VM docker info` per VM (OpenSSH, lab key and
                   known_hosts; swarm_converged.floor_ssh), and the same in a fresh
                   Python over Phoenix's own transport (sync_all.floor_proc);
  sync-all       = converged `inv sync-all` ("no changes");
  manager floor  = one `ssh manager docker info` (stack_deploy.floor_ssh);
  unchanged      = `inv swarm.deploy --stack thinkheads_ai_app --env dev1` ("no changes");
then changed rounds, interleaved:
  phoenix        = `inv swarm.deploy` with LOG_LEVEL changed in the manifest, until converged;
  docker         = `ssh manager docker stack deploy --detach=false` of the same rendered
                   document (by digest, LOG_LEVEL changed too), which also waits until the
                   tasks are stable.  Phoenix's median is compared with docker's fastest.
Start-up: `inv --list` and `inv validate` (wall and CPU of the child), and each task
module's import cost (`python -X importtime`, cumulative, microseconds).

Run as root:
    .venv/bin/python benchmarks/whole_command.py [--rounds 5] [--changed 3] [--json out.json]
Traffic goes only to the lab's own namespaces and loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import stack_deploy  # noqa: E402  benchmarks/: the same measurements, not copies
import swarm_converged  # noqa: E402
import sync_all  # noqa: E402

from phoenix_tasks.config import load_config  # noqa: E402
from phoenix_tasks.lab import control  # noqa: E402
from phoenix_tasks.lab.configgen import write_lab_config  # noqa: E402
from phoenix_tasks.stack import digests as digests_mod  # noqa: E402
from phoenix_tasks.docker.render import render  # noqa: E402
from phoenix_tasks.core.transport import Transport  # noqa: E402

APP, ENV = "thinkheads_ai_app", "dev1"
GOALS = {"sync_all_3": 1.5, "unchanged": 1.5, "changed": 1.1}
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def deploy_argv() -> tuple[str, ...]:
    return ("swarm.deploy", "--stack", APP, "--env", ENV)


def set_log_level(stacks: Path, value: str) -> None:
    manifest = stacks / APP / "phoenix.json"
    doc = json.loads(manifest.read_text())
    doc["environments"][ENV] = {"variables": {"LOG_LEVEL": value}}
    manifest.write_text(json.dumps(doc))


def docker_wait_deploy(config, text: str, namespace: str) -> float:
    """`docker stack deploy --detach=false` of `text` on the manager over OpenSSH: docker's
    own deploy and wait (until the tasks are stable), timed as a whole process."""
    access, vm = config.hypervisor.vm_access, config.managers[0]
    t0 = time.perf_counter()
    subprocess.run(["ssh", "-i", str(access.private_key_file), "-o", f"UserKnownHostsFile={access.known_hosts_file}",
                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-F", "/dev/null",
                    f"{access.user}@{vm.address}", "docker", "stack", "deploy", "--detach=false", "--prune",
                    "--with-registry-auth", "--compose-file", "-", "--", namespace],
                   input=text, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - t0


def docker_document(etc: Path, stacks: Path, value: str, pinned: dict) -> tuple[str, str]:
    """(the rendered text Phoenix would deploy with LOG_LEVEL=value, its namespace)."""
    set_log_level(stacks, value)
    config = load_config(etc, stacks)
    rendered = render(config.stacks[APP], ENV, amend=digests_mod.pin(pinned) if pinned else None)
    return rendered.text, rendered.namespace


def child_cpu(argv: list[str], env: dict) -> tuple[float, float, int]:
    """(wall s, CPU s of the child, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    code = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), code


def import_us(argv: list[str], env: dict) -> int:
    """The sum of top-level cumulative import times (`-X importtime`), microseconds."""
    res = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, capture_output=True, text=True)
    total = 0
    for line in res.stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m and not m.group(3):
            total += int(m.group(2))
    return total


def task_modules() -> list[str]:
    return sorted(f"phoenix_tasks.tasks.{p.stem}" for p in (REPO / "phoenix_tasks" / "tasks").glob("*.py")
                  if p.stem != "__init__")


def startup(etc: Path, rounds: int) -> dict:
    env = {"PHOENIX_CONFIG_DIR": str(etc), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    walls: dict[str, list] = {"list": [], "validate": [], "python": []}
    cpus: dict[str, list] = {"list": [], "validate": [], "python": []}
    for _ in range(rounds):
        for name, argv in (("list", inv + ["--list"]), ("validate", inv + ["validate"]),
                           ("python", [sys.executable, "-c", "pass"])):
            wall, cpu, code = child_cpu(argv, env)
            assert code == 0, (name, code)
            walls[name].append(wall)
            cpus[name].append(cpu)
    out = {k: {"wall_ms": sync_all.ms(statistics.median(walls[k])), "cpu_ms": sync_all.ms(statistics.median(cpus[k]))}
           for k in walls}
    probes = {"inv --list": ["-m", "invoke", "--search-root", str(REPO), "--list"],
              "inv validate": ["-m", "invoke", "--search-root", str(REPO), "validate"],
              **{m: ["-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); import {m}"] for m in task_modules()}}
    # the median of `rounds` interleaved passes: one pass is too noisy on a shared machine
    passes = [{k: import_us(argv, env) for k, argv in probes.items()} for _ in range(rounds)]
    out["imports_us"] = {k: statistics.median(p[k] for p in passes) for k in probes}
    return out


def bench(rounds: int, changed: int, subnet: str, bridge: str, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="phx-bench-whole-") as tmp:
        etc, stacks, password = Path(tmp) / "etc", Path(tmp) / "stacks", Path(tmp) / "pw"
        shutil.copytree(REPO / "stacks", stacks)
        write_lab_config(etc, 3, subnet=subnet, bridge=bridge, state_dir=f"{tmp}/state")
        password.write_text(sync_all.PASSWORD + "\n")
        config = load_config(etc, stacks)
        try:
            control.up(config)
            out: dict = {}
            elapsed, res = sync_all.sync_all(etc, password)
            assert sync_all.converged_in_one_run(res), res.stdout[-3000:] + res.stderr[-3000:]
            out["cold_sync_all"] = {"ms": sync_all.ms(elapsed), "parts": sync_all.stage_split(elapsed, res.stages)}
            log(f"cold sync-all {elapsed:.1f} s")
            set_log_level(stacks, "info")
            elapsed, res = sync_all.inv(etc, None, *deploy_argv(), stacks=stacks)
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
            log(f"first deploy {elapsed:.1f} s")
            # warm-up: page cache, first connections
            swarm_converged.floor_ssh(config), sync_all.floor_proc(etc), sync_all.sync_all(etc, password)
            cols = {k: [] for k in ("floor_ssh", "floor_proc", "sync_all", "manager_ssh", "unchanged")}
            for _ in range(rounds):
                cols["floor_ssh"].append(swarm_converged.floor_ssh(config))
                elapsed, res = sync_all.sync_all(etc, password)
                assert res.returncode == 0 and "sync-all: converged (no changes)" in res.stdout, \
                    res.stdout[-3000:] + res.stderr[-3000:]
                cols["sync_all"].append(elapsed)
                cols["floor_proc"].append(sync_all.floor_proc(etc))
                cols["manager_ssh"].append(stack_deploy.floor_ssh(config))
                elapsed, res = sync_all.inv(etc, None, *deploy_argv(), stacks=stacks)
                assert res.returncode == 0 and "no changes" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
                cols["unchanged"].append(elapsed)
            log("converged rounds done")
            _, res = sync_all.sync_all(etc, password, "--verbose")
            per_vm, muts, seen = sync_all.echoed_commands(res.stderr)
            _, res = sync_all.inv(etc, None, *deploy_argv(), "--verbose", stacks=stacks)
            dep_vm, dep_muts, dep_seen = sync_all.echoed_commands(res.stderr)
            with Transport(config.hypervisor.vm_access) as t:
                first = render(config.stacks[APP], ENV)
                pinned = digests_mod.resolve(t, config.managers[0], digests_mod.images_of(first.document)).digests
            phx, dock = [], []
            for i in range(changed):
                set_log_level(stacks, f"phx{i}")
                elapsed, res = sync_all.inv(etc, None, *deploy_argv(), stacks=stacks)
                assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
                phx.append(elapsed)
                text, namespace = docker_document(etc, stacks, f"docker{i}", pinned)
                dock.append(docker_wait_deploy(config, text, namespace))
                log(f"changed round {i + 1}: Phoenix {phx[-1]:.1f} s, docker --detach=false {dock[-1]:.1f} s")
            med = {k: statistics.median(v) for k, v in cols.items()}
            out.update({
                "rounds": rounds, "changed_rounds": changed,
                "median_ms": {k: sync_all.ms(v) for k, v in med.items()},
                "sync_all_ratio": med["sync_all"] / med["floor_ssh"],
                "sync_all_ratio_proc": med["sync_all"] / med["floor_proc"],
                "unchanged_ratio": med["unchanged"] / med["manager_ssh"],
                "sync_all_commands_per_vm": dict(per_vm), "sync_all_mutating": muts,
                "sync_all_manager_commands": max(seen.values(), key=len) if seen else [],
                "deploy_commands_per_vm": dict(dep_vm), "deploy_commands": max(dep_seen.values(), key=len) if dep_seen else [],
                "changed_phoenix_ms": [sync_all.ms(x) for x in phx], "changed_docker_ms": [sync_all.ms(x) for x in dock],
                "changed_ratio": statistics.median(phx) / min(dock) if dock else None,
            })
            out["startup"] = startup(etc, rounds)
            log("start-up done")
            return out
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def report(doc: dict) -> str:
    r, m = doc["results"], doc["results"]["median_ms"]
    s = r["startup"]
    lines = [
        f"machine: {doc['machine']['nproc']} cores, {doc['machine']['cpu']}, {doc['machine']['dockerd']}, "
        f"commit {doc['machine']['commit']}, load average at start {doc['machine']['loadavg_at_start']}, "
        f"at end {doc.get('loadavg_at_end')}; {r['rounds']} rounds, {r['changed_rounds']} changed rounds",
        "",
        "| command | Phoenix | anchor | ratio | goal |",
        "|---|---|---|---|---|",
        f"| converged `inv sync-all` | {m['sync_all']:.0f} ms | parallel `ssh VM docker info`: {m['floor_ssh']:.0f} ms "
        f"(same in a fresh Python over Phoenix's transport: {m['floor_proc']:.0f} ms) | {r['sync_all_ratio']:.2f}x "
        f"({r['sync_all_ratio_proc']:.2f}x) | <= {GOALS['sync_all_3']}x |",
        f"| unchanged `inv swarm.deploy` | {m['unchanged']:.0f} ms | `ssh manager docker info`: {m['manager_ssh']:.0f} ms "
        f"| {r['unchanged_ratio']:.2f}x | <= {GOALS['unchanged']}x |",
    ]
    if r["changed_ratio"]:
        phx, dock = r["changed_phoenix_ms"], r["changed_docker_ms"]
        lines.append(f"| changed `inv swarm.deploy` until converged | median {statistics.median(phx) / 1000:.1f} s "
                     f"({min(phx) / 1000:.1f}-{max(phx) / 1000:.1f}) | `docker stack deploy --detach=false`: fastest "
                     f"{min(dock) / 1000:.1f} s ({', '.join(f'{x / 1000:.1f}' for x in dock)}) "
                     f"| {r['changed_ratio']:.2f}x | <= {GOALS['changed']}x |")
    c = r["cold_sync_all"]
    parts = ", ".join(f"{k.removesuffix('_ms')} {v / 1000:.1f} s" for k, v in c["parts"].items())
    lines += ["", f"cold `inv sync-all`: {c['ms'] / 1000:.1f} s, one run ({parts})",
              f"converged sync-all commands per VM: {r['sync_all_commands_per_vm']} (mutating {r['sync_all_mutating']}); "
              f"the busiest VM's: {r['sync_all_manager_commands']}",
              f"unchanged deploy commands: {r['deploy_commands_per_vm']}: {r['deploy_commands']}",
              "", "| start-up | wall | CPU (child) |", "|---|---|---|"]
    for k in ("python", "list", "validate"):
        lines.append(f"| {'`python -c pass`' if k == 'python' else f'`inv {k}`'} | {s[k]['wall_ms']:.0f} ms | {s[k]['cpu_ms']:.0f} ms |")
    lines += ["", "| imports (`-X importtime`, cumulative) | ms |", "|---|---|"]
    for k, v in s["imports_us"].items():
        lines.append(f"| {k} | {v / 1000:.0f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--changed", type=int, default=3)
    ap.add_argument("--subnet", default="198.18.140.0/24")
    ap.add_argument("--bridge", default="phxh24a")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--show", type=Path, help="print the tables of an earlier run's JSON and exit")
    args = ap.parse_args()
    if args.show:
        print(report(json.loads(args.show.read_text())))
        return 0
    if os.geteuid() != 0:
        print("run as root (the lab needs namespaces)", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    info = sync_all.machine()
    started = time.perf_counter()
    results = bench(args.rounds, args.changed, args.subnet, args.bridge, log)
    doc = {"machine": info, "elapsed_s": round(time.perf_counter() - started, 1), "loadavg_at_end": os.getloadavg(),
           "subnet": args.subnet, "bridge": args.bridge, "goals": GOALS, "results": results}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
