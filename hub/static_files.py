"""Serve a folder read-only under a URL prefix, on 127.0.0.1 (the hub's MathJax service).

    python static_files.py --port 8003 --prefix /services/mathjax/ hub/node_modules/mathjax

JupyterHub's proxy forwards /services/mathjax/... with the prefix; it is stripped here.
Only GET and HEAD exist; nothing outside the folder is reachable (http.server's own
path handling refuses ``..``).
"""

import argparse
import functools
import http.server
import os


class PrefixedHandler(http.server.SimpleHTTPRequestHandler):
    prefix = "/"

    def translate_path(self, path):
        if not path.startswith(self.prefix):
            return os.devnull + ".missing"  # answers 404
        return super().translate_path("/" + path[len(self.prefix):])

    def end_headers(self):
        # MathJax's files never change for one installed version.
        self.send_header("Cache-Control", "public, max-age=86400")
        super().end_headers()

    def log_message(self, format, *args):  # the hub's log is long enough
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="/")
    args = parser.parse_args()
    if not os.path.isdir(args.folder):
        parser.error(f"{args.folder} is not a folder: run `npm install` in hub/ (make hub does).")
    handler = type("Handler", (PrefixedHandler,), {"prefix": args.prefix})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", args.port), functools.partial(handler, directory=args.folder))
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # how JupyterHub stops its services: no traceback in its log
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
