"""A tiny MJPEG-over-HTTP server on 127.0.0.1 for the stream tests (multipart/x-mixed-replace)."""
from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np


def frame_jpeg(i: int, size=(160, 120)) -> bytes:
    w, h = size
    f = np.full((h, w, 3), 80, np.uint8)
    x = 5 + (i * 3) % (w - 40)
    if 10 <= i % 40 < 30:
        cv2.rectangle(f, (x, 40), (x + 30, 80), (240, 240, 240), -1)
    return cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


class MJPEGServer:
    """Serves ``frames_per_connection`` frames per connection, at most ``connections``
    connections (later ones get 503), then closes the connection (a dropped stream)."""

    def __init__(self, frames_per_connection: int = 40, connections: int = 1, fps: float = 50.0, frame=frame_jpeg):
        self.n, self.max_conn, self.fps = frames_per_connection, connections, fps
        self.frame = frame          # frame number -> JPEG bytes
        self.served = 0
        self.connections = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.connections += 1
                if outer.connections > outer.max_conn:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(outer.n):
                        jpg = outer.frame(outer.served)
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(jpg)}\r\n\r\n".encode())
                        self.wfile.write(jpg + b"\r\n")
                        self.wfile.flush()
                        outer.served += 1
                        time.sleep(1.0 / outer.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._t = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
