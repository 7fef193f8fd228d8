"""Which addresses the image fetcher may connect to: public unicast only, unless allowlisted.

URLs come from the data, so a page or a Parquet row can name `http://127.1/`, `http://[::1]/`,
a private or link-local host, or a public name that resolves to one of those. The fetcher
resolves each hop's host once (`resolve`), refuses the hop when any resolved address is
internal (`blocked`), and connects to exactly the address it checked, so a second DNS answer
cannot swap in another (no DNS rebinding).

Internal means anything that is not global unicast: loopback, private, link-local, shared
(100.64/10), reserved, multicast, unspecified, documentation ranges, and IPv6 forms that embed
an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) whose embedded address is
internal. `Allowlist` lets a user (and the loopback tests) name networks or host names that
may be reached anyway.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> getaddrinfo-style (family, sockaddr) pairs; tests pass a stub
Resolver = Callable[[str, int], list[tuple[int, tuple]]]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPAT = ipaddress.ip_network("::/96")
# special-purpose ranges (IANA registries) that older Pythons' is_global still calls global
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "198.18.0.0/15",  # benchmarking
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
    )
)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries, if it is one."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]  # (server, client): the client is where packets end up
    if addr in _IPV4_COMPAT or any(addr in n for n in _NAT64):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def blocked(addr: IPAddress) -> bool:
    """True for every address that is not global unicast (see the module docstring)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return True  # a zone index only means something on a local link
        inner = embedded_ipv4(addr)
        if inner is not None and blocked(inner):
            return True
        if addr.ipv4_mapped is not None or addr in _IPV4_COMPAT:
            return True  # never route to IPv4 through these, whatever they carry
    return (
        any(addr.version == n.version and addr in n for n in _SPECIAL)
        or addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
        or not addr.is_global
        or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
    )


@dataclass(frozen=True)
class Allowlist:
    """Networks and host names the user lets the fetcher reach even when internal."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str] | str | None) -> Allowlist:
        """CIDRs or single addresses ("127.0.0.1/32", "::1") and host names ("images.lan").

        Raises ValueError naming an entry that is neither.
        """
        if entries is None:
            return cls()
        if isinstance(entries, str):
            entries = entries.split(",")
        nets, hosts = [], set()
        for raw in entries:
            entry = str(raw).strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not all(c.isalnum() or c in "-." for c in name) or name.strip(".-") != name:
                raise ValueError(f"fetch_allow entry {entry!r}: not a CIDR, address or host name")
            hosts.add(name)
        return cls(tuple(nets), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows(self, addr: IPAddress) -> bool:
        forms = [addr]
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            forms.append(addr.ipv4_mapped)
        return any(f.version == n.version and f in n for f in forms for n in self.networks)


def system_resolver(host: str, port: int) -> list[tuple[int, tuple]]:
    """getaddrinfo for a stream socket: (family, sockaddr) per address, in the system's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


class BlockedAddress(Exception):
    """The host resolved to an address the fetcher may not reach."""


def resolve(
    host: str, port: int, allow: Allowlist, timeout: float, resolver: Resolver = system_resolver
) -> list[tuple[int, tuple]]:
    """Resolve once, within `timeout` seconds; the addresses to connect to, in order.

    Raises BlockedAddress when any address is internal and not allowlisted (a name that
    resolves to one public and one internal address is refused whole), TimeoutError when the
    resolver is too slow (its thread is left to finish on its own), OSError when it fails.
    """
    box: list = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(resolver(host, port))
        except BaseException as e:  # handed to the caller below
            box.append(e)
        done.set()

    # getaddrinfo cannot be interrupted: run it on its own thread and stop waiting at the deadline
    threading.Thread(target=work, daemon=True, name="vloom-resolve").start()
    if not done.wait(timeout):
        raise TimeoutError(f"resolving {host} took over {timeout:.1f}s")
    result = box[0]
    if isinstance(result, BaseException):
        raise result if isinstance(result, OSError) else OSError(str(result))
    if not result:
        raise OSError(f"{host}: no addresses")
    if allow.allows_host(host):
        return result
    for _, sockaddr in result:
        addr = ipaddress.ip_address(sockaddr[0])  # "fe80::1%eth0" keeps its scope
        if blocked(addr) and not allow.allows(addr):
            raise BlockedAddress(f"{host} -> {addr}")
    return result


def connect(addresses: list[tuple[int, tuple]], timeout: float) -> socket.socket:
    """A TCP connection to the first address that answers, by socket address (no DNS)."""
    last: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError("no address to connect to")
