"""Stand-in images: compose parsing, the rootfs (pure), and the entrypoint script run
for real by Debian's busybox-static (no network, no Docker)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from phoenix_tasks.lab import commands
from phoenix_tasks.lab.images import (BUSYBOX_APPLETS, TLS_CERT, TLS_KEY, ComposeUnreadable,
                                      SERVE_SCRIPT, RootfsParts, StandIn, StandInUnbuildable,
                                      ensure_tls_pair, ldd_libraries, rootfs_tar_bytes,
                                      stand_ins_for_stacks, stand_ins_from_compose)

REPO = Path(__file__).resolve().parents[2]


def test_the_repositorys_stacks_give_one_stand_in_per_image_with_its_ports():
    got = {s.image: s.ports for s in stand_ins_for_stacks(REPO / "stacks")}
    assert got == {
        "portainer/agent:2.21.4": (9001,),
        "portainer/portainer-ce:2.21.4": (9000, 9443),
        "qdrant/qdrant:v1.12.4": (6333,),
        "thinkheads/ai-api:1.4.0": (8000,),
        "thinkheads/ai-inference:1.4.0": (8080,),
    }


def test_short_and_long_port_syntaxes_and_shared_images():
    doc = {"services": {
        "a": {"image": "x/y:1", "ports": ["8080:80", "127.0.0.1:9000:9001/udp", 7000,
                                          {"target": 443, "published": 8443}],
              "expose": ["5000-5002", "6000/tcp"]},
        "b": {"image": "x/y:1", "expose": [81]},
        "c": {"build": "."},
    }}
    (s,) = stand_ins_from_compose([("f.yml", doc)])
    assert s == StandIn("x/y:1", (80, 81, 443, 5000, 5001, 5002, 6000, 7000, 9001))


@pytest.mark.parametrize("service, message", [
    ({"image": "${IMAGE}"}, "literal image names"),
    ({"image": "a:1", "ports": [{"published": 80}]}, "without 'target'"),
    ({"image": "a:1", "expose": ["http"]}, "cannot read a container port"),
    ({"image": "a:1", "expose": ["1-5000"]}, "out of bounds"),
])
def test_unreadable_compose_entries_are_named(service, message):
    with pytest.raises(ComposeUnreadable, match=message) as e:
        stand_ins_from_compose([("stacks/s/docker-compose.yml", {"services": {"svc": service}})])
    assert "stacks/s/docker-compose.yml: service svc" in str(e.value)


def test_image_ignores_its_arguments_and_serves_each_port():
    changes = StandIn("portainer/portainer-ce:2.21.4", (9000, 9443)).changes()
    entrypoint = json.loads(changes[0].removeprefix("ENTRYPOINT "))
    # sh -c SCRIPT $0 ...: arguments appended by a stack land in $0.. and are unused.
    assert entrypoint == ["/bin/sh", "-c", SERVE_SCRIPT, "stand-in"]
    assert "$@" not in SERVE_SCRIPT and "$1" not in SERVE_SCRIPT
    assert 'ENV PHX_PORTS="9000 9443"' in changes
    assert "httpd -f" in SERVE_SCRIPT and "trap" in SERVE_SCRIPT


def fake_parts(tmp_path) -> RootfsParts:
    """Stand-ins for the machine's files (made once per tmp_path); the loader is
    reached through a symlink, as /lib64/ld-linux-x86-64.so.2 is on Debian."""
    names = ("busybox", "openssl", "libssl.so.3", "ld-real.so.2", "cert.pem", "key.pem")
    files = {name: tmp_path / name for name in names}
    loader = tmp_path / "lib64" / "ld-linux-x86-64.so.2"
    if not loader.is_symlink():
        for name, path in files.items():
            path.write_bytes(f"content of {name}".encode())
        loader.parent.mkdir()
        loader.symlink_to(files["ld-real.so.2"])
    return RootfsParts(files["busybox"], files["openssl"], (files["libssl.so.3"], loader),
                       files["cert.pem"], files["key.pem"])


def test_rootfs_holds_busybox_and_its_applet_links(tmp_path):
    data = rootfs_tar_bytes(fake_parts(tmp_path))
    assert data == rootfs_tar_bytes(fake_parts(tmp_path))  # deterministic: rewritten only on change
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("bin/busybox").read() == b"content of busybox"
    for applet in ("sh", "sleep", "httpd", "wget"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777


def test_rootfs_holds_openssl_its_libraries_where_ldd_found_them_and_the_tls_pair(tmp_path):
    parts = fake_parts(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(rootfs_tar_bytes(parts))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        read = lambda name: tar.extractfile(name).read()  # noqa: E731
        assert read("usr/bin/openssl") == b"content of openssl"
        assert members["usr/bin/openssl"].mode == 0o755
        for library in parts.libraries:  # at its own absolute path: the loader looks there
            name = str(library).lstrip("/")
            assert members[name].isfile(), name
        # The loader's symlink is copied as the file it names (its target is not in the image).
        assert read(str(parts.libraries[1]).lstrip("/")) == b"content of ld-real.so.2"
        assert read(TLS_CERT) == b"content of cert.pem" and members[TLS_CERT].mode == 0o644
        assert read(TLS_KEY) == b"content of key.pem" and members[TLS_KEY].mode == 0o600
        # Every directory comes before what it holds, once.
        order = [m.name for m in tar.getmembers()]
        for name in order:
            parent = name.rpartition("/")[0]
            assert not parent or (members[parent].isdir() and order.index(parent) < order.index(name))
        assert len(order) == len(set(order))
    # The script names the pair where the image holds it.
    assert f"-cert /{TLS_CERT} -key /{TLS_KEY}" in SERVE_SCRIPT


def test_a_file_missing_from_this_machine_is_named(tmp_path):
    parts = fake_parts(tmp_path)
    (tmp_path / "openssl").unlink()
    with pytest.raises(StandInUnbuildable, match="cannot read .*openssl"):
        rootfs_tar_bytes(parts)


LDD_DEBIAN_12 = """\
\tlinux-vdso.so.1 (0x00007ffd4b5f2000)
\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f19bdb27000)
\tlibcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f19bd600000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f19bd41e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f19bdcd3000)
"""


def test_ldd_output_gives_every_library_and_the_loader_but_not_the_vdso():
    assert ldd_libraries(LDD_DEBIAN_12) == (
        Path("/lib/x86_64-linux-gnu/libssl.so.3"), Path("/lib/x86_64-linux-gnu/libcrypto.so.3"),
        Path("/lib/x86_64-linux-gnu/libc.so.6"), Path("/lib64/ld-linux-x86-64.so.2"))
    assert commands.ldd(Path("/usr/bin/openssl")) == ["ldd", "/usr/bin/openssl"]


def test_a_library_ldd_cannot_find_is_an_error():
    with pytest.raises(StandInUnbuildable, match="libcrypto.so.3 not found"):
        ldd_libraries(LDD_DEBIAN_12 + "\tlibcrypto.so.3 => not found\n")


def test_the_tls_pair_is_made_once_on_this_machine(tmp_path):
    cert, key = tmp_path / "images" / "cert.pem", tmp_path / "images" / "key.pem"
    ran = []

    def run(argv):
        ran.append(argv)
        cert.write_text("cert")
        key.write_text("key")

    assert ensure_tls_pair(cert, key, run) is True
    assert ran == [["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                    "-subj", "/CN=phoenix-lab-stand-in", "-keyout", str(key), "-out", str(cert)]]
    assert ensure_tls_pair(cert, key, run) is False and len(ran) == 1
    key.unlink()  # half a pair is made again, whole
    assert ensure_tls_pair(cert, key, run) is True and len(ran) == 2


# --- the entrypoint script, run by the real busybox sh --------------------------------
BUSYBOX = Path("/bin/busybox")
SCRIPT_APPLETS = ("echo", "sleep", "httpd")  # every busybox program SERVE_SCRIPT runs
SCRIPT_PROGRAMS = (*SCRIPT_APPLETS, "openssl")  # openssl: /usr/bin/openssl in the image


def test_script_reads_only_its_own_variables_and_runs_only_image_applets():
    names = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", SERVE_SCRIPT))
    assert names == {"PHX_STANDIN_EXIT", "PHX_STANDIN_DELAY", "PHX_STANDIN_FOR",
                     "PHX_PORTS", "me", "delay", "port"}
    for local in ("me", "delay"):  # shell variables are assigned before they are read
        assert SERVE_SCRIPT.index(f"{local}=") < SERVE_SCRIPT.index(f"${local}")
    assert set(SCRIPT_APPLETS) <= set(BUSYBOX_APPLETS)
    # Commands the script runs: the first word of each command, after `;;`, `&`, `)`...
    words = set(re.findall(r"(?:^|[;&|)]|\bdo|\bthen)\s*([a-z_]+)\b", SERVE_SCRIPT, re.M))
    keywords = {"trap", "me", "case", "esac", "for", "do", "done", "delay", "exit", "wait"}
    assert words - keywords <= set(SCRIPT_PROGRAMS), words - keywords
    assert "-eq" not in SERVE_SCRIPT and "$@" not in SERVE_SCRIPT


# An openssl that only notes how it was started (one line in the file `calls` of its
# working directory) and then waits: which port gets TLS, without any network.
STUB_OPENSSL = '#!/bin/busybox sh\necho "openssl $*" >> calls\nexec sleep 600\n'


@pytest.fixture
def stand_in(tmp_path):
    """start(**env) runs SERVE_SCRIPT as the image's entrypoint does, with arguments
    that must be ignored, and only the given environment (None: unset). PATH holds
    links to /bin/busybox for the script's applets only, and an openssl stub that
    writes its command line to tmp_path/calls.  (busybox sh runs its own applets
    whatever PATH says, so httpd is the real one: without /www here it stops at its
    chdir, before it opens a socket.)  Output goes to files (a background `sleep` may
    outlive the shell); each run is its own process group, killed at the end."""
    if not BUSYBOX.is_file():
        pytest.skip(f"needs Debian's busybox-static at {BUSYBOX} "
                    "(apt-get install -y busybox-static)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in SCRIPT_APPLETS:
        (bin_dir / applet).symlink_to(BUSYBOX)
    (bin_dir / "openssl").write_text(STUB_OPENSSL)
    (bin_dir / "openssl").chmod(0o755)
    started = []

    class Run:
        def __init__(self, env):
            n = len(started)
            self.out_file, self.err_file = tmp_path / f"out{n}", tmp_path / f"err{n}"
            base = {"PHX_STANDIN_FOR": "x/y:1", "PHX_PORTS": "", "PHX_STANDIN_DELAY": "0",
                    "PATH": str(bin_dir)}
            full = {k: v for k, v in {**base, **env}.items() if v is not None}
            with open(self.out_file, "wb") as out, open(self.err_file, "wb") as err:
                self.proc = subprocess.Popen(
                    [str(BUSYBOX), "sh", "-c", SERVE_SCRIPT, "stand-in",
                     "some", "args", "$1", "PHX_STANDIN_EXIT=9"],
                    env=full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    cwd=tmp_path, start_new_session=True)
            started.append(self.proc)

        def finish(self, timeout: float = 10) -> tuple[int, str, str]:
            code = self.proc.wait(timeout=timeout)
            return code, self.out_file.read_text(), self.err_file.read_text()

    yield lambda **env: Run(env)
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


@pytest.mark.parametrize("code", ["0", "3", "255"])
def test_exit_mode_says_what_it_does_and_exits_with_the_code(stand_in, code):
    assert stand_in(PHX_STANDIN_EXIT=code).finish() == (
        int(code), f"stand-in for x/y:1: exiting with {code} after 0 s\n", "")


def test_exit_mode_waits_one_second_by_default(stand_in):
    code, out, err = stand_in(PHX_STANDIN_EXIT="3", PHX_STANDIN_DELAY=None).finish()
    assert (code, out, err) == (3, "stand-in for x/y:1: exiting with 3 after 1 s\n", "")


def test_exit_mode_honours_the_delay_and_stops_at_once_on_term(stand_in):
    run = stand_in(PHX_STANDIN_EXIT="5", PHX_STANDIN_DELAY="30")
    time.sleep(0.5)
    assert run.proc.poll() is None
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish(timeout=5) == (
        0, "stand-in for x/y:1: exiting with 5 after 30 s\n", "")


@pytest.mark.parametrize("value", ["x", "300", "256", "-1", "03", " 3", "3 ", "1.0"])
def test_a_bad_exit_code_is_refused_with_exit_2(stand_in, value):
    assert stand_in(PHX_STANDIN_EXIT=value).finish() == (
        2, "", f"stand-in: PHX_STANDIN_EXIT must be a number 0-255, not '{value}'\n")


@pytest.mark.parametrize("value", ["x", "-1", "1.5", "1234567890"])
def test_a_bad_delay_is_refused_with_exit_2(stand_in, value):
    code, out, err = stand_in(PHX_STANDIN_EXIT="0", PHX_STANDIN_DELAY=value).finish()
    assert (code, out) == (2, "")
    assert err == ("stand-in: PHX_STANDIN_DELAY must be a whole number of seconds "
                   f"(at most 9 digits), not '{value}'\n")


@pytest.mark.parametrize("exit_value", [None, ""])
def test_serve_mode_keeps_running_until_term_then_exits_0(stand_in, exit_value):
    run = stand_in(PHX_STANDIN_EXIT=exit_value, PHX_STANDIN_DELAY="x")  # delay unused
    time.sleep(0.5)
    assert run.proc.poll() is None
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish(timeout=5) == (
        0, "stand-in for x/y:1: serving on no port (PHX_PORTS is empty)\n", "")


def test_ports_ending_in_443_serve_tls_with_openssl_the_others_http(stand_in, tmp_path):
    assert not Path("/www").exists()  # (else the real httpd below would serve)
    run = stand_in(PHX_PORTS="80 443 1443 4430 8443 9000 9443 44300")
    calls = tmp_path / "calls"
    deadline = time.monotonic() + 10
    while len(calls.read_text().splitlines() if calls.exists() else []) < 4 or \
            run.err_file.read_text().count("\n") < 4:
        assert time.monotonic() < deadline, run.err_file.read_text()
        time.sleep(0.05)
    time.sleep(0.2)  # nothing more comes
    tls = sorted(calls.read_text().splitlines(), key=lambda line: int(line.split()[5]))
    assert tls == [f"openssl s_server -quiet -www -accept {port} -cert /{TLS_CERT} -key /{TLS_KEY}"
                   for port in (443, 1443, 8443, 9443)]
    # The four other ports went to httpd (which stopped at once: no /www here).
    assert run.err_file.read_text() == "httpd: can't change directory to '/www': No such file or directory\n" * 4
    run.proc.send_signal(signal.SIGTERM)  # openssl in the background: TERM still ends it at once
    assert run.finish(timeout=5) == (
        0, "stand-in for x/y:1: serving on 80 443 1443 4430 8443 9000 9443 44300\n",
        "httpd: can't change directory to '/www': No such file or directory\n" * 4)
