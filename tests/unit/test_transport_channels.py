"""The transport never opens more channels on one host's connection than
MAX_CHANNELS_PER_HOST (OpenSSH refuses past MaxSessions, default 10): commands and
tunnels beyond it wait for a slot, on every host separately."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from phoenix_tasks.core import transport as transport_mod
from phoenix_tasks.core.model import Host, VMAccess
from phoenix_tasks.core.transport import MAX_CHANNELS_PER_HOST, Transport


def access(tmp_path: Path) -> VMAccess:
    return VMAccess(user="phoenix", port=22, private_key_file=tmp_path / "id", host_key_policy="accept-new",
                    known_hosts_file=tmp_path / "known_hosts", connect_timeout_s=5.0, command_timeout_s=10.0)


class CountingConnection:
    """A connection that counts the commands (channels) open on it at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = self.peak = self.total = 0

    def run(self, command, **kwargs):
        with self.lock:
            self.open += 1
            self.total += 1
            self.peak = max(self.peak, self.open)
        time.sleep(0.02)
        with self.lock:
            self.open -= 1
        return SimpleNamespace(stdout="", stderr="", exited=0)

    def close(self):
        pass


def test_the_bound_stays_below_openssh_default_max_sessions():
    assert 1 <= MAX_CHANNELS_PER_HOST < 10


def test_many_parallel_runs_to_one_host_never_exceed_the_bound(tmp_path):
    conns: dict[str, CountingConnection] = {}
    t = Transport(access(tmp_path), connect=lambda host, acc: conns.setdefault(host.name, CountingConnection()),
                  max_workers=64)
    manager, other = Host("manager", "198.18.0.2"), Host("other", "198.18.0.3")
    jobs = [manager] * 40 + [other] * 20
    threads = [threading.Thread(target=t.run, args=(h, ["docker", "node", "update", f"n{i}"]),
                                kwargs={"mutating": True}) for i, h in enumerate(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert conns["manager"].total == 40 and conns["other"].total == 20
    assert conns["manager"].peak == MAX_CHANNELS_PER_HOST  # bounded, and the bound is used
    assert conns["other"].peak <= MAX_CHANNELS_PER_HOST


def test_a_failed_run_gives_its_slot_back(tmp_path):
    class Broken(CountingConnection):
        def run(self, command, **kwargs):
            raise OSError("no route")

    t = Transport(access(tmp_path), connect=lambda host, acc: Broken())
    host = Host("vm1", "198.18.0.2")
    for _ in range(MAX_CHANNELS_PER_HOST + 2):
        try:
            t.run(host, ["true"], mutating=False)
        except transport_mod.Unreachable:
            pass
    assert t._channel_slots(host).acquire(blocking=False)  # not all slots leaked


class FakeTunnelConn:
    def __init__(self):
        self.client = self
        self.channels = []

    def open(self):
        pass

    def get_transport(self):
        return self

    def open_channel(self, kind, dest, src, timeout):
        ch = SimpleNamespace(closed=False)
        ch.close = lambda: setattr(ch, "closed", True)
        self.channels.append(ch)
        return ch


def test_an_open_tunnel_holds_a_slot_until_it_is_closed(tmp_path):
    conn = FakeTunnelConn()
    t = Transport(access(tmp_path), connect=lambda host, acc: conn)
    host = Host("manager", "198.18.0.2")
    streams = [t.tunnel(host, "10.0.0.5", 9443) for _ in range(MAX_CHANNELS_PER_HOST)]
    assert not t._channel_slots(host).acquire(blocking=False)  # all taken by open tunnels
    streams[0].close()
    streams[0].close()  # twice: released once
    assert conn.channels[0].closed
    slots = t._channel_slots(host)
    assert slots.acquire(blocking=False)
    assert not slots.acquire(blocking=False)
    slots.release()
    for s in streams[1:]:
        s.close()


class SlowToOpen:
    """A connection like Fabric's: `open()` runs the handshake unless `is_connected`;
    it counts handshakes and can fail them."""

    def __init__(self, fail: bool):
        self.fail, self.handshakes, self.is_connected = fail, 0, False
        self.lock = threading.Lock()

    def open(self):
        with self.lock:
            self.handshakes += 1
        time.sleep(0.3)
        if self.fail:
            raise OSError("timed out")
        self.is_connected = True

    def run(self, command, **kwargs):
        assert self.is_connected, "a command ran on a connection that was not open"
        return SimpleNamespace(stdout="", stderr="", exited=0)

    def close(self):
        pass


def test_commands_sent_at_once_to_a_new_connection_share_one_handshake(tmp_path):
    conn = SlowToOpen(fail=False)
    t = Transport(access(tmp_path), connect=lambda host, acc: conn, max_workers=8)
    host = Host("manager", "198.18.0.2")
    results = t.each([host] * 6, lambda h: t.run(h, ["true"], mutating=False), parallel=True)
    assert conn.handshakes == 1
    assert len(results) == 1 and not isinstance(results["manager"], Exception)
    threads = [threading.Thread(target=t.run, args=(host, ["true"]), kwargs={"mutating": False}) for _ in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert conn.handshakes == 1


def test_threads_waiting_on_a_failing_handshake_share_its_failure(tmp_path):
    conn = SlowToOpen(fail=True)
    t = Transport(access(tmp_path), connect=lambda host, acc: conn, max_workers=8)
    host = Host("manager", "198.18.0.2")
    errors = []

    def run():
        try:
            t.run(host, ["true"], mutating=False)
        except transport_mod.Unreachable as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(errors) == 4 and all("cannot reach 198.18.0.2:22 over SSH: timed out" in e for e in errors)
    assert conn.handshakes == 1  # one connect timeout for all four, not four in a row
    try:  # a later command tries again (the host may be back)
        t.run(host, ["true"], mutating=False)
    except transport_mod.Unreachable:
        pass
    assert conn.handshakes == 2
