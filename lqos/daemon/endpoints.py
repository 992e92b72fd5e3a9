"""Endpoint strings for every listening port, plaintext or TLS.

One place decides how a port becomes a Twisted endpoint description, so the
main process and every child agree: when a certificate is configured, every
port speaks TLS (a page served over https cannot open ``ws://``).
"""

from __future__ import annotations

import re
import socket

from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, quoteStringArgument
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.tls import TLSMemoryBIOFactory

# Connections the kernel queues on a port before the process accepts them.
# Twisted's default of 50 drops the SYNs of a burst, and each dropped one is
# sent again only a second later: 1000 connections opened one after another
# to the main port took 14 s with it.  The kernel caps this at
# net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 1024


class TLSFilesError(ValueError):
    """The certificate or key cannot be used; the message says which and why."""


def main_endpoint(description: str) -> str:
    """The main port's description: a TCP or TLS port queues ``LISTEN_BACKLOG`` connections unless
    its description names a backlog.  TLS from ``tls_cert`` is added by ``guard_outside_tls``."""
    if description.startswith(("tcp:", "ssl:")) and "backlog=" not in description:
        description += f":backlog={LISTEN_BACKLOG}"
    return description


def child_endpoint(port: int, interface: str = "") -> str:
    """The TCP endpoint a child process listens on (TLS, when configured, is ``tls_server_factory``'s)."""
    parts = ["tcp", str(port), f"backlog={LISTEN_BACKLOG}"]
    if interface:
        parts.append(f"interface={quoteStringArgument(interface)}")
    return ":".join(parts)


PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def tls_options(tls_cert: str, tls_key: str, protocols: tuple[bytes, ...] = ()):
    """TLS server options from PEM files: the first certificate of *tls_cert* is the server's, the
    rest its chain, as in Let's Encrypt's ``fullchain.pem``; *protocols* are offered by ALPN.

    Twisted's ``ssl:`` endpoint string reads only the first certificate of
    ``certKey``, so a server configured with ``fullchain.pem`` sent no
    intermediate, and a client that does not fetch one itself (curl, Python,
    this project's CLI) could not verify it.
    """
    from OpenSSL.crypto import FILETYPE_PEM
    from twisted.internet import ssl

    with open(tls_cert, "rb") as handle:
        certificates = [ssl.Certificate.loadPEM(pem).original for pem in PEM_CERTIFICATE.findall(handle.read())]
    with open(tls_key, "rb") as handle:
        key = ssl.KeyPair.load(handle.read(), FILETYPE_PEM).original
    return ssl.CertificateOptions(privateKey=key, certificate=certificates[0], extraCertChain=certificates[1:],
                                  acceptableProtocols=list(protocols) or None)


def tls_server_factory(factory, tls_cert: str, tls_key: str, protocols: tuple[bytes, ...] = ()):
    """*factory* behind TLS from the PEM files, or *factory* itself when none are configured."""
    if not (tls_cert and tls_key):
        return factory
    return TLSMemoryBIOFactory(tls_options(tls_cert, tls_key, protocols), False, factory)


def check_tls_files(tls_cert: str, tls_key: str) -> None:
    """Fail early, with a sentence an operator can act on, if the pair cannot serve TLS."""
    if bool(tls_cert) != bool(tls_key):
        raise TLSFilesError("TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
    if not tls_cert:
        return
    from OpenSSL import SSL, crypto

    contents = {}
    for label, path in (("certificate", tls_cert), ("key", tls_key)):
        try:
            with open(path, "rb") as handle:
                contents[label] = handle.read()
        except OSError as error:
            raise TLSFilesError(f"cannot read TLS {label} {path}: {error.strerror}") from None
    try:
        certificate = crypto.load_certificate(crypto.FILETYPE_PEM, contents["certificate"])
    except crypto.Error:
        raise TLSFilesError(f"{tls_cert} is not a PEM certificate") from None
    try:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, contents["key"])
    except crypto.Error:
        raise TLSFilesError(f"{tls_key} is not a PEM private key") from None
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(certificate)
    try:
        context.use_privatekey(key)  # recent OpenSSL checks the pair here already
        context.check_privatekey()
    except SSL.Error:
        raise TLSFilesError(f"the key {tls_key} does not match the certificate {tls_cert}") from None


def guard_outside_tls(reactor, endpoint, site, guard, tls_cert: str = "", tls_key: str = ""):
    """The endpoint to listen on and its factory: *guard* around TLS (if any) around *site*.

    TLS comes from the PEM files, or from an ``ssl:`` description of the
    operator's own.  The guard must sit under TLS, not over it: a WebSocket
    upgrade hands the connection over by replacing the protocol its
    transport wraps, and Autobahn reads TLS details only from a
    ``TLSMemoryBIOProtocol`` transport.  (Twisted offers no public way to
    take an ``ssl:`` endpoint apart, hence the private attributes.)
    """
    if isinstance(endpoint, SSL4ServerEndpoint):
        tls = TLSMemoryBIOFactory(endpoint._sslContextFactory, False, site)
        plain = TCP4ServerEndpoint(reactor, endpoint._port, endpoint._backlog, endpoint._interface)
        return plain, guard(tls)
    return endpoint, guard(tls_server_factory(site, tls_cert, tls_key))


def listen_shared(reactor, port: int, interface: str, factory) -> IListeningPort:
    """Listen on a port that other processes listen on too (``SO_REUSEPORT``).

    The kernel spreads new connections over the listeners by a hash of the
    addresses, so several worker processes share one port evenly.  Twisted's
    TCP ports have no such option, so the socket is made here and adopted.
    """
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        return reactor.adoptStreamPort(sock.fileno(), family, factory)
    finally:
        sock.close()  # the reactor holds its own duplicate of the descriptor
