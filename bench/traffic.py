"""Live traffic against a lab's REST APIs while an upgrade runs, for `bench/run --downtime`
(the same traffic as tests/it/traffic.rs): a poller per peer asks its API (`GET /id`) every
50 ms, and a writer adds a pin every 50 ms to the first peer that takes it.

Each poller keeps a timeline of its peer: answering or not, from the moment each request was
sent. The timelines give, at every instant, how many peers answered, hence the longest time
during which fewer than N-1 peers answered and the longest with none. Plain HTTP/1.1 over TCP,
the same for the stand-in and the real ipfs-cluster-service; only 127.0.0.0/8 is contacted.
"""
import bisect
import http.client
import json
import os
import threading
import time

EVERY = 0.05
TIMEOUT = 0.8


def lab_apis(lab_dir):
    """(address, port) of every host's REST API, from the lab's lab.json."""
    lab = json.load(open(os.path.join(lab_dir, "lab.json")))
    port = lab["ports"]["api"]
    apis = [(h["address"], port) for h in lab["hosts"]]
    for address, _ in apis:
        if not address.startswith("127."):
            raise SystemExit("bench/traffic: %s is outside 127.0.0.0/8; refusing" % address)
    return apis


def request(api, method, path):
    """(status, body) of one request, or None when the peer did not answer in time."""
    try:
        conn = http.client.HTTPConnection(api[0], api[1], timeout=TIMEOUT)
        conn.request(method, path, headers={"Content-Length": "0", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp.status, body
    except (OSError, http.client.HTTPException):
        return None


def identity_cid(data):
    """An identity CIDv1 (raw codec) of `data`, base32: every IPFS daemon pins it offline."""
    raw = bytes([0x01, 0x55, 0x00, len(data)]) + data
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    out, buffer, bits = "b", 0, 0
    for byte in raw:
        buffer = (buffer << 8) | byte
        bits += 8
        while bits >= 5:
            out += alphabet[(buffer >> (bits - 5)) & 31]
            bits -= 5
    if bits:
        out += alphabet[(buffer << (5 - bits)) & 31]
    return out


assert identity_cid(b"hello") == "bafkqablimvwgy3y"


class Traffic:
    """Pollers (one thread per peer) and, with `writes`, a writer, from start() to stop()."""

    def __init__(self, apis, tag, writes=True):
        self.apis, self.tag, self.writes = apis, tag, writes
        self.stopping = threading.Event()
        # Per peer: [(sent at, answered)], in order.
        self.timelines = [[] for _ in apis]
        self.acked, self.refused = [], 0
        self.threads = []

    def start(self):
        self.started = time.monotonic()
        for i, api in enumerate(self.apis):
            self.threads.append(threading.Thread(target=self._poll, args=(i, api), daemon=True))
        if self.writes:
            self.threads.append(threading.Thread(target=self._write, daemon=True))
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.ended = time.monotonic()
        self.stopping.set()
        for t in self.threads:
            t.join()

    def _poll(self, i, api):
        while not self.stopping.is_set():
            sent = time.monotonic()
            res = request(api, "GET", "/id")
            self.timelines[i].append((sent, res is not None and res[0] == 200))
            time.sleep(max(0.0, EVERY - (time.monotonic() - sent)))

    def _write(self):
        n = 0
        while not self.stopping.is_set():
            sent = time.monotonic()
            cid = identity_cid(("%s write %d" % (self.tag, n)).encode())
            n += 1
            # The first peer that takes it: one of them may be restarting.
            taken = False
            for api in self.apis:
                res = request(api, "POST", "/pins/" + cid)
                if res is not None and res[0] == 200:
                    taken = True
                    break
            if taken:
                self.acked.append(cid)
            else:
                self.refused += 1
            time.sleep(max(0.0, EVERY - (time.monotonic() - sent)))

    def figures(self):
        """What the pollers saw: samples, the longest time with fewer than N-1 peers answering,
        the longest with none, and how many of the 50 ms ticks had fewer than N-1."""
        n = len(self.apis)
        # Every change of a peer's state, in time order: (time, peer, answering).
        changes = sorted((t, i, ok) for i, line in enumerate(self.timelines) for t, ok in line)
        state = [True] * n  # every peer answered before the run (the lab was healthy)
        longest_degraded = longest_none = 0.0
        degraded_since = none_since = None
        for t, i, ok in changes:
            state[i] = ok
            answering = sum(state)
            if answering < n - 1:
                degraded_since = t if degraded_since is None else degraded_since
            elif degraded_since is not None:
                longest_degraded = max(longest_degraded, t - degraded_since)
                degraded_since = None
            if answering == 0:
                none_since = t if none_since is None else none_since
            elif none_since is not None:
                longest_none = max(longest_none, t - none_since)
                none_since = None
        end = self.ended
        if degraded_since is not None:
            longest_degraded = max(longest_degraded, end - degraded_since)
        if none_since is not None:
            longest_none = max(longest_none, end - none_since)
        # Samples: one per poller round; degraded samples: 50 ms ticks with fewer than N-1.
        samples = min(len(line) for line in self.timelines) if self.timelines else 0
        ticks = degraded_ticks = 0
        t = self.started
        while t < end:
            answering = sum(last_state(line, t) for line in self.timelines)
            ticks += 1
            degraded_ticks += answering < n - 1
            t += EVERY
        return {
            "samples": samples,
            "ticks": ticks,
            "degraded_ticks": degraded_ticks,
            "longest_degraded": longest_degraded,
            "longest_none": longest_none,
            "acked": len(self.acked),
            "refused": self.refused,
        }


def last_state(line, t):
    """Whether a peer answered at time t: its last request sent at or before t (answering
    before the first)."""
    at = bisect.bisect_right(line, (t, True))
    return line[at - 1][1] if at else True


def missing_pins(apis, cids, patience=60.0):
    """The acknowledged pins some peer does not list (GET /allocations) once `patience` seconds
    passed without every peer listing all of them (CRDT peers sync in the background)."""
    deadline = time.monotonic() + patience
    while True:
        missing = []
        for api in apis:
            res = request_long(api, "/allocations")
            listed = res if res is not None else ""
            missing += [(api, cid) for cid in cids if cid not in listed]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(1)


def request_long(api, path):
    """A GET with a long timeout (a listing of thousands of pins); the body or None."""
    try:
        conn = http.client.HTTPConnection(api[0], api[1], timeout=30)
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        conn.close()
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
