"""Real servers for the notification tests, all on 127.0.0.1: an HTTP server that records
POSTs (answering from a scripted list of status codes) and a mosquitto broker process."""
from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHTTPServer:
    """POST bodies are kept in ``requests`` (status, json) in order; the n-th request is
    answered with ``codes[n]`` (the last code once the list runs out); ``delay`` s before answering."""

    def __init__(self, codes=(200,), delay: float = 0.0):
        self.codes, self.delay = list(codes), delay
        self.requests: list[tuple[int, dict]] = []
        self.times: list[float] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"null")
                code = outer.codes[min(len(outer.requests), len(outer.codes) - 1)]
                outer.requests.append((code, body))
                outer.times.append(time.monotonic())
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self._t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._t.start()

    def delivered(self) -> list[dict]:
        return [b for c, b in self.requests if c == 200]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class Mosquitto:
    """A mosquitto broker on 127.0.0.1:port without persistence (a restart forgets retained messages)."""

    def __init__(self, tmp: Path, port: int | None = None):
        self.exe = mosquitto_path()
        self.port = port or free_port()
        self.conf = Path(tmp) / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """A paho client that records (topic, payload, retain) of everything under ``topic``."""

    def __init__(self, port: int, topic: str = "kl_motion/#"):
        import paho.mqtt.client as mqtt
        self.msgs: list[tuple[str, str, bool]] = []
        self._ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")

        def on_connect(cl, u, f, rc, p=None):
            cl.subscribe(topic, qos=1)

        def on_subscribe(cl, u, mid, rc, p=None):
            self._ready.set()

        c.on_connect, c.on_subscribe = on_connect, on_subscribe
        c.on_message = lambda cl, u, m: self.msgs.append((m.topic, m.payload.decode(), bool(m.retain)))
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert self._ready.wait(10), "test subscriber did not connect"
        self.c = c

    def wait_for(self, pred, timeout=15.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.msgs):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
