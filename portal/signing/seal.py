"""The vendor's seal: an ECDSA P-256 key and its certificate, and signatures over canonical JSON evidence.

P-256 rather than Ed25519 because PDF validators such as poppler's ``pdfsig`` (NSS) cannot check Ed25519, and the
same key seals both the evidence record and the PAdES signature of the executed PDF. The key lives in the data dir
and is generated on first use; the self-signed certificate carries CA=true and keyCertSign because NSS only
trusts a self-signed certificate imported as a trust anchor when it has both.

``verify`` needs nothing but the public key PEM, so an evidence bundle can be checked offline, and with
``openssl dgst -sha256 -verify pub.pem -signature sig.der data`` after base64-decoding the signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.settings import Settings, SettingsError
from portal.subprocessors.entries import canonical_bytes

KEY_FILE = "seal_key.pem"
CERT_FILE = "seal_cert.pem"
CERT_VALIDITY = dt.timedelta(days=3652)  # ten years: executed DPAs are kept and verified for years
DEFAULT_SUBJECT = "DPA portal"


class SealKeyError(SettingsError):
    """The seal key or certificate on disk cannot be used; the portal refuses to start rather than replace it."""


@dataclass(frozen=True)
class SealKey:
    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    key_path: Path
    cert_path: Path


# ---------------------------------------------------------------- loading and first-use generation

def seal_key(settings: Settings, *, key_file: Path | None = None, cert_file: Path | None = None) -> SealKey:
    """The vendor's seal key and certificate.

    By default both live in the data dir and are created the first time they are needed. A configured
    ``key_file`` (``PORTAL_SEAL_KEY_FILE``, or the argument) must already exist: a missing configured key is an
    error, never a reason to make a new one. A configured key without ``cert_file`` (``PORTAL_SEAL_CERT_FILE``)
    gets its self-signed certificate in the data dir.
    """
    subject = settings.vendor_name.strip() or DEFAULT_SUBJECT
    key_file = key_file or settings.seal_key_file
    cert_file = cert_file or settings.seal_cert_file
    cert_path = cert_file or settings.data_dir / CERT_FILE
    if key_file is None:
        private_key = _stored_or_new_key(settings.data_dir / KEY_FILE)
        key_path = settings.data_dir / KEY_FILE
    else:
        private_key = _read_key(key_file)
        key_path = key_file
    if cert_file is None:
        certificate = _stored_or_new_certificate(cert_path, private_key, subject)
    else:
        certificate = _read_certificate(cert_file)
    if certificate.public_key().public_bytes(*_SPKI_PEM) != private_key.public_key().public_bytes(*_SPKI_PEM):
        raise SealKeyError(f"the seal certificate {cert_path} is not for the key in {key_path}")
    return SealKey(private_key, certificate, key_path, cert_path)


_SPKI_PEM = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _stored_or_new_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        return _read_key(path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if not _publish_once(path, pem, 0o600):  # another thread or process got there first: use theirs
        return _read_key(path)
    return key


def _stored_or_new_certificate(path: Path, key: ec.EllipticCurvePrivateKey, subject: str) -> x509.Certificate:
    if path.exists():
        return _read_certificate(path)
    certificate = self_signed_certificate(key, subject)
    if not _publish_once(path, certificate.public_bytes(serialization.Encoding.PEM), 0o644):
        return _read_certificate(path)
    return certificate


def _publish_once(path: Path, content: bytes, mode: int) -> bool:
    """Write ``content`` to ``path`` unless it exists; False when another writer's file is already there.

    The content is written to a private temporary file (created with O_EXCL by mkstemp) and then hard-linked to
    its name, which fails if the name exists: unlike O_EXCL on the final name, a racing reader can never see a
    half-written file.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealKeyError(f"cannot read the seal key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SealKeyError(f"the seal key {path} is encrypted; store it without a password") from None
    except ValueError:
        raise SealKeyError(f"the seal key {path} is not a readable PEM private key; restore it from a backup "
                           "(it is not regenerated, since a new key could not verify past evidence)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SealKeyError(f"the seal key {path} must be an ECDSA P-256 key")
    return key


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealKeyError(f"cannot read the seal certificate {path}: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise SealKeyError(f"the seal certificate {path} is not a readable PEM certificate") from None


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, subject: str) -> x509.Certificate:
    """A certificate a trust store accepts as an anchor and a PDF validator accepts for signing."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    usage = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a verifier's clock running a little slow
            .not_valid_after(now + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


# ---------------------------------------------------------------- what a verifier is given

def public_key_pem(key: SealKey) -> bytes:
    return key.private_key.public_key().public_bytes(*_SPKI_PEM)


def certificate_pem(key: SealKey) -> bytes:
    return key.certificate.public_bytes(serialization.Encoding.PEM)


def certificate_fingerprint(key: SealKey) -> str:
    """SHA-256 over the certificate's DER, lowercase hex: what ``openssl x509 -fingerprint -sha256`` shows."""
    return hashlib.sha256(key.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


# ---------------------------------------------------------------- canonical evidence, signing and verifying

def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The exact bytes evidence is signed over: the same canonical form as sub-processor list versions.

    NaN and infinities are refused: they are not JSON, and other verifiers would parse or print them differently.
    """
    _refuse_non_finite(obj, "$")
    return canonical_bytes(obj)


def _refuse_non_finite(value: object, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}, which JSON cannot represent")
    if isinstance(value, Mapping):
        for name, item in value.items():
            _refuse_non_finite(item, f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{where}[{index}]")


def sign(key: SealKey, data: bytes) -> str:
    """Base64 of the DER-encoded ECDSA-SHA256 signature, the form ``openssl dgst -verify`` reads once decoded."""
    return base64.b64encode(key.private_key.sign(data, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def verify(public_key_pem: bytes, data: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is the seal over ``data``; a malformed public key raises ``ValueError``."""
    public_key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError("the public key is not an ECDSA P-256 key")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        return False
    return True
