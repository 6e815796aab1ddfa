"""hq-interop server on aioquic, the second real QUIC peer of Quiver's interop tests.

Protocol (ALPN "hq-interop", as the quic-interop-runner uses it): the client opens one
bidirectional stream per request, sends "GET /path\r\n" and FIN; the server answers with
the bytes of www/path and FIN. Unknown paths get the stream reset with code 1.

Prints, one line each on stdout (flushed): "LISTENING <port>" once bound, then per
connection "HANDSHAKE version=0x<hex> cipher=<suite> resumed=<0|1> early_data=<0|1>" and
"SERVED /path <bytes>" per response. Runs until killed.
"""

import argparse
import asyncio
import os
import sys

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, StreamDataReceived
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import SessionTicket

VERSIONS = {"v1": QuicProtocolVersion.VERSION_1, "v2": QuicProtocolVersion.VERSION_2}


def say(line: str) -> None:
    print(line, flush=True)


class TicketStore:
    """In-memory session tickets, so resumption and 0-RTT work across connections."""

    def __init__(self) -> None:
        self.tickets: dict[bytes, SessionTicket] = {}

    def add(self, ticket: SessionTicket) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> SessionTicket | None:
        return self.tickets.pop(label, None)


class HqServerProtocol(QuicConnectionProtocol):
    www = "."

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._requests: dict[int, bytes] = {}

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            say(
                "HANDSHAKE version=0x%08x cipher=%s resumed=%d early_data=%d"
                % (
                    self._quic._version,
                    self._quic.tls.key_schedule.cipher_suite.name
                    if self._quic.tls.key_schedule
                    else "?",
                    int(event.session_resumed),
                    int(event.early_data_accepted),
                )
            )
        elif isinstance(event, StreamDataReceived):
            data = self._requests.get(event.stream_id, b"") + event.data
            self._requests[event.stream_id] = data
            if event.end_stream:
                self._answer(event.stream_id, self._requests.pop(event.stream_id))

    def _answer(self, stream_id: int, request: bytes) -> None:
        line = request.split(b"\r\n", 1)[0].decode("ascii", "replace")
        parts = line.split(" ")
        path = parts[1] if len(parts) == 2 and parts[0] == "GET" else ""
        name = os.path.normpath(path.lstrip("/"))
        full = os.path.join(self.www, name)
        if not path or name.startswith("..") or not os.path.isfile(full):
            self._quic.reset_stream(stream_id, 1)
            self.transmit()
            return
        with open(full, "rb") as f:
            body = f.read()
        self._quic.send_stream_data(stream_id, body, end_stream=True)
        self.transmit()
        say("SERVED %s %d" % (path, len(body)))


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--certificate", required=True, help="PEM certificate chain")
    p.add_argument("--private-key", required=True, help="PEM private key")
    p.add_argument("--www", required=True, help="directory whose files are served")
    p.add_argument(
        "--versions",
        default="v1,v2",
        help="supported versions, preferred first (v1,v2 or v2,v1 or v1 or v2); a "
        "server listing v2 first switches clients that offer v2 (RFC 9368)",
    )
    p.add_argument("--session-tickets", action="store_true", help="issue and accept tickets")
    p.add_argument(
        "--zero-rtt",
        action="store_true",
        help="accept 0-RTT; aioquic offers early data in every ticket, so this only "
        "implies --session-tickets",
    )
    p.add_argument("--retry", action="store_true", help="send Retry to every new client")
    p.add_argument("--keylog", help="append TLS secrets (SSLKEYLOGFILE format)")
    args = p.parse_args()

    config = QuicConfiguration(
        alpn_protocols=["hq-interop"],
        is_client=False,
        supported_versions=[VERSIONS[v] for v in args.versions.split(",")],
        max_datagram_frame_size=None,
    )
    config.load_cert_chain(args.certificate, args.private_key)
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a")
    HqServerProtocol.www = args.www
    store = TicketStore()
    tickets = args.session_tickets or args.zero_rtt
    server = await serve(
        args.host,
        args.port,
        configuration=config,
        create_protocol=HqServerProtocol,
        session_ticket_fetcher=store.pop if tickets else None,
        session_ticket_handler=store.add if tickets else None,
        retry=args.retry,
    )
    port = server._transport.get_extra_info("sockname")[1]
    say("LISTENING %d" % port)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
