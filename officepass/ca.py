"""The operator's small certificate authority: the broker's TLS certificate, signed by a CA the doors
and service instances trust (`ca_file`). `officepass ca init` makes it once; private keys are 0600
and never leave the directory.

Files in the CA directory:
* `ca.pem` (give this to every door and service instance), `ca.key` (0600, stays here);
* `broker.pem`, `broker.key` (0600): the broker's certificate for the names given, always with
  `localhost` and `127.0.0.1`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY, BROKER_CERT, BROKER_KEY = "ca.pem", "ca.key", "broker.pem", "broker.key"
CA_YEARS, BROKER_YEARS = 10, 2


class CaProblem(ValueError):
    """Why the CA cannot be made or used; the message names the file."""


def write_private(path: Path, data: bytes) -> None:
    """A secret file: created 0600 (never readable by others for an instant), replaced whole."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise CaProblem(f"{directory}: the CA there cannot be read ({exc}); `officepass ca init` makes "
                        "one") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CaProblem(f"{directory / CA_KEY}: not an EC key")
    return ca_key, ca_cert


def init_ca(directory: Path, hostnames: list[str]) -> list[Path]:
    """Make the CA (kept if it exists) and a broker certificate for `hostnames`; the files written."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    written: list[Path] = []
    if (directory / CA_KEY).exists():
        ca_key, ca_cert = _load_ca(directory)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "officepass operator CA")])
        ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        write_private(directory / CA_KEY, _key_pem(ca_key))
        (directory / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        written += [directory / CA_CERT, directory / CA_KEY]
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), loopback]
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                          (hostnames or ["localhost"])[0])]))
              .issuer_name(ca_cert.subject).public_key(broker_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=365 * BROKER_YEARS))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    write_private(directory / BROKER_KEY, _key_pem(broker_key))
    (directory / BROKER_CERT).write_bytes(broker.public_bytes(serialization.Encoding.PEM))
    return [*written, directory / BROKER_CERT, directory / BROKER_KEY]


CLIENT_YEARS = 5


def door_request(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """A door's certificate signing request, checked: PEM, its signature (the door holds the key),
    an EC P-256 key. CaProblem says why not."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CaProblem(f"not a PEM certificate signing request ({exc})") from None
    if not csr.is_signature_valid:
        raise CaProblem("the signing request's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise CaProblem("the door's key must be EC P-256")
    return csr


def sign_client(directory: Path, csr_pem: bytes, username: str) -> x509.Certificate:
    """A client certificate for a door's own key (from its signing request, checked by
    `door_request`), its subject the broker identity `username`. CaProblem says why not."""
    public = door_request(csr_pem).public_key()
    ca_key, ca_cert = _load_ca(directory)
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, username)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CLIENT_YEARS))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
