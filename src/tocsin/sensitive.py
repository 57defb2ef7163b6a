"""Sensitive event fields: AES-256-GCM encryption at rest, masking for viewers.

A sensitive field's value is stored in the anomaly's ``fields`` as
``"enc:v1:" + base64(nonce ‖ ciphertext‖tag)``, the plaintext being the
value's JSON. The associated data binds the ciphertext to its pipeline, event
id and field name, so a value copied onto another row does not decrypt.
Analysts and admins get values decrypted; viewers get :data:`MASK`.

The key is 32 bytes, given base64-encoded in env ``TOCSIN_ENCRYPTION_KEY``
(``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
MASK = "****"
NONCE_BYTES = 12


def key_from_env() -> bytes | None:
    value = os.environ.get("TOCSIN_ENCRYPTION_KEY")
    return decode_key(value) if value else None


def decode_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("TOCSIN_ENCRYPTION_KEY must be base64 of 32 random bytes") from None
    if len(key) != 32:
        raise ValueError(f"TOCSIN_ENCRYPTION_KEY must decode to 32 bytes (AES-256), got {len(key)}")
    return key


class FieldCipher:
    """Encrypts and masks the ``sensitive`` fields of event dicts.

    >>> cipher = FieldCipher(bytes(32), ["card_holder"])
    >>> stored = cipher.encrypt_fields({"card_holder": "Ada", "amount": 5}, "p", "e1")
    >>> stored["card_holder"].startswith(PREFIX), stored["amount"]
    (True, 5)
    >>> cipher.decrypt_fields(stored, "p", "e1")["card_holder"]
    'Ada'
    >>> cipher.mask_fields(stored)["card_holder"]
    '****'
    """

    def __init__(self, key: bytes | None, sensitive: Iterable[str]) -> None:
        self.sensitive = tuple(sensitive)
        if self.sensitive and key is None:
            raise ValueError(
                f"fields {list(self.sensitive)} are marked sensitive but no encryption key is set: "
                "set TOCSIN_ENCRYPTION_KEY to base64 of 32 random bytes"
            )
        self._aead = AESGCM(key) if key is not None else None

    def _aad(self, pipeline: str, event_id: str, name: str) -> bytes:
        return f"{pipeline}\x00{event_id}\x00{name}".encode()

    def encrypt_fields(self, fields: dict[str, Any], pipeline: str, event_id: str) -> dict[str, Any]:
        if not self.sensitive:
            return fields
        out = dict(fields)
        for name in self.sensitive:
            if name in out and out[name] is not None:
                nonce = os.urandom(NONCE_BYTES)
                sealed = self._aead.encrypt(nonce, json.dumps(out[name]).encode(), self._aad(pipeline, event_id, name))
                out[name] = PREFIX + base64.b64encode(nonce + sealed).decode()
        return out

    def decrypt_fields(self, fields: dict[str, Any], pipeline: str, event_id: str) -> dict[str, Any]:
        if not self.sensitive:
            return fields
        out = dict(fields)
        for name in self.sensitive:
            value = out.get(name)
            if isinstance(value, str) and value.startswith(PREFIX):
                blob = base64.b64decode(value[len(PREFIX):])
                try:
                    plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(pipeline, event_id, name))
                    out[name] = json.loads(plain)
                except InvalidTag:
                    out[name] = MASK  # wrong key or tampered row: never show ciphertext as if it were data
        return out

    def mask_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        if not self.sensitive:
            return fields
        return {k: (MASK if k in self.sensitive and v is not None else v) for k, v in fields.items()}
