"""The corpora of broken configurations, one generic runner.

``tests/corpus/<case>/case.json``: configurations that are wrong.
``tests/corpus_hostile/<case>/case.json``: files that are hostile (a FIFO, a symlink to
/dev/zero, 2 MiB, invalid UTF-8, NaN, a YAML alias bomb, deep nesting, control
characters...), read by `phoenix_tasks.core.safe_read`; each runs with a time limit
(`HOSTILE_TIMEOUT_S`) and a memory limit, so a hang or a runaway read fails the case
instead of the suite or the machine.

Each case is data: a base (a copy of etc/ or etc/lab/ as ``etc/``, plus stacks/, in a
tmp dir), patches to apply, and the problems `inv validate` must report, each as
``FILE: /pointer: message`` with the file relative to the tmp root and the pointer
exact.  The runner runs the real task as a subprocess, under ``unshare --net`` when
root, with an audit hook that records any socket connection or DNS lookup: a case
passes only if validation failed (exit 1) with exactly the expected errors and no
connection was attempted.

case.json keys:
  about       one line: what is broken
  base        "etc" (default) or "etc/lab": which config becomes the tmp etc/
  patches     list of {"file": path under the tmp root, "op": ..., ...}; ops:
                set     {"pointer", "value"}  JSON pointer into a JSON file ("-" appends)
                remove  {"pointer"}
                replace_text {"old", "new"}   exact text, must occur once
                write   {"text"} or {"from": a file in the case directory}
                delete  {}                    a file
                rename  {"to"}                a file or directory
  make        {path under the tmp root: spec}, after the patches, for files JSON text
              cannot describe; what is at the path is replaced.  spec:
                {"fifo": true}                a named pipe
                {"symlink": "/dev/zero"}      a symlink to that target
                {"directory": true}           an empty directory
                {"content": [piece, ...]}     the pieces' bytes, concatenated; a piece is
                                              "text" (UTF-8), {"repeat": ["text", n]}
                                              or {"bytes_hex": "ff fe"}
  env         {"PHOENIX_CONFIG_DIR": path relative to the tmp root, ...}
  expected    list of {"file", "pointer", "contains"}: each must be a line of stderr
  forbidden   strings that must not appear in the output (e.g. a secret value)

The expected list is exhaustive: the task's error count must equal its length.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus"
HOSTILE = REPO / "tests" / "corpus_hostile"
HOSTILE_TIMEOUT_S = 20
HOSTILE_MEMORY_BYTES = 2 << 30
INV = REPO / ".venv" / "bin" / "inv"
if not INV.exists():  # a venv elsewhere: the inv next to this interpreter
    INV = Path(sys.executable).parent / "inv"

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UNSHARE = shutil.which("unshare")
NO_NET = [UNSHARE, "--net"] if IS_ROOT and UNSHARE else []

# Loaded by the task's interpreter (PYTHONPATH): records every network attempt.
SITECUSTOMIZE = '''
import os, sys
_log = os.environ.get("PHOENIX_TEST_NET_LOG")
if _log:
    _events = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
               "socket.gethostbyname", "socket.gethostbyaddr", "subprocess.Popen"}
    def _record(event, args, _log=_log, _events=_events):
        if event in _events:
            with open(_log, "a") as f:
                f.write(f"{event} {args!r}\\n")
    sys.addaudithook(_record)
'''


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    net_attempts: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


# -- building a case's tree -----------------------------------------------------

def base_tree(dest: Path, base: str = "etc") -> Path:
    """dest/etc (a copy of the repo's etc/ or etc/lab/) and dest/stacks."""
    src = REPO / base
    (dest / "etc").mkdir(parents=True)
    for f in src.glob("*.json"):
        shutil.copy(f, dest / "etc" / f.name)
    shutil.copytree(REPO / "stacks", dest / "stacks")
    return dest


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _walk(doc, pointer: str):
    """(parent container, last token) for an RFC 6901 pointer."""
    tokens = [_unescape(t) for t in pointer.split("/")[1:]]
    assert tokens, f"pointer {pointer!r} names the whole document"
    parent = doc
    for t in tokens[:-1]:
        parent = parent[int(t)] if isinstance(parent, list) else parent[t]
    return parent, tokens[-1]


def apply_patch(root: Path, case_dir: Path, patch: dict) -> None:
    target = root / patch["file"]
    op = patch["op"]
    if op in ("set", "remove"):
        doc = json.loads(target.read_text())
        parent, last = _walk(doc, patch["pointer"])
        if op == "set":
            if isinstance(parent, list):
                parent.append(patch["value"]) if last == "-" else parent.__setitem__(int(last), patch["value"])
            else:
                parent[last] = patch["value"]
        else:
            del parent[int(last) if isinstance(parent, list) else last]
        target.write_text(json.dumps(doc, indent=2) + "\n")
    elif op == "replace_text":
        text = target.read_text()
        assert text.count(patch["old"]) == 1, f"{patch['old']!r} must occur once in {patch['file']}"
        target.write_text(text.replace(patch["old"], patch["new"]))
    elif op == "write":
        target.parent.mkdir(parents=True, exist_ok=True)
        text = patch["text"] if "text" in patch else (case_dir / patch["from"]).read_text()
        target.write_text(text)
    elif op == "delete":
        target.unlink()
    elif op == "rename":
        target.rename(root / patch["to"])
    else:
        raise AssertionError(f"unknown patch op {op!r}")


def _piece(piece) -> bytes:
    if isinstance(piece, str):
        return piece.encode("utf-8")
    if "repeat" in piece:
        text, times = piece["repeat"]
        return text.encode("utf-8") * times
    if "bytes_hex" in piece:
        return bytes.fromhex(piece["bytes_hex"])
    raise AssertionError(f"unknown content piece {piece!r}")


def make_entry(target: Path, spec: dict) -> None:
    """Put at target what spec describes (see the module docstring), replacing what is there."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if spec.get("fifo"):
        os.mkfifo(target)
    elif "symlink" in spec:
        target.symlink_to(spec["symlink"])
    elif spec.get("directory"):
        target.mkdir()
    elif "content" in spec:
        target.write_bytes(b"".join(_piece(p) for p in spec["content"]))
    else:
        raise AssertionError(f"unknown make spec {spec!r}")


def build_case(case: dict, case_dir: Path, dest: Path) -> Path:
    root = base_tree(dest, case.get("base", "etc"))
    for patch in case.get("patches", []):
        apply_patch(root, case_dir, patch)
    for path, spec in case.get("make", {}).items():
        make_entry(root / path, spec)
    return root


# -- running the real task --------------------------------------------------------

def _memory_limit(limit: int):
    def apply() -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def run_validate(root: Path, env_overrides: dict | None = None, *, hook_dir: Path | None = None,
                 timeout: float = 60, memory_limit: int | None = None) -> Run:
    """`inv validate` in a fresh process, cwd=root, config from root/etc and root/stacks.

    timeout: seconds before the process is killed (subprocess.TimeoutExpired);
    memory_limit: its address space in bytes (RLIMIT_AS), None for no limit.
    """
    hook_dir = hook_dir or root.parent / (root.name + ".hook")
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = hook_dir / "net.log"
    net_log.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    env.update(
        PHOENIX_CONFIG_DIR=str(root / "etc"),
        PHOENIX_STACKS_DIR=str(root / "stacks"),
        PHOENIX_TEST_NET_LOG=str(net_log),
        PYTHONPATH=str(hook_dir),
        COLUMNS="400",
        NO_COLOR="1",
    )
    for key, value in (env_overrides or {}).items():
        env[key] = str(root / value)
    proc = subprocess.run(
        [*NO_NET, str(INV), "--search-root", str(REPO), "validate"],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
        preexec_fn=_memory_limit(memory_limit) if memory_limit else None,
    )
    attempts = [line for line in net_log.read_text().splitlines() if line]
    return Run(proc.returncode, proc.stdout, proc.stderr, attempts)


def matching_lines(run: Run, file: str, pointer: str, contains: str, severity: str = "error") -> list[str]:
    prefix = f"{file}: {pointer}: "
    found = []
    for line in run.lines:
        if not line.startswith(prefix):
            continue
        rest = line[len(prefix):]
        if (severity == "warning") != rest.startswith("warning: "):
            continue
        if contains in rest:
            found.append(line)
    return found


def error_count(run: Run) -> int:
    """The task's own count, from its last line ("N errors; nothing else ...")."""
    m = re.search(r"^(\d+) errors?; nothing else was checked", run.stderr, re.M)
    assert m, f"no error summary in stderr:\n{run.stderr}"
    return int(m.group(1))


# -- the corpus -------------------------------------------------------------------

CASES = sorted(p for p in CORPUS.iterdir() if (p / "case.json").is_file())


def test_corpus_is_big_enough():
    assert len(CASES) >= 35, [c.name for c in CASES]


def check_case(case_dir: Path, tmp_path: Path, **limits) -> None:
    """Build the case, run `inv validate` on it (with limits: see run_validate), check it."""
    case = json.loads((case_dir / "case.json").read_text())
    assert case.get("about") and case.get("expected"), "a case says what it breaks and what it expects"
    root = build_case(case, case_dir, tmp_path / "tree")

    try:
        run = run_validate(root, case.get("env"), **limits)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`inv validate` gave no answer within {limits.get('timeout', 60)} s (killed): it hangs on this case")

    report = f"exit {run.returncode}\n--- stdout\n{run.stdout}--- stderr\n{run.stderr}"
    assert run.returncode == 1, report
    assert "Traceback" not in run.stderr, report
    assert run.net_attempts == [], f"network attempted: {run.net_attempts}"
    for exp in case["expected"]:
        assert matching_lines(run, exp["file"], exp["pointer"], exp["contains"]), (
            f"missing line {exp['file']}: {exp['pointer']}: ...{exp['contains']}...\n{report}"
        )
    assert error_count(run) == len(case["expected"]), f"errors not listed in case.json\n{report}"
    for secret in case.get("forbidden", []):
        assert secret not in run.stdout + run.stderr, f"{secret!r} leaked into the output"


@pytest.mark.parametrize("case_dir", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case_dir: Path, tmp_path: Path):
    check_case(case_dir, tmp_path)


# -- the hostile corpus -----------------------------------------------------------

HOSTILE_CASES = sorted(p for p in HOSTILE.iterdir() if (p / "case.json").is_file()) if HOSTILE.is_dir() else []


def test_hostile_corpus_is_big_enough():
    assert len(HOSTILE_CASES) >= 40, [c.name for c in HOSTILE_CASES]


@pytest.mark.parametrize("case_dir", HOSTILE_CASES, ids=[c.name for c in HOSTILE_CASES])
def test_hostile_case(case_dir: Path, tmp_path: Path):
    check_case(case_dir, tmp_path, timeout=HOSTILE_TIMEOUT_S, memory_limit=HOSTILE_MEMORY_BYTES)


def test_the_wrapper_leaves_no_network():
    """Under the wrapper even a reachable-looking address is unreachable: nothing leaves."""
    if not NO_NET:
        pytest.skip("not root (or no unshare): corpus cases ran WITHOUT `unshare --net`; "
                    "only the audit hook checked that no connection was attempted")
    code = ("import socket\n"
            "try:\n    socket.create_connection(('192.0.2.1', 22), timeout=5)\n"
            "except OSError as e:\n    print(e.errno)\n")
    out = subprocess.run([*NO_NET, sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "101", out  # ENETUNREACH: no route, no interface up


def test_the_audit_hook_sees_a_connection(tmp_path: Path):
    """The no-connection check is not vacuous: a process that connects is caught."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = hook / "net.log"
    code = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n    pass\n"
    env = {**os.environ, "PYTHONPATH": str(hook), "PHOENIX_TEST_NET_LOG": str(log)}
    subprocess.run([*NO_NET, sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert "socket.connect" in log.read_text()
