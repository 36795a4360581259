"""Column helpers shared by the analyses: true chronological order, readable decimals and doubles."""

from __future__ import annotations

import ibis.expr.types as ir

#: True chronological order of records: time, then stream, then the stream's own sequence.
CHRONOLOGICAL = ("ts_event", "stream", "sequence")


def chronological(table: ir.Table) -> ir.Table:
    """``table`` ordered by (``ts_event``, ``stream``, ``sequence``): ties in time broken by sequence."""
    return table.order_by(*CHRONOLOGICAL)


def decimal_text(value: ir.Value) -> ir.StringValue:
    """A DECIMAL(38,18) as short text: ``1.100120000000000000`` becomes ``1.10012``, ``100.000...`` ``100``."""
    return value.cast("string").re_replace(r"\.?0+$", "")


def text(value: ir.Value, missing: str = "?") -> ir.StringValue:
    """Any value as text for a description, ``missing`` when NULL."""
    return value.cast("string").fill_null(missing)


def float_text(value: ir.FloatingValue) -> ir.StringValue:
    """A double as plain decimal text, the same on every engine: ``8e-4`` is ``0.0008``, ``1.0`` is ``1``.

    Engines agree on a double's shortest digits but not on how they print them (Spark ``8.0E-4``
    and ``1.0E7``, DuckDB ``0.0008`` and ``10000000.0``), so text with an exponent is taken apart
    (sign, the digit before the point, the others, the exponent) and written again without one;
    ``nan``, ``inf`` and ``-inf`` as they are. Exact across DuckDB and Spark for magnitudes from
    1e-300 to 1e16; past that, and for subnormals, Java 17's ``Double.toString`` may print a digit
    more than needed. Kept flat (no step nests another's expression): SQL text grows with nesting.
    """
    import ibis

    raw = value.cast("string").lower()
    scientific = r"^(-?)([0-9])\.?([0-9]*)e([-+]?[0-9]+)$"
    is_scientific = raw.re_search(scientific)
    sign, lead = raw.re_extract(scientific, 1), raw.re_extract(scientific, 2)
    rest = raw.re_extract(scientific, 3).re_replace("0+$", "")
    exponent = ibis.ifelse(is_scientific, raw.re_extract(scientific, 4), "0").cast("int64")
    zeros = ibis.literal("0")
    unscaled = ibis.cases(
        (exponent < 0, sign + "0." + zeros.repeat(-exponent - 1) + lead + rest),
        (rest.length() <= exponent, sign + lead + rest + zeros.repeat(exponent - rest.length())),
        else_=sign + lead + rest.substr(0, exponent) + "." + rest.substr(exponent),
    )
    plain = ibis.ifelse(raw.contains("."), raw.re_replace("0+$", "").re_replace("[.]$", ""), raw)
    return ibis.cases((is_scientific, unscaled), (raw.re_search("^-?[0-9]"), plain),
                      else_=raw.replace("infinity", "inf"))
