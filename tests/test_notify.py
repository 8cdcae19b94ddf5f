"""Notifiers against real parts: shell commands, an HTTP server and a mosquitto broker on 127.0.0.1."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from kl_motion.notify import CommandHook, Webhook, hook_env, make_notifiers, parse_host_port
from kl_motion.errors import KLMotionError

sys.path.insert(0, str(Path(__file__).parent))
from servers import Mosquitto, RecordingHTTPServer, Subscriber, mosquitto_path  # noqa: E402

REC = {"type": "start", "source": "cam", "input": "rtsp://cam/1", "id": 3, "start_time": 1.2,
       "start_timecode": "00:00:01.200", "end_time": 1.2, "box": [10, 20, 30, 40], "snapshot": None}


def warnings_of(caplog, kind):
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.getMessage().startswith(kind)]


@pytest.fixture
def kl_log(caplog):
    lg = logging.getLogger("kl_motion")
    lg.propagate = True
    caplog.set_level(logging.DEBUG, logger="kl_motion")
    return caplog


# ---------------------------------------------------------------------------- webhook
def test_webhook_retries_500_twice_then_gets_the_message_once(kl_log):
    srv = RecordingHTTPServer(codes=[500, 500, 200])
    try:
        w = Webhook(srv.url, backoff=0.05)
        w.send(REC)
        w.close(10)
        assert [c for c, _ in srv.requests] == [500, 500, 200]
        assert srv.delivered() == [REC]
        assert (w.sent, w.failed) == (1, 0)
        # backoff: the second wait is longer than the first
        d1, d2 = srv.times[1] - srv.times[0], srv.times[2] - srv.times[1]
        assert d1 >= 0.05 and d2 >= 0.1
        assert not warnings_of(kl_log, "webhook")
    finally:
        srv.close()


def test_webhook_gives_up_and_says_so_once(kl_log):
    srv = RecordingHTTPServer(codes=[503])
    try:
        w = Webhook(srv.url, backoff=0.01, retries=2)
        for i in range(4):
            w.send(dict(REC, id=i))
        w.close(10)
        assert len(srv.requests) == 4 * 3          # each message: first try + 2 retries
        assert (w.sent, w.failed) == (0, 4)
        msgs = [r.getMessage() for r in warnings_of(kl_log, "webhook")]
        assert len([m for m in msgs if "giving up" in m]) == 1, msgs
        assert any("4 of 4 messages not delivered" in m for m in msgs), msgs
    finally:
        srv.close()


def test_webhook_does_not_retry_a_refusal():
    srv = RecordingHTTPServer(codes=[404])
    try:
        w = Webhook(srv.url, backoff=0.01)
        w.send(REC)
        w.close(5)
        assert len(srv.requests) == 1 and w.failed == 1
    finally:
        srv.close()


def test_webhook_timeout_on_a_server_that_hangs():
    srv = RecordingHTTPServer(codes=[200], delay=2.0)
    try:
        w = Webhook(srv.url, timeout=0.3, retries=0)
        t0 = time.monotonic()
        w.send(REC)
        w.close(5)
        assert time.monotonic() - t0 < 1.5
        assert w.failed == 1
    finally:
        srv.close()


def test_webhook_bad_url():
    with pytest.raises(KLMotionError, match="not an http"):
        Webhook("ftp://x")


# ---------------------------------------------------------------------------- command hook
def test_hook_environment(tmp_path):
    out = tmp_path / "env.txt"
    h = CommandHook(f'env | grep ^KL_MOTION_ | sort > "{out}"')
    h.send(REC)
    h.close(10)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["KL_MOTION_PHASE"] == "start"
    assert env["KL_MOTION_INPUT"] == "rtsp://cam/1"
    assert env["KL_MOTION_SOURCE"] == "cam"
    assert env["KL_MOTION_EVENT_ID"] == "3"
    assert env["KL_MOTION_START_TIME"] == "1.2"
    assert env["KL_MOTION_START_TIMECODE"] == "00:00:01.200"
    assert env["KL_MOTION_BOX"] == "10,20,30,40"
    assert env["KL_MOTION_SNAPSHOT"] == ""
    assert json.loads(env["KL_MOTION_EVENT_JSON"]) == REC


def test_hook_runs_in_order(tmp_path):
    out = tmp_path / "log.txt"
    h = CommandHook(f'echo "$KL_MOTION_EVENT_ID $KL_MOTION_PHASE" >> "{out}"')
    for i in range(5):
        h.send(dict(REC, id=i, type="start"))
        h.send(dict(REC, id=i, type="end"))
    h.close(20)
    assert out.read_text().split("\n")[:-1] == [f"{i} {p}" for i in range(5) for p in ("start", "end")]


def test_failing_hook_is_reported_once(kl_log):
    h = CommandHook("echo nope >&2; exit 3")
    for i in range(6):
        h.send(dict(REC, id=i))
    h.close(20)
    assert h.failed == 6
    msgs = [r.getMessage() for r in warnings_of(kl_log, "on-event")]
    assert len([m for m in msgs if "exited with status 3: nope" in m]) == 1, msgs
    assert len(msgs) == 2, msgs           # that one, and the count at close
    assert "6 of 6 messages not delivered" in msgs[-1]


def test_slow_hook_never_blocks_the_sender(kl_log):
    h = CommandHook("sleep 0.5", queue_size=2)
    t0 = time.monotonic()
    sent = [h.send(dict(REC, id=i)) for i in range(20)]
    took = time.monotonic() - t0
    assert took < 0.2, took                        # the frame loop is never held up
    assert sent.count(True) <= 3 and h.dropped >= 17
    h.close(10)
    msgs = [r.getMessage() for r in warnings_of(kl_log, "on-event")]
    assert len([m for m in msgs if "cannot keep up" in m]) == 1, msgs


def test_hook_timeout_stops_the_command(kl_log):
    h = CommandHook("sleep 30", timeout=0.3)
    t0 = time.monotonic()
    h.send(REC)
    h.close(10)
    assert time.monotonic() - t0 < 5
    assert h.failed == 1
    assert any("longer than" in r.getMessage() for r in warnings_of(kl_log, "on-event"))


def test_hook_env_of_an_end_record_with_snapshot():
    env = hook_env(dict(REC, type="end", end_time=4.5, snapshot="snapshots/event-0003.jpg",
                        snapshot_path="/out/cam/snapshots/event-0003.jpg"))
    assert env["KL_MOTION_PHASE"] == "end" and env["KL_MOTION_END_TIME"] == "4.5"
    assert env["KL_MOTION_SNAPSHOT"] == "/out/cam/snapshots/event-0003.jpg"


# ---------------------------------------------------------------------------- MQTT
def test_parse_host_port():
    assert parse_host_port("broker") == ("broker", 1883)
    assert parse_host_port("127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_host_port("mqtt://h:2000") == ("h", 2000)
    assert parse_host_port("[::1]:1885") == ("::1", 1885)
    for bad in ("h:x", "h:0", ":1883"):
        with pytest.raises(KLMotionError):
            parse_host_port(bad)


need_mqtt = pytest.mark.skipif(mosquitto_path() is None,
                               reason="mosquitto not installed (.ci/run installs it: apt-get install mosquitto)")


@pytest.fixture
def paho():
    return pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'kl-motion[mqtt]'")


@need_mqtt
def test_mqtt_motion_state_and_events(tmp_path, paho):
    broker = Mosquitto(tmp_path)
    sub = None
    try:
        sub = Subscriber(broker.port)
        n = make_notifiers("my/cam#1", mqtt=f"127.0.0.1:{broker.port}")
        m = n.items[0]
        assert m.t_motion == "kl_motion/my_cam_1/motion"
        n.emit(dict(REC, type="start"))
        assert sub.wait_for(lambda ms: ("kl_motion/my_cam_1/motion", "ON", False) in ms)
        early = Subscriber(broker.port)      # connects during the event: the retained state is ON
        assert early.wait_for(lambda ms: ("kl_motion/my_cam_1/motion", "ON", True) in ms), early.msgs
        early.close()
        n.emit(dict(REC, type="end"))
        n.close(10)
        # the broker passes the end record on after close() has published it: wait for it
        types = lambda ms: [json.loads(p)["type"] for t, p, _ in ms if t.endswith("/events")]  # noqa: E731
        sub.wait_for(lambda ms: len(types(ms)) >= 2)
        assert types(sub.msgs) == ["start", "end"]
        assert sub.wait_for(lambda ms: ("kl_motion/my_cam_1/available", "offline", False) in ms)
        motion = [p for t, p, _ in sub.msgs if t.endswith("/motion")]
        assert motion[-1] == "OFF"
        # a client that connects later gets the retained state: OFF, offline
        late = Subscriber(broker.port)
        assert late.wait_for(lambda ms: {(t, p) for t, p, r in ms if r} >=
                             {("kl_motion/my_cam_1/motion", "OFF"), ("kl_motion/my_cam_1/available", "offline")})
        late.close()
    finally:
        if sub:
            sub.close()
        broker.stop()


@need_mqtt
def test_mqtt_reconnects_after_broker_loss(tmp_path, paho, kl_log):
    broker = Mosquitto(tmp_path)
    try:
        n = make_notifiers("cam", mqtt=f"127.0.0.1:{broker.port}")
        m = n.items[0]
        n.emit(dict(REC, type="start"))
        time.sleep(0.5)
        broker.stop()                      # the broker goes away, and forgets the retained ON
        time.sleep(0.5)
        broker.start()
        sub = Subscriber(broker.port)
        # the client comes back by itself and sends its state again (retained, so a late subscriber sees it)
        assert sub.wait_for(lambda ms: ("kl_motion/cam/motion", "ON", True) in ms
                            or ("kl_motion/cam/motion", "ON", False) in ms, timeout=40), sub.msgs
        assert m.connects >= 2
        n.emit(dict(REC, type="end"))
        assert sub.wait_for(lambda ms: ("kl_motion/cam/motion", "OFF", False) in ms, timeout=15), sub.msgs
        ends = [json.loads(p) for t, p, _ in sub.msgs if t.endswith("/events")]
        assert [e["type"] for e in ends] == ["end"]
        n.close(10)
        sub.close()
        lost = [r.getMessage() for r in warnings_of(kl_log, "mqtt") if "lost the broker" in r.getMessage()]
        assert len(lost) == 1
    finally:
        broker.stop()


def test_mqtt_without_paho_is_a_clear_error(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("paho"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(KLMotionError, match=r"kl-motion\[mqtt\]"):
        make_notifiers("cam", mqtt="127.0.0.1:1")
