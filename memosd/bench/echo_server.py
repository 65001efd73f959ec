"""The transport floor's server: a plain blocking pyzmq ROUTER that does nothing but codec work.

Run as ``python -m memosd.bench.echo_server --reply-file F ENDPOINT...``. For each
request it MessagePack-decodes the frame and encodes a reply of the same shape
and size as a real memosd recall reply (read once from ``F``), then sends it.
It runs in its own process, like the daemon, so the client's interpreter and
the server's do not share a GIL. On start it prints one JSON line with the
endpoints it bound (tcp port 0 becomes the real port).
"""

from __future__ import annotations

import argparse
import json
import sys

import msgspec
import zmq


def serve(endpoints: list[str], reply_template: bytes) -> None:
    """Bind ROUTER sockets and answer every request until killed."""
    reply_obj = msgspec.msgpack.decode(reply_template)  # generic dicts/lists: encoded anew per reply
    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.decode
    ctx = zmq.Context()
    poller = zmq.Poller()
    bound = []
    for endpoint in endpoints:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        bound.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        poller.register(sock, zmq.POLLIN)
    print(json.dumps({"endpoints": bound}), flush=True)
    while True:
        for sock, _ in poller.poll():
            identity, payload = sock.recv_multipart()
            request = decode(payload)
            # Echo the request id the way memosd does, so the client can check it.
            reply_obj["id"] = request.get("id", 0) if isinstance(request, dict) else 0
            sock.send_multipart([identity, encode(reply_obj)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reply-file", required=True, help="a MessagePack reply frame to imitate")
    parser.add_argument("endpoints", nargs="+")
    args = parser.parse_args(argv)
    with open(args.reply_file, "rb") as fh:
        template = fh.read()
    try:
        serve(args.endpoints, template)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
