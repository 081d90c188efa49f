import hashlib
import hmac
import time


def verify(secret: str, body: bytes, signature: str, tolerance: int = 300) -> bool:
    """True if Clientes signed this raw body with your endpoint's secret in the last 5 minutes."""
    fields = dict(part.split("=", 1) for part in signature.split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(fields["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))
