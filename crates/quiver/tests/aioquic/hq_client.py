"""hq-interop client on aioquic, the second real QUIC peer of Quiver's interop tests.

Downloads each PATH ("GET /path\r\n" on its own bidirectional stream, response until FIN)
into --output/<basename>. Prints, one line each on stdout (flushed):
"HANDSHAKE version=0x<hex> resumed=<0|1> early_data=<0|1>", "GOT /path <bytes>" per
download and "DONE" at the end. Exits 0 when every download completed, 1 otherwise.
"""

import argparse
import asyncio
import os
import pickle
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import CipherSuite, SessionTicket

VERSIONS = {"v1": QuicProtocolVersion.VERSION_1, "v2": QuicProtocolVersion.VERSION_2}
CIPHERS = {
    "aes128": CipherSuite.AES_128_GCM_SHA256,
    "aes256": CipherSuite.AES_256_GCM_SHA384,
    "chacha20": CipherSuite.CHACHA20_POLY1305_SHA256,
}


def say(line: str) -> None:
    print(line, flush=True)


class HqClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, tuple[bytearray, asyncio.Future]] = {}

    async def get(self, path: str) -> bytes:
        stream_id = self._quic.get_next_available_stream_id()
        waiter = self._loop.create_future()
        self._pending[stream_id] = (bytearray(), waiter)
        self._quic.send_stream_data(stream_id, b"GET %s\r\n" % path.encode(), end_stream=True)
        self.transmit()
        return await waiter

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            say(
                "HANDSHAKE version=0x%08x resumed=%d early_data=%d"
                % (self._quic._version, int(event.session_resumed), int(event.early_data_accepted))
            )
        elif isinstance(event, StreamDataReceived) and event.stream_id in self._pending:
            buf, waiter = self._pending[event.stream_id]
            buf.extend(event.data)
            if event.end_stream:
                del self._pending[event.stream_id]
                waiter.set_result(bytes(buf))
        elif isinstance(event, StreamReset) and event.stream_id in self._pending:
            _, waiter = self._pending.pop(event.stream_id)
            waiter.set_exception(RuntimeError("stream %d reset (%d)" % (event.stream_id, event.error_code)))
        elif isinstance(event, ConnectionTerminated):
            for _, waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(RuntimeError("connection closed: %s" % event.reason_phrase))
            self._pending.clear()


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--ca-file", help="PEM roots; without it the certificate is not verified")
    p.add_argument("--output", required=True, help="directory for the downloads")
    p.add_argument("--version", choices=VERSIONS, default="v1", help="version of the first Initial")
    p.add_argument(
        "--offer",
        default="",
        help="further versions to offer, e.g. v2: with --version v1 the server may switch "
        "the connection to v2 (compatible version negotiation, RFC 9368)",
    )
    p.add_argument("--cipher", choices=CIPHERS, help="restrict TLS to one cipher suite")
    p.add_argument("--session-ticket", help="file: resume from the ticket in it, store new ones")
    p.add_argument("--zero-rtt", action="store_true", help="send the requests as 0-RTT data")
    p.add_argument("--keylog", help="append TLS secrets (SSLKEYLOGFILE format)")
    p.add_argument(
        "--key-update",
        action="store_true",
        help="initiate a key update (RFC 9001 §6) once connected, before the requests",
    )
    p.add_argument("paths", nargs="+")
    args = p.parse_args()

    original = VERSIONS[args.version]
    offered = [VERSIONS[v] for v in args.offer.split(",") if v]
    config = QuicConfiguration(
        alpn_protocols=["hq-interop"],
        is_client=True,
        server_name=args.server_name,
        original_version=original,
        supported_versions=offered + [original] if offered else [original],
    )
    if args.ca_file:
        config.load_verify_locations(args.ca_file)
    else:
        config.verify_mode = ssl.CERT_NONE
    if args.cipher:
        config.cipher_suites = [CIPHERS[args.cipher]]
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a")
    if args.session_ticket and os.path.exists(args.session_ticket):
        with open(args.session_ticket, "rb") as f:
            config.session_ticket = pickle.load(f)

    def save_ticket(ticket: SessionTicket) -> None:
        if args.session_ticket:
            with open(args.session_ticket, "wb") as f:
                pickle.dump(ticket, f)

    os.makedirs(args.output, exist_ok=True)
    ok = True
    async with connect(
        args.host,
        args.port,
        configuration=config,
        create_protocol=HqClientProtocol,
        session_ticket_handler=save_ticket,
        wait_connected=not args.zero_rtt,
    ) as client:
        if args.key_update:
            client._quic.request_key_update()
            say("KEY_UPDATE requested")
        results = await asyncio.gather(*(client.get(path) for path in args.paths), return_exceptions=True)
        for path, body in zip(args.paths, results):
            if isinstance(body, BaseException):
                say("FAILED %s %s" % (path, body))
                ok = False
                continue
            with open(os.path.join(args.output, os.path.basename(path)), "wb") as f:
                f.write(body)
            say("GOT %s %d" % (path, len(body)))
        # Give the server's session ticket time to arrive before closing.
        if args.session_ticket:
            await asyncio.sleep(0.2)
        client.close()
        await client.wait_closed()
    say("DONE")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(), timeout=60)))
    except Exception as e:  # noqa: BLE001 - report any failure as a non-zero exit
        say("ERROR %r" % (e,))
        sys.exit(1)
