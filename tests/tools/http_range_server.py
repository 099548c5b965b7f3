"""A small HTTP server for the download tests: serves one directory on
127.0.0.1 (a free port, written to PORTFILE), honours Range requests (so
resumed downloads can be tested), and can answer 503 to the first N
requests (to test retries). Logs one line per request to stderr.

Usage: http_range_server.py DIR PORTFILE [--fail-first N]
"""
import http.server
import os
import sys

root, portfile = sys.argv[1], sys.argv[2]
fail_first = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--fail-first" else 0
state = {"failures_left": fail_first}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        rng = self.headers.get("Range")
        sys.stderr.write(f"GET {self.path} range={rng}\n")
        sys.stderr.flush()
        if state["failures_left"] > 0:
            state["failures_left"] -= 1
            self.send_error(503, "try again")
            return
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404, "no such file")
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416, "range not satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, fmt, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
