"""Ed25519 signature verification, pure Python, written from RFC 8032 section 5.1.

Only verification (section 5.1.7) is needed: a verifier never signs. Points are kept in extended
homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z (section 5.1.4). This is not
constant time, which is fine for checking public data.
"""

from __future__ import annotations

import hashlib

#: The field prime p = 2^255 - 19 and the group order L (RFC 8032 section 5.1).
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
#: d = -121665/121666 mod p.
D = -121665 * pow(121666, P - 2, P) % P
#: sqrt(-1) mod p, used to recover x (section 5.1.3, step 3).
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]


def _add(a: Point, b: Point) -> Point:
    """Point addition, the formulas of section 5.1.4."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % P, g * h % P, f * g % P, e * h % P


def _multiply(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)  # the neutral element
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: Point, b: Point) -> bool:
    """Projective equality: x1/z1 == x2/z2 and y1/z1 == y2/z2."""
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    """Section 5.1.3 steps 2-4: the x with x^2 = (y^2 - 1) / (d y^2 + 1) and the given low bit."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P == 0:
        pass
    elif (v * x * x + u) % P == 0:
        x = x * SQRT_M1 % P
    else:
        return None
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def _decode_point(encoded: bytes) -> Point | None:
    """Section 5.1.3: a 32-byte little-endian y with the sign of x in the top bit; None if not a point."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= P:  # a non-canonical encoding is refused (step 1)
        return None
    x = _recover_x(y, sign)
    if x is None:
        return None
    return x, y, 1, x * y % P


_BASE_Y = 4 * pow(5, P - 2, P) % P
_BASE: Point = (_recover_x(_BASE_Y, 0) or 0, _BASE_Y, 1, (_recover_x(_BASE_Y, 0) or 0) * _BASE_Y % P)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 section 5.1.7: True iff ``signature`` is a valid Ed25519 signature of ``message``.

    Malformed keys and signatures (wrong length, not a point, S >= L) give False, never an exception.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    # Step 3: the group equation [8][S]B = [8]R + [8][k]A.
    left = _multiply(8 * s, _BASE)
    right = _multiply(8, _add(r, _multiply(k, a)))
    return _equal(left, right)
