-- H3 cell ids as signed BIGINT (valid ids are < 2^63), by bit arithmetic alone: no extension.
-- Layout of an H3 cell index (64 bits): bit 63 reserved (0); bits 59-62 mode (1 = cell);
-- bits 56-58 reserved; bits 52-55 resolution; bits 45-51 base cell; then fifteen 3-bit digits,
-- digit r (r = 1..15) at bits 3*(15-r) .. 3*(15-r)+2. Digits finer than the resolution are 7.
-- Versioned file: migrations read it by name, so a later change goes in a new file (v2).

-- Resolution (0..15) of a cell.
CREATE OR REPLACE FUNCTION twin.h3_resolution(cell bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ((cell >> 52) & 15)::integer $$;

-- Parent of a cell at a coarser (or equal) resolution; NULL when res is outside 0..resolution.
-- Set the resolution field to res and every digit finer than res to 7 (binary 111).
CREATE OR REPLACE FUNCTION twin.h3_parent(cell bigint, res integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$
  SELECT CASE
    WHEN res < 0 OR res > ((cell >> 52) & 15) THEN NULL
    ELSE (cell & ~(15::bigint << 52)) | (res::bigint << 52) | ((1::bigint << (3 * (15 - res))) - 1)
  END
$$;

-- Hex string form used on the wire (h3-js, deck.gl): lowercase, no leading zeros.
CREATE OR REPLACE FUNCTION twin.h3_to_hex(cell bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT to_hex(cell) $$;

-- Hex string -> BIGINT; NULL for text that is not 1-16 hex digits.
CREATE OR REPLACE FUNCTION twin.h3_from_hex(hex text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$
  SELECT CASE WHEN hex ~ '^[0-9a-fA-F]{1,16}$'
    THEN ('x' || lpad(hex, 16, '0'))::bit(64)::bigint END
$$;
