"""A TCP proxy in front of one server, for the partition campaigns: it forwards, or it cuts.

- `drop()`: every connection through it is reset at once, and new ones are accepted and reset,
  as a server host whose port is firewalled with REJECT, or that rebooted;
- `blackhole()`: connections are accepted but nothing is forwarded either way: the bytes wait
  in the kernel's buffers, as TCP's retransmissions hold them across a partition, and are
  delivered when `heal()` ends it (a new connection waits too: its upstream side is opened
  only then);
- `heal()`: back to forwarding.

One thread, one selector; the harness calls the three methods from its fault thread.
"""

import os
import selectors
import socket
import struct
import threading

PASS, DROP, BLACKHOLE = "pass", "drop", "blackhole"


def _reset(sock):
    """Closes with RST, not FIN: the peer sees ECONNRESET at once, as from a rejecting host."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    def __init__(self, client):
        self.client = client
        self.upstream = None
        self.out = {}  # socket -> bytes waiting to be written to it
        self.registered = set()  # the sockets the selector watches now


class Proxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode = PASS
        self.pairs = []
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.requests = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def _ask(self, mode):
        with self.lock:
            self.requests.append(mode)
        os.write(self.wake_w, b"x")

    def drop(self):
        self._ask(DROP)

    def blackhole(self):
        self._ask(BLACKHOLE)

    def heal(self):
        self._ask(PASS)

    def close(self):
        self._ask("close")
        self.thread.join(5)

    # The proxy's thread from here on.

    def _serve(self):
        while not self.closed:
            for key, events in self.selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._woken()
                else:
                    self._ready(key.fileobj, key.data, events)
        for pair in self.pairs:
            self._close(pair)
        self.selector.close()
        self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _woken(self):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        with self.lock:
            requests, self.requests = self.requests, []
        for mode in requests:
            if mode == "close":
                self.closed = True
                return
            self.mode = mode
            if mode == DROP:
                for pair in list(self.pairs):
                    self._close(pair)
            for pair in list(self.pairs):
                if pair.upstream is None and mode == PASS:
                    self._connect(pair)
                self._watch(pair)

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.mode == DROP:
            _reset(client)
            return
        client.setblocking(False)
        pair = _Pair(client)
        self.pairs.append(pair)
        if self.mode == PASS:
            self._connect(pair)
        self._watch(pair)

    def _connect(self, pair):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=1)
        except OSError:
            self._close(pair)  # the server is down: as the client would see it directly
            return
        upstream.setblocking(False)
        pair.upstream = upstream

    def _watch(self, pair):
        """What to wait for on each side: nothing at all while blackholed (a selector cannot
        hold a socket with no events, so it leaves the selector until the heal)."""
        if pair not in self.pairs:
            return
        for sock in (pair.client, pair.upstream):
            if sock is None:
                continue
            events = 0
            if self.mode == PASS:
                events = selectors.EVENT_READ
                if pair.out.get(sock):
                    events |= selectors.EVENT_WRITE
            if sock in pair.registered:
                if events:
                    self.selector.modify(sock, events, pair)
                else:
                    self.selector.unregister(sock)
                    pair.registered.discard(sock)
            elif events:
                self.selector.register(sock, events, pair)
                pair.registered.add(sock)

    def _ready(self, sock, pair, events):
        if pair not in self.pairs or self.mode != PASS:
            return
        other = pair.upstream if sock is pair.client else pair.client
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._close(pair)
                return
            if data:
                pair.out[other] = pair.out.get(other, b"") + data
        for target in (pair.client, pair.upstream):
            pending = pair.out.get(target)
            if target is None or not pending:
                continue
            try:
                sent = target.send(pending)
                pair.out[target] = pending[sent:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(pair)
                return
        self._watch(pair)

    def _close(self, pair):
        if pair in self.pairs:
            self.pairs.remove(pair)
        for sock in pair.registered:
            self.selector.unregister(sock)
        pair.registered.clear()
        for sock in (pair.client, pair.upstream):
            if sock is not None:
                _reset(sock)
