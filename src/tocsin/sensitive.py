"""Sensitive fields: sealed at rest (AES-256-GCM) and masked for viewers, wherever they or numbers
derived from them appear.

``schema.sensitive`` names fields (an amount, a card holder) that only analysts
and admins may read. Protecting the field alone is not enough: an explanation
says "amount 1,799.06 vs this card's usual 0–116", and a window feature's
``amount_sum_1m`` *is* the amount of a lone event. So what is derived from a
sensitive field (the features computed from it or keyed by it,
:meth:`tocsin.features.featureset.FeatureSet.derived_from`) is protected the
same way, and so are dead letters' raw records (they can hold anything):

- **at rest** every driver seals them before they are stored (:class:`Sealer`):
  the field's value in an anomaly's ``fields``, the ``value`` and ``text`` of its
  explanation items for derived features (a masked text stays readable: "amount
  **** vs this card's usual ****–****"), and a dead letter's ``raw``;
- **on the way out** analysts and admins get them unsealed, viewers masked
  (:data:`MASK`), and the entity view leaves derived state out for viewers.

A sealed value is ``"enc:v1:" + base64(nonce ‖ ciphertext‖tag)``, the plaintext
being the value's JSON. The associated data binds the ciphertext to its pipeline,
record and field, so a value copied onto another row does not decrypt.

The key is 32 bytes, given base64-encoded in env ``TOCSIN_ENCRYPTION_KEY``
(``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``).
Channels (webhooks, email, the Kafka alerts topic) get the sealed or masked forms.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tocsin.spec import PipelineSpec

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

    def seal(self, value: Any, aad: tuple[str, ...]) -> str:
        """``value`` (anything JSON) sealed under ``aad`` = (record, name) of this cipher's pipeline."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(value).encode(), "\x00".join(aad).encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def unseal(self, token: str, aad: tuple[str, ...]) -> Any:
        """The value :meth:`seal` sealed, or :data:`MASK` for a wrong key or a tampered token."""
        blob = base64.b64decode(token[len(PREFIX):])
        try:
            return json.loads(self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], "\x00".join(aad).encode()))
        except InvalidTag:
            return MASK

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


#: a number in an explanation's text (1,799.06; -3.2; 49)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")


def mask_numbers(text: str) -> str:
    """``text`` with every number masked: what a viewer may read of a sentence about a sensitive field.

    >>> mask_numbers("amount 1,799.06 vs this card's usual 0–116.5")
    "amount **** vs this card's usual ****–****"
    """
    return _NUMBER.sub(MASK, text)


class Sealer:
    """Seals what a stream stores of ``sensitive`` fields and of the ``derived`` features, and opens or
    masks it again for a reader (see the module docstring)."""

    def __init__(self, cipher: FieldCipher, pipeline: str, derived: frozenset[str]) -> None:
        self.cipher = cipher
        self.pipeline = pipeline
        #: features computed from (or keyed by) a sensitive field
        self.derived = derived

    @property
    def active(self) -> bool:
        return bool(self.cipher.sensitive)

    # --- before storing ----------------------------------------------------------

    def seal_anomaly(self, row: dict[str, Any]) -> dict[str, Any]:
        """An anomaly row with its sensitive fields and the derived part of its explanation sealed."""
        event_id = row["event_id"]
        row["fields"] = self.cipher.encrypt_fields(row["fields"], self.pipeline, event_id)
        row["explanation"] = [self._seal_item(item, event_id) for item in row.get("explanation") or []]
        return row

    def _seal_item(self, item: dict[str, Any], event_id: str) -> dict[str, Any]:
        if item.get("feature") not in self.derived or "sealed" in item:
            return item
        secret = {"value": item.get("value"), "text": item.get("text")}
        return {**item, "value": None, "text": mask_numbers(str(item.get("text", ""))),
                "sealed": self.cipher.seal(secret, self._aad(event_id, "explanation/" + item["feature"]))}

    def seal_dead_letter(self, row: dict[str, Any]) -> dict[str, Any]:
        """A dead letter's row with its raw record sealed (it may hold any field, unparsed)."""
        raw = row["raw"]
        token = self.cipher.seal(base64.b64encode(bytes(raw)).decode(), self._aad(f"{row['source']}/{row['position']}", "raw"))
        return {**row, "raw": token.encode()}

    # --- when reading --------------------------------------------------------------

    def reveal_explanation(self, items: list[dict[str, Any]], event_id: str) -> list[dict[str, Any]]:
        out = []
        for item in items or []:
            if "sealed" in item:
                secret = self.cipher.unseal(item["sealed"], self._aad(event_id, "explanation/" + item["feature"]))
                item = {k: v for k, v in item.items() if k != "sealed"}
                if isinstance(secret, dict):
                    item.update(secret)
            out.append(item)
        return out

    @staticmethod
    def mask_explanation(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "sealed"} for item in items or []]

    def reveal_raw(self, raw: bytes, source: str, position: int) -> bytes:
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes | bytearray | memoryview) else str(raw)
        if not text.startswith(PREFIX):
            return bytes(raw)
        plain = self.cipher.unseal(text, self._aad(f"{source}/{position}", "raw"))
        return base64.b64decode(plain) if isinstance(plain, str) else MASK.encode()

    def _aad(self, record: str, name: str) -> tuple[str, ...]:
        return self.pipeline, record, name


def sealer_for(spec: PipelineSpec, key: bytes | None = None, sensitive: Iterable[str] | None = None) -> Sealer | None:
    """The sealer of ``spec``'s sensitive fields (``sensitive`` overrides ``schema.sensitive``), with
    ``key`` or ``TOCSIN_ENCRYPTION_KEY``; None when no field is sensitive. Raises ValueError (naming the
    variable) when fields are sensitive but no key is set: they are never stored in clear."""
    fields = list(spec.event_schema.sensitive if sensitive is None else sensitive)
    if not fields:
        return None
    from tocsin.features.featureset import FeatureSet

    cipher = FieldCipher(key if key is not None else key_from_env(), fields)
    return Sealer(cipher, spec.name, FeatureSet.from_spec(spec).derived_from(set(fields)))
