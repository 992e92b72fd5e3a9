"""Endpoint strings for every listening port, plaintext or TLS.

One place decides how a port becomes a Twisted endpoint description, so the
main process and every child agree: when a certificate is configured, every
port speaks TLS (a page served over https cannot open ``ws://``).
"""

from __future__ import annotations

from twisted.internet.endpoints import quoteStringArgument


class TLSFilesError(ValueError):
    """The certificate or key cannot be used; the message says which and why."""


def _tls_arguments(tls_cert: str, tls_key: str) -> str:
    return f"privateKey={quoteStringArgument(tls_key)}:certKey={quoteStringArgument(tls_cert)}"


def main_endpoint(description: str, tls_cert: str = "", tls_key: str = "") -> str:
    """The main port: ``tcp:N`` becomes ``ssl:N:...`` when TLS is configured."""
    if tls_cert and tls_key and description.startswith("tcp:"):
        return f"ssl:{description[len('tcp:'):]}:{_tls_arguments(tls_cert, tls_key)}"
    return description


def child_endpoint(port: int, interface: str = "", tls_cert: str = "", tls_key: str = "") -> str:
    """The endpoint a child process listens on."""
    kind = "ssl" if tls_cert and tls_key else "tcp"
    parts = [kind, str(port)]
    if interface:
        parts.append(f"interface={quoteStringArgument(interface)}")
    if kind == "ssl":
        parts.append(_tls_arguments(tls_cert, tls_key))
    return ":".join(parts)


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
