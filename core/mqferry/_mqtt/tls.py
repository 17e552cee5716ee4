"""TLS to the MQTT broker: the ``ssl.SSLContext`` of an ``ssl`` section, and clear error texts.

The connection (:mod:`mqferry._mqtt.connect`) hands the context and :func:`server_hostname` to the
event loop, which performs the handshake; a failure there, or a TLS alert the broker sends after
it, reaches the connector as an error whose text :func:`explain` reads to say which check failed
and what to look at.
"""

from __future__ import annotations

import ssl

from mqferry._config.models import MqttSslConfig
from mqferry._config.tlsfiles import load_tls_files

__all__ = ["explain", "server_hostname", "ssl_context"]

_VERSIONS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


def ssl_context(cfg: MqttSslConfig) -> ssl.SSLContext:
    """The client context for ``cfg`` (files are read now).

    Raises:
        ConfigError: a file cannot be read or holds no usable certificate or key; the problem's
            path names the field (``ssl.cacertfile``) and the message the file, never why (that
            is logged: see :mod:`mqferry._config.tlsfiles`).
    """
    sni = cfg.server_name_indication
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    versions = [_VERSIONS[v] for v in cfg.versions]
    ctx.minimum_version, ctx.maximum_version = min(versions), max(versions)
    tls12 = [c for c in cfg.ciphers if not c.startswith("TLS_")]
    if tls12:
        ctx.set_ciphers(":".join(tls12))  # names were checked when the config was validated
    if cfg.verify == "verify_none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = sni != "disable"
        if not cfg.cacertfile:
            ctx.load_default_certs()
    load_tls_files(ctx, cacertfile=cfg.cacertfile if cfg.verify != "verify_none" else None,
                   certfile=cfg.certfile, keyfile=cfg.keyfile,
                   password=cfg.password.get_secret_value() if cfg.password else None)
    return ctx


def server_hostname(cfg: MqttSslConfig, host: str) -> str:
    """The name sent in SNI and checked against the certificate; ``""`` sends none."""
    sni = cfg.server_name_indication
    if sni == "auto":
        return host
    return "" if sni == "disable" else sni


# (text in the OpenSSL or broker message, what failed, what it means); the first match wins.
_EXPLANATIONS = (
    ("certificate has expired", "TLS", "the broker's certificate has expired"),
    ("certificate is not yet valid", "TLS",
     "the broker's certificate is not valid yet (check the clocks)"),
    ("Hostname mismatch", "TLS", "the broker's certificate does not hold the host name "
                                 "connected to (see ssl.server_name_indication)"),
    ("IP address mismatch", "TLS", "the broker's certificate does not hold the address "
                                   "connected to (see ssl.server_name_indication)"),
    ("unable to get local issuer certificate", "TLS",
     "the broker's certificate is not signed by a CA in ssl.cacertfile"),
    ("self-signed certificate", "TLS",
     "the broker's certificate is not signed by a CA in ssl.cacertfile"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS", "the broker's certificate could not be verified"),
    ("certificate required", "TLS", "the broker requires a client certificate (ssl.certfile)"),
    ("unknown ca", "TLS", "the broker does not trust our client certificate (ssl.certfile)"),
    ("bad certificate", "TLS", "the broker refused our client certificate (ssl.certfile)"),
    ("certificate unknown", "TLS", "the broker refused our client certificate (ssl.certfile)"),
    ("WRONG_VERSION_NUMBER", "TLS", "the broker did not answer in TLS (is this a TLS port?)"),
    ("UNSUPPORTED_PROTOCOL", "TLS", "no TLS version in common with the broker (ssl.versions)"),
    ("NO_PROTOCOLS_AVAILABLE", "TLS", "no TLS version in common with the broker (ssl.versions)"),
    ("no shared cipher", "TLS", "no cipher in common with the broker (ssl.ciphers)"),
    ("handshake failure", "TLS", "the handshake failed (versions, ciphers or certificates)"),
    ("Bad user name or password", "login", "the broker refused the username or password"),
    ("Not authorized", "login", "the broker refused the credentials (not authorized)"),
)


def explain(error: BaseException | str) -> str:
    """A connection error's text, led by what it means when it is a known TLS or login failure.

    ``"TLS: the broker's certificate has expired ([SSL: CERTIFICATE_VERIFY_FAILED] ...)"``.
    """
    text = str(error)
    lowered = text.lower()
    for needle, kind, meaning in _EXPLANATIONS:
        if needle.lower() in lowered:
            return f"{kind}: {meaning} ({text})"
    return text
