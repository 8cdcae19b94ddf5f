"""Live event notifications: a command hook, a webhook and MQTT.  No Qt, no frames.

Each notifier has a bounded queue and its own worker thread: ``send(record)`` never
blocks the frame loop (a full queue drops the message and says so once).  A command
or server that is slow or fails is reported once per notifier (a count follows at
``close()``), never once per event or frame.

- ``CommandHook``: runs a shell command per message with ``KL_MOTION_*`` environment
  variables (input, event id, phase, times, box, snapshot path, the whole record as JSON).
- ``Webhook``: POSTs the record as JSON, with a timeout and retries with backoff.
- ``MqttNotifier``: Frigate-like topics on a broker (optional extra ``kl-motion[mqtt]``,
  paho-mqtt): ``kl_motion/<name>/motion`` ``ON``/``OFF`` (retained),
  ``kl_motion/<name>/events`` (the record as JSON), ``kl_motion/<name>/available``
  ``online``/``offline`` (retained; ``offline`` is the will).  paho reconnects with
  backoff when the broker goes away; on every (re)connect the retained state is sent again.

A record is the event's dict (as in ``events.jsonl``) plus ``type``: ``start`` or ``end``.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Iterable

from .errors import KLMotionError

log = logging.getLogger("kl_motion")

_STOP = object()
QUEUE_SIZE = 64


class Notifier:
    """A bounded queue and one worker thread calling ``deliver(record)`` in order."""

    kind = "notifier"

    def __init__(self, queue_size: int = QUEUE_SIZE):
        self.q: queue.Queue = queue.Queue(queue_size)
        self.sent = 0          # records delivered
        self.failed = 0        # records given up on
        self.dropped = 0       # records dropped because the queue was full
        self._said: set[str] = set()
        self._closing = threading.Event()
        self._t = threading.Thread(target=self._run, name=f"kl-{self.kind}", daemon=True)
        self._t.start()

    def say_once(self, key: str, msg: str, *a) -> None:
        """A warning, said the first time ``key`` happens only."""
        if key not in self._said:
            self._said.add(key)
            log.warning(f"{self.kind}: " + msg, *a)

    def send(self, record: dict) -> bool:
        """Queue a record; never blocks.  False (and one warning) when the queue is full."""
        try:
            self.q.put_nowait(record)
            return True
        except queue.Full:
            self.dropped += 1
            self.say_once("full", "cannot keep up (queue of %d full): messages are dropped", self.q.maxsize)
            return False

    def _run(self) -> None:
        while True:
            rec = self.q.get()
            if rec is _STOP:
                return
            try:
                ok = self.deliver(rec)
            except Exception as e:  # a notifier must never take the frame loop down
                self.say_once("error", "%s", e)
                ok = False
            if ok:
                self.sent += 1
            else:
                self.failed += 1

    def deliver(self, record: dict) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (for at most ``timeout`` s), then stop."""
        self._closing.set()
        end = time.monotonic() + timeout
        while True:
            try:
                self.q.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > end:
                    break
        self._t.join(max(0.0, end - time.monotonic()))
        if self._t.is_alive():
            log.warning("%s: %d messages not delivered at exit", self.kind, self.q.qsize())
        lost = self.failed + self.dropped
        if lost:
            log.warning("%s: %d of %d messages not delivered", self.kind, lost, lost + self.sent)
        self._shutdown()

    def _shutdown(self) -> None:
        pass


# ---------------------------------------------------------------------------- command
def hook_env(record: dict) -> dict[str, str]:
    """The ``KL_MOTION_*`` environment variables of a record."""
    def s(v):
        return "" if v is None else str(v)

    box = record.get("box") or []
    return {
        "KL_MOTION_PHASE": s(record.get("type")),
        "KL_MOTION_INPUT": s(record.get("input")),
        "KL_MOTION_SOURCE": s(record.get("source")),
        "KL_MOTION_EVENT_ID": s(record.get("id")),
        "KL_MOTION_START_TIME": s(record.get("start_time")),
        "KL_MOTION_START_TIMECODE": s(record.get("start_timecode")),
        "KL_MOTION_END_TIME": s(record.get("end_time")),
        "KL_MOTION_END_TIMECODE": s(record.get("end_timecode")),
        "KL_MOTION_START_UTC": s(record.get("start_utc")),
        "KL_MOTION_BOX": ",".join(str(int(v)) for v in box),
        "KL_MOTION_SNAPSHOT": s(record.get("snapshot_path") or record.get("snapshot")),
        "KL_MOTION_EVENT_JSON": json.dumps(record),
    }


class CommandHook(Notifier):
    """Runs ``command`` (a shell command line) once per record, one at a time."""

    kind = "on-event"
    SLOW_SECONDS = 5.0

    def __init__(self, command: str, timeout: float = 60.0, cwd: str | None = None, queue_size: int = QUEUE_SIZE):
        if not command or not command.strip():
            raise KLMotionError("--on-event: empty command")
        self.command, self.timeout, self.cwd = command, timeout, cwd
        super().__init__(queue_size)

    def deliver(self, record: dict) -> bool:
        env = dict(os.environ, **hook_env(record))
        t0 = time.monotonic()
        try:
            r = subprocess.run(self.command, shell=True, env=env, cwd=self.cwd, timeout=self.timeout,
                               stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)   # its output is the user's
        except subprocess.TimeoutExpired:
            self.say_once("timeout", "%r ran longer than %.0f s and was stopped", self.command, self.timeout)
            return False
        except OSError as e:
            self.say_once("oserror", "cannot run %r: %s", self.command, e)
            return False
        took = time.monotonic() - t0
        if took > self.SLOW_SECONDS:
            self.say_once("slow", "%r took %.1f s; events wait in a queue of %d", self.command, took,
                          self.q.maxsize)
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            self.say_once("exit", "%r exited with status %d%s", self.command, r.returncode,
                          f": {err[-1]}" if err else "")
            return False
        return True


# ---------------------------------------------------------------------------- webhook
class Webhook(Notifier):
    """POSTs each record as JSON to ``url``; a failed POST (connection error, timeout,
    HTTP 5xx or 429) is retried after ``backoff`` s, doubling, at most ``retries`` times."""

    kind = "webhook"

    def __init__(self, url: str, timeout: float = 5.0, retries: int = 5, backoff: float = 0.5,
                 queue_size: int = QUEUE_SIZE):
        if not url.lower().startswith(("http://", "https://")):
            raise KLMotionError(f"--webhook: {url!r} is not an http:// or https:// URL")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, max(0, retries), backoff
        super().__init__(queue_size)

    def _post(self, body: bytes) -> int:
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "kl-motion"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resp.read()
            return resp.status

    def deliver(self, record: dict) -> bool:
        body = json.dumps(record).encode()
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                return True
            except urllib.error.HTTPError as e:
                why = f"HTTP {e.code}"
                if e.code < 500 and e.code != 429:      # the server refuses this message: do not retry
                    self.say_once("refused", "%s answered %s", self.url, why)
                    return False
            except (urllib.error.URLError, OSError) as e:
                why = str(getattr(e, "reason", e))
            if attempt < self.retries:
                log.debug("webhook: %s: %s; retry in %.1f s", self.url, why, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.say_once("failed", "%s: %s after %d attempts; giving up on this message", self.url, why, attempt + 1)
        return False


# ---------------------------------------------------------------------------- MQTT
def parse_host_port(spec: str, default_port: int = 1883) -> tuple[str, int]:
    s = spec.strip()
    if s.lower().startswith("mqtt://"):
        s = s[7:]
    host, port = s, default_port
    if s.startswith("["):                      # [::1]:1883
        host, _, rest = s[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif s.count(":") == 1:
        host, port = s.split(":")
    try:
        port = int(port)
    except ValueError:
        raise KLMotionError(f"--mqtt: bad port in {spec!r}") from None
    if not host or not 0 < port < 65536:
        raise KLMotionError(f"--mqtt: expected HOST[:PORT], got {spec!r}")
    return host, port


def topic_name(name: str) -> str:
    """An input name as one MQTT topic level (no wildcards or separators)."""
    out = "".join("_" if c in "/+#" or ord(c) < 32 else c for c in name)
    return out or "input"


class MqttNotifier(Notifier):
    """Publishes motion state and events for one input (``name``) under ``prefix``."""

    kind = "mqtt"

    def __init__(self, spec: str, name: str, prefix: str = "kl_motion", wait: float = 10.0,
                 queue_size: int = QUEUE_SIZE, client_id: str | None = None):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise KLMotionError("--mqtt needs paho-mqtt: pip install 'kl-motion[mqtt]'") from None
        self.host, self.port = parse_host_port(spec)
        base = f"{prefix}/{topic_name(name)}"
        self.t_motion, self.t_events, self.t_avail = f"{base}/motion", f"{base}/events", f"{base}/available"
        self.wait = wait
        self.motion = "OFF"
        self.connects = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        cid = client_id or f"kl-motion-{topic_name(name)}-{os.getpid()}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        c.will_set(self.t_avail, "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self.client = c
        c.connect_async(self.host, self.port, keepalive=30)
        c.loop_start()                 # paho's network thread; reconnects by itself
        super().__init__(queue_size)
        if not self._connected.wait(min(wait, 5.0)):
            log.warning("mqtt: broker %s:%d not reachable yet; retrying in the background", self.host, self.port)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if getattr(reason_code, "is_failure", False):
            self.say_once("refused", "broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connects += 1
        if self.connects > 1:
            log.info("mqtt: reconnected to %s:%d", self.host, self.port)
        with self._lock:   # the broker may have lost retained messages: send the state again
            client.publish(self.t_avail, "online", qos=1, retain=True)
            client.publish(self.t_motion, self.motion, qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self._connected.clear()
        if not self._closing.is_set():
            self.say_once("lost", "lost the broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)

    def deliver(self, record: dict) -> bool:
        if not self._connected.wait(self.wait):
            self.say_once("down", "broker %s:%d unreachable; messages wait for it", self.host, self.port)
            if not self._connected.wait(0 if self._closing.is_set() else 120):
                return False
        phase = record.get("type")
        with self._lock:
            if phase in ("start", "end"):
                self.motion = "ON" if phase == "start" else "OFF"
                self.client.publish(self.t_motion, self.motion, qos=1, retain=True)
            info = self.client.publish(self.t_events, json.dumps(record), qos=1)
        try:
            info.wait_for_publish(self.wait)
        except (RuntimeError, ValueError):
            pass       # not connected now: paho sends queued QoS-1 messages after reconnecting
        return True

    def _shutdown(self) -> None:
        try:
            if self._connected.is_set():
                self.client.publish(self.t_avail, "offline", qos=1, retain=True).wait_for_publish(2.0)
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()


# ---------------------------------------------------------------------------- several
class Notifiers:
    """The notifiers of one input: ``emit`` hands a record to each."""

    def __init__(self, items: Iterable[Notifier] = ()):
        self.items = list(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def emit(self, record: dict) -> None:
        for n in self.items:
            n.send(record)

    def close(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        for n in self.items:
            n.close(max(0.5, end - time.monotonic()))


def make_notifiers(name: str, on_event: str | None = None, webhook: str | None = None,
                   mqtt: str | None = None, mqtt_prefix: str = "kl_motion") -> Notifiers:
    items: list[Notifier] = []
    try:
        if on_event:
            items.append(CommandHook(on_event))
        if webhook:
            items.append(Webhook(webhook))
        if mqtt:
            items.append(MqttNotifier(mqtt, name, prefix=mqtt_prefix))
    except BaseException:
        for n in items:
            n.close(0.5)
        raise
    return Notifiers(items)


__all__ = ["CommandHook", "MqttNotifier", "Notifier", "Notifiers", "Webhook", "hook_env", "make_notifiers",
           "parse_host_port"]
