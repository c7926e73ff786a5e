"""An independent verifier for rds-token-broker's audit evidence, written from the specs
(RFC 8785 JCS, RFC 6962 / RFC 9162 section 2.1 Merkle trees, C2SP signed-note and
tlog-checkpoint), not from the broker's code. Only the Python standard library and
`cryptography` (Ed25519).

    python rtbverify.py receipt FILE --key VERIFIER_KEY [--key ...]
    python rtbverify.py event FILE            # one event (JSON): prints its hash
    python rtbverify.py checkpoint FILE --key VERIFIER_KEY
    python rtbverify.py consistency FILE --key VERIFIER_KEY
        # FILE: {"old": note, "new": note, "hashes": [base64 ...]}, the hashes as
        # GET /v1/audit/proofs/consistency gives them

Exit status 0 when the evidence holds, 1 with a reason on stderr when it does not.
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1


class Invalid(Exception):
    """The evidence does not hold."""


# --- RFC 8785 (for the values events hold: strings, integers, booleans, null) ---------

def jcs_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise Invalid("integer beyond 2^53")
        return str(value)
    if isinstance(value, float):
        if value != int(value) or abs(value) > MAX_SAFE_INTEGER:
            raise Invalid("a non-integer number")
        return str(int(value))
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise Invalid("not a JSON value")


def event_hash(event):
    """The hash an event (as exported, JCS-encoded) must carry."""
    if event.get("encoding") != "jcs":
        raise Invalid("this verifier checks JCS events only (legacy events: see docs)")
    body = {k: v for k, v in event.items() if k != "hash" and v is not None}
    text = event["prev_hash"] + "\n" + jcs(body)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- RFC 6962 / RFC 9162 section 2.1 ----------------------------------------------------

def leaf_hash(event_hash_hex):
    return hashlib.sha256(b"\x00" + bytes.fromhex(event_hash_hex)).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    """MTH (RFC 6962 section 2.1), recursively: for small examples and tests."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, root1, root2, proof):
    """RFC 9162 section 2.1.4.2."""
    if size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    proof = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        proof.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


# --- C2SP signed-note and tlog-checkpoint ----------------------------------------------

class VerifierKey:
    def __init__(self, text):
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise Invalid("a verifier key is name+keyid+base64")
        self.name, hex_id, b64 = parts
        raw = base64.b64decode(b64, validate=True)
        if len(raw) != 33 or raw[0] != 0x01:
            raise Invalid("not an Ed25519 verifier key (type 0x01, 32 bytes)")
        self.key_id = int(hex_id, 16)
        if self.key_id != key_id(self.name, raw[1:]):
            raise Invalid("the verifier key's id does not match its name and key")
        self.public = Ed25519PublicKey.from_public_bytes(raw[1:])


def key_id(name, public_key):
    h = hashlib.sha256(name.encode("utf-8") + b"\n" + b"\x01" + public_key).digest()
    return int.from_bytes(h[:4], "big")


def verify_note(note, keys):
    """Returns (body text, names of the keys whose signatures verify); refuses a note with
    no signature by a known key, or a known key's bad signature."""
    if "\n\n" not in note or not note.endswith("\n"):
        raise Invalid("not a signed note")
    body, sigs = note.split("\n\n", 1)
    body += "\n"
    signed_by = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Invalid("a signature line does not start with an em dash")
        name, _, b64 = line[2:].rpartition(" ")
        raw = base64.b64decode(b64, validate=True)
        if len(raw) < 4:
            raise Invalid("a signature is too short")
        kid = int.from_bytes(raw[:4], "big")
        for k in keys:
            if k.name == name and k.key_id == kid:
                try:
                    k.public.verify(raw[4:], body.encode("utf-8"))
                except InvalidSignature:
                    raise Invalid("signature by %s does not verify" % name)
                signed_by.append(name)
    if not signed_by:
        raise Invalid("no signature by a known key")
    return body, signed_by


def parse_checkpoint(body):
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise Invalid("a checkpoint body has origin, size and root lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise Invalid("the tree size is not a decimal number")
    raw = base64.b64decode(root, validate=True)
    if len(raw) != 32:
        raise Invalid("the root hash is not 32 bytes")
    return origin, int(size), raw


def verify_receipt(receipt, keys):
    """A receipt: {"event", "proof": {"leaf_index", "tree_size", "hashes"},
    "checkpoint"}. Returns a one-line summary."""
    event = receipt["event"]
    h = event_hash(event)
    if h != event["hash"]:
        raise Invalid("the event's hash does not match its contents")
    body, signed_by = verify_note(receipt["checkpoint"], keys)
    origin, size, root = parse_checkpoint(body)
    if not origin.endswith("/" + event["chain_id"]):
        raise Invalid("the checkpoint is for another chain")
    proof = receipt["proof"]
    if proof["chain_id"] != event["chain_id"]:
        raise Invalid("the proof is for another chain than the event")
    index = proof["leaf_index"]
    if index != event["seq"] - 1:
        raise Invalid("the leaf index is not the event's position")
    if proof["tree_size"] != size:
        raise Invalid("the proof is for another tree size than the checkpoint")
    hashes = [base64.b64decode(x, validate=True) for x in proof["hashes"]]
    if not verify_inclusion(leaf_hash(h), index, size, hashes, root):
        raise Invalid("the inclusion proof does not lead to the checkpoint's root")
    return "ok: event %s is leaf %d of %d in %s, signed by %s" % (
        event["id"], index, size, origin, ", ".join(signed_by))


def verify_checkpoint(note, keys):
    body, signed_by = verify_note(note, keys)
    origin, size, root = parse_checkpoint(body)
    return origin, size, root, signed_by


def verify_consistency_file(doc, keys):
    """Two signed checkpoints of one log and the consistency proof between them (RFC 9162
    section 2.1.4.2): the newer tree extends the older one."""
    origin1, size1, root1, _ = verify_checkpoint(doc["old"], keys)
    origin2, size2, root2, signed_by = verify_checkpoint(doc["new"], keys)
    if origin1 != origin2:
        raise Invalid("the two checkpoints are of different logs")
    hashes = [base64.b64decode(x, validate=True) for x in doc["hashes"]]
    if any(len(h) != 32 for h in hashes):
        raise Invalid("a proof hash is not 32 bytes")
    if not verify_consistency(size1, size2, root1, root2, hashes):
        raise Invalid("the consistency proof does not show that %d extends %d" % (size2, size1))
    return "ok: %s size %d extends size %d, signed by %s" % (
        origin2, size2, size1, ", ".join(signed_by))


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["receipt", "event", "checkpoint", "consistency"])
    p.add_argument("file")
    p.add_argument("--key", action="append", default=[])
    a = p.parse_args(argv)
    try:
        text = open(a.file, encoding="utf-8").read()
        keys = [VerifierKey(k) for k in a.key]
        if a.what == "receipt":
            print(verify_receipt(json.loads(text), keys))
        elif a.what == "consistency":
            print(verify_consistency_file(json.loads(text), keys))
        elif a.what == "event":
            print(event_hash(json.loads(text)))
        else:
            body, signed_by = verify_note(text, keys)
            origin, size, root = parse_checkpoint(body)
            print("ok: %s size %d root %s signed by %s" % (
                origin, size, base64.b64encode(root).decode(), ", ".join(signed_by)))
    except (Invalid, ValueError, KeyError, TypeError) as e:
        print("invalid: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
