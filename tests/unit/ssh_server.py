"""A tiny SSH server in the test process (paramiko), for transport tests without a lab.

Commands it knows (the exact command line the client sends):
  `echo WORDS`    prints WORDS, exit 0
  `cat`           prints its stdin back, exit 0
  `sleep-forever` never exits (a command stuck on a hung Docker engine)
  `hang-exec`     never answers the exec request (an sshd that hangs mid-session)
anything else: exit 127.  `hang_sessions=True`: no session is ever opened (an sshd
that accepts the connection and then hangs).

And two listeners that are not SSH servers: `not_ssh()` answers HTTP and closes;
`silent()` accepts and never says anything (an sshd stopped with SIGSTOP).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko


@dataclass
class Server:
    port: int
    key_file: Path
    commands: list[str] = field(default_factory=list)
    connections: int = 0


class _Interface(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey, release: threading.Event, hang_sessions: bool, seen: list):
        self.client_key, self.release, self.hang_sessions, self.seen = client_key, release, hang_sessions, seen

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if key.get_base64() == self.client_key.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if self.hang_sessions:
            self.release.wait()
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        line = command.decode()
        self.seen.append(line)
        if line == "hang-exec":
            self.release.wait()  # in the server's transport thread: the whole session hangs
            return False
        threading.Thread(target=self._run, args=(channel, line), daemon=True).start()
        return True

    def _run(self, channel, line):
        # paramiko sends the exec request's reply after this method's caller returns:
        # an answer sent at once could overtake it (a real sshd never does that).
        time.sleep(0.05)
        if line.split()[0] == "sleep-forever":
            self.release.wait()
            return
        if line.startswith("echo "):
            channel.sendall(line[5:].encode() + b"\n")
            status = 0
        elif line == "cat":
            data = b""
            while chunk := channel.recv(65536):
                data += chunk
            channel.sendall(data)
            status = 0
        else:
            channel.sendall_stderr(f"sh: {line}: not found\n".encode())
            status = 127
        channel.send_exit_status(status)
        channel.close()


_HOST_KEY: paramiko.RSAKey | None = None
_CLIENT_KEY: paramiko.RSAKey | None = None


def _keys() -> tuple[paramiko.RSAKey, paramiko.RSAKey]:
    global _HOST_KEY, _CLIENT_KEY
    if _HOST_KEY is None:
        _HOST_KEY, _CLIENT_KEY = paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)
    return _HOST_KEY, _CLIENT_KEY


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@contextlib.contextmanager
def ssh_server(tmp_path: Path, *, hang_sessions: bool = False):
    host_key, client_key = _keys()
    key_file = tmp_path / "id_rsa"
    if not key_file.exists():
        client_key.write_private_key_file(str(key_file))
    release = threading.Event()
    listener = _listener()
    server = Server(listener.getsockname()[1], key_file)
    transports: list[paramiko.Transport] = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            server.connections += 1
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            try:
                t.start_server(server=_Interface(client_key, release, hang_sessions, server.commands))
            except (paramiko.SSHException, EOFError, OSError):
                continue  # a client that left during the key exchange (e.g. it refused the host key)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        release.set()
        listener.close()
        for t in transports:
            t.close()


@contextlib.contextmanager
def not_ssh():
    """A port on 127.0.0.1 that answers like a web server and closes."""
    listener = _listener()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
                # Close with a FIN, never a reset: read what the client sent (its SSH
                # banner) until it gives up.  Closing with unread data would send an
                # RST, and the client's error would then depend on timing ("Connection
                # reset by peer" under load instead of the banner error).
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(5)
                try:
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def silent():
    """A port on 127.0.0.1 that accepts connections and never says anything."""
    listener = _listener()
    held: list[socket.socket] = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()
