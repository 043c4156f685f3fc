"""A small authoritative DNS server over UDP, for the custom-domain verification tests.

It speaks the real protocol with dnspython's message API (``dns.message.from_wire`` /
``make_response`` / ``to_wire``), so the app's resolver code runs unchanged against it
(``ALBEDO_DNS_RESOLVER=127.0.0.1:<port>``). Tests set what it answers:

* ``server.set_txt(name, "value", ...)``: TXT records of ``name`` (NOERROR with answers); a
  tuple value is one record split in several strings, as DNS providers do with long ones;
* ``server.names.add(name)``: the name exists but has no TXT record (NOERROR, no answer);
* any other name: NXDOMAIN;
* ``server.silent.add(name)``: never answer that name (the resolver times out);
* ``server.servfail.add(name)``: answer SERVFAIL.

``server.queries`` records every name asked, in order.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(name: str | dns.name.Name) -> str:
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text.lower().rstrip(".")


@dataclass
class FakeDNSServer:
    host: str = "127.0.0.1"
    txt: dict[str, list[str | tuple[str, ...]]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    servfail: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((self.host, 0))
        self._socket.settimeout(0.2)  # so stop() is noticed promptly
        self.port = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        """The value of ALBEDO_DNS_RESOLVER that points the app here."""
        return f"{self.host}:{self.port}"

    def set_txt(self, name: str, *values: str | tuple[str, ...]) -> None:
        self.txt[_key(name)] = list(values)

    def start(self) -> FakeDNSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                wire, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._answer(wire)
            if answer is not None:
                self._socket.sendto(answer, client)

    def _answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # not DNS: a real server would drop it too
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = _key(question.name)
        self.queries.append(name)
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.txt:
            if question.rdtype == dns.rdatatype.TXT:
                quoted = [" ".join(_quoted(part) for part in
                                   (v if isinstance(v, tuple) else (v,)))
                          for v in self.txt[name]]
                response.answer.append(dns.rrset.from_text(
                    question.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT, *quoted))
        elif name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
