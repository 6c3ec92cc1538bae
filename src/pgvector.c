/*
 * pgvector.c -- pgvector's vector and halfvec columns read from their own binary form, without
 * the cast to real[] that would build an array per row.
 *
 * pgvector (github.com/pgvector/pgvector) stores both types as a varlena holding an int16
 * dimension, an int16 that is always zero, and the values: float4 for vector, IEEE binary16
 * for halfvec.  A type is taken for one of them only when it belongs to the installed
 * extension named "vector" (pg_depend), never by its name alone, so a type of the user's that
 * happens to be called vector is cast like any other.  Every value's length is checked against
 * its dimension before a value is read, and the values go through the same finiteness check as
 * a real[]'s.  Nothing here needs pgvector at build time or at load time.
 */
#include "kmeans.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "utils/syscache.h"

/* The header pgvector puts before the values: dimension and a reserved zero, int16 each. */
#define PGVECTOR_HEADER 4

/* How a type of pgvector's is read, or KMEANS_INPUT_ARRAY for any other type. */
KmeansInputKind
KmeansPgvectorKind(Oid typid)
{
	Oid			ext = get_extension_oid("vector", true);
	HeapTuple	tup;
	KmeansInputKind kind = KMEANS_INPUT_ARRAY;

	if (!OidIsValid(ext) || !OidIsValid(typid) || getExtensionOfObject(TypeRelationId, typid) != ext)
		return KMEANS_INPUT_ARRAY;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		return KMEANS_INPUT_ARRAY;
	if (strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "vector") == 0)
		kind = KMEANS_INPUT_VECTOR;
	else if (strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "halfvec") == 0)
		kind = KMEANS_INPUT_HALFVEC;
	ReleaseSysCache(tup);
	return kind;
}

/*
 * The dimension and values of a detoasted vector or halfvec (v is the whole varlena, maybe
 * with a short header, so the values may be unaligned).  A length that does not match the
 * dimension is an ERROR: the value is not what pgvector writes.
 */
const char *
KmeansPgvectorValues(const struct varlena *v, KmeansInputKind kind, int *dim)
{
	const char *p = VARDATA_ANY(v);
	Size		len = VARSIZE_ANY_EXHDR(v);
	int16		d;
	Size		width = kind == KMEANS_INPUT_HALFVEC ? 2 : sizeof(float);

	if (len < PGVECTOR_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a %s value of %zu bytes is too short for its header",
						kind == KMEANS_INPUT_HALFVEC ? "halfvec" : "vector", len)));
	memcpy(&d, p, sizeof(int16));
	if (d < 0 || len != PGVECTOR_HEADER + (Size) d * width)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a %s value of %zu bytes does not hold its %d dimensions",
						kind == KMEANS_INPUT_HALFVEC ? "halfvec" : "vector", len, (int) d)));
	*dim = d;
	return p + PGVECTOR_HEADER;
}

/* An IEEE binary16 value as a float: exact, subnormals, infinities and NaN included. */
static inline float
HalfToFloat(uint16 h)
{
	uint32		sign = (uint32) (h & 0x8000) << 16;
	uint32		exp = (h >> 10) & 0x1f;
	uint32		mant = h & 0x3ff;
	uint32		bits;
	float		f;

	if (exp == 0x1f)
		bits = sign | 0x7f800000 | (mant << 13);	/* infinity or NaN */
	else if (exp != 0)
		bits = sign | ((exp + 112) << 23) | (mant << 13);	/* rebias 15 -> 127 */
	else
	{
		/* zero or subnormal: mant * 2^-24, exactly representable in float */
		f = ldexpf((float) mant, -24);
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/*
 * Converts m binary16 values (maybe unaligned) to floats in dst and returns the position of
 * the first that is not finite, or -1.
 */
int64
KmeansHalfCopyFinite(const char *values, int64 m, float *dst)
{
	int64		bad = -1;

	for (int64 i = 0; i < m; i++)
	{
		uint16		h;

		memcpy(&h, values + 2 * i, sizeof(h));
		dst[i] = HalfToFloat(h);
		if (bad < 0 && !isfinite(dst[i]))
			bad = i;
	}
	return bad;
}
