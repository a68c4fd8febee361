"""The vendor's seal key: made once and kept, a certificate validators accept, signatures openssl agrees with."""

from __future__ import annotations

import base64
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.settings import Settings
from portal.signing.seal import (
    SealKey,
    SealKeyError,
    canonical_json,
    certificate_fingerprint,
    certificate_pem,
    public_key_pem,
    seal_key,
    sign,
    verify,
)

OPENSSL = "/usr/bin/openssl"
VENDOR = "Nordlicht Cloud GmbH"


def settings_in(data_dir: Path, vendor_name: str = VENDOR) -> Settings:
    data_dir.mkdir(exist_ok=True)  # as Settings.from_env does
    return Settings(data_dir=data_dir, database_url="sqlite://", secret_key="unused", vendor_name=vendor_name)


def openssl_verifies(tmp_path: Path, pub_pem: bytes, data: bytes, signature_b64: str) -> bool:
    """What the bundle README tells a verifier to run; its output, not only its exit code, decides."""
    (tmp_path / "pub.pem").write_bytes(pub_pem)
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signature_b64))
    result = subprocess.run(
        [OPENSSL, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "data"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "Verified OK"


# ---------------------------------------------------------------- the key file

def test_key_is_generated_once_and_reused(tmp_path: Path) -> None:
    first = seal_key(settings_in(tmp_path))
    again = seal_key(settings_in(tmp_path))
    assert public_key_pem(again) == public_key_pem(first)
    assert certificate_fingerprint(again) == certificate_fingerprint(first)

    key_file = tmp_path / "seal_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seal_cert.pem", "seal_key.pem"]  # no temporaries left

    # A fresh load straight from the file, as another process would see it.
    loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP256R1)
    assert loaded.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == public_key_pem(first)


def test_two_threads_generating_at_once_end_with_one_key(tmp_path: Path) -> None:
    start = threading.Barrier(2)
    keys: list[SealKey] = []

    def load() -> None:
        start.wait()
        keys.append(seal_key(settings_in(tmp_path)))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 2
    assert public_key_pem(keys[0]) == public_key_pem(keys[1]) == public_key_pem(seal_key(settings_in(tmp_path)))
    assert certificate_fingerprint(keys[0]) == certificate_fingerprint(keys[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seal_cert.pem", "seal_key.pem"]


def test_corrupt_key_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    key_file = tmp_path / "seal_key.pem"
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SealKeyError, match=r"seal_key\.pem is not a readable PEM private key"):
        seal_key(settings_in(tmp_path))
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\nnot a key")
    assert not (tmp_path / "seal_cert.pem").exists()


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "seal_key.pem").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SealKeyError, match="must be an ECDSA P-256 key"):
        seal_key(settings_in(tmp_path))


def test_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    seal_key(settings_in(tmp_path))
    (tmp_path / "seal_key.pem").unlink()  # the key is lost but its certificate stays behind
    with pytest.raises(SealKeyError, match="is not for the key in"):
        seal_key(settings_in(tmp_path))


def test_configured_key_and_certificate_are_used_and_never_created(tmp_path: Path) -> None:
    made = seal_key(settings_in(tmp_path / "elsewhere", vendor_name="Configured Ltd"))
    configured = seal_key(settings_in(tmp_path / "data"), key_file=made.key_path, cert_file=made.cert_path)
    assert public_key_pem(configured) == public_key_pem(made)
    assert certificate_fingerprint(configured) == certificate_fingerprint(made)
    assert list((tmp_path / "data").iterdir()) == []

    with pytest.raises(SealKeyError, match="cannot read the seal key"):
        seal_key(settings_in(tmp_path / "data"), key_file=tmp_path / "missing.pem")
    assert list((tmp_path / "data").iterdir()) == []


def test_the_settings_name_a_configured_key_and_certificate(tmp_path: Path) -> None:
    made = seal_key(settings_in(tmp_path / "elsewhere"))
    env = {"PORTAL_DATA_DIR": str(tmp_path / "data"), "PORTAL_SECRET_KEY": "unused",
           "PORTAL_SEAL_KEY_FILE": str(made.key_path), "PORTAL_SEAL_CERT_FILE": str(made.cert_path)}
    configured = seal_key(Settings.from_env(env))
    assert certificate_fingerprint(configured) == certificate_fingerprint(made)
    assert not (tmp_path / "data" / "seal_key.pem").exists()


# ---------------------------------------------------------------- the certificate

def test_certificate_has_what_trust_stores_and_pdf_validators_need(tmp_path: Path) -> None:
    key = seal_key(settings_in(tmp_path))
    cert = x509.load_pem_x509_certificate((tmp_path / "seal_cert.pem").read_bytes())
    assert certificate_pem(key) == (tmp_path / "seal_cert.pem").read_bytes()

    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == VENDOR
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == VENDOR
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 3650
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"

    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment and usage.value.key_cert_sign
    assert not usage.value.key_encipherment and not usage.value.crl_sign
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(key.private_key.public_key())

    # It belongs to the key and is signed by it.
    assert cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == public_key_pem(key)
    cert.verify_directly_issued_by(cert)

    # The fingerprint is the one openssl shows.
    shown = subprocess.run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(key.cert_path)],
                           capture_output=True, text=True, check=True).stdout
    assert shown.strip().split("=", 1)[1].replace(":", "").lower() == certificate_fingerprint(key)


def test_openssl_accepts_the_certificate_as_its_own_trust_anchor(tmp_path: Path) -> None:
    key = seal_key(settings_in(tmp_path))
    result = subprocess.run([OPENSSL, "verify", "-CAfile", str(key.cert_path), str(key.cert_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK")


# ---------------------------------------------------------------- canonical JSON

def test_canonical_json_is_sorted_compact_utf8() -> None:
    evidence = {"z": 1, "a": {"ü": "Zürich", "b": [1.5, True, None]}}
    assert canonical_json(evidence) == '{"a":{"b":[1.5,true,null],"ü":"Zürich"},"z":1}'.encode()
    assert canonical_json({"a": {"b": [1.5, True, None], "ü": "Zürich"}, "z": 1}) == canonical_json(evidence)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_canonical_json_refuses_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\$\.events\[1\]\.score is"):
        canonical_json({"events": [{"score": 1.0}, {"score": bad}]})


# ---------------------------------------------------------------- signing and verifying

def test_signature_verifies_with_the_public_key_and_with_openssl(tmp_path: Path) -> None:
    key = seal_key(settings_in(tmp_path / "seal"))
    data = canonical_json({"document_sha256": "ab" * 32, "events": [{"at": "2025-01-01T00:00:00Z"}]})
    signature = sign(key, data)
    assert verify(public_key_pem(key), data, signature)
    assert openssl_verifies(tmp_path, public_key_pem(key), data, signature)


def test_changed_byte_or_another_key_fails_both_verifiers(tmp_path: Path) -> None:
    key = seal_key(settings_in(tmp_path / "ours"))
    other = seal_key(settings_in(tmp_path / "theirs"))
    data = canonical_json({"document_sha256": "cd" * 32})
    signature = sign(key, data)

    changed = bytearray(data)
    changed[5] ^= 0x01
    assert not verify(public_key_pem(key), bytes(changed), signature)
    assert not openssl_verifies(tmp_path, public_key_pem(key), bytes(changed), signature)

    assert not verify(public_key_pem(other), data, signature)
    assert not openssl_verifies(tmp_path, public_key_pem(other), data, signature)

    # The control: the untouched pair still passes both, so the failures above are the tampering's doing.
    assert verify(public_key_pem(key), data, signature)
    assert openssl_verifies(tmp_path, public_key_pem(key), data, signature)


def test_malformed_signatures_are_invalid_not_errors(tmp_path: Path) -> None:
    key = seal_key(settings_in(tmp_path))
    data = b"evidence"
    assert not verify(public_key_pem(key), data, "not base64!")
    assert not verify(public_key_pem(key), data, base64.b64encode(b"not DER").decode())
    assert not verify(public_key_pem(key), data, "")


def test_a_public_key_that_is_not_p256_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="not an ECDSA P-256 key"):
        verify(other, b"data", "AAAA")
