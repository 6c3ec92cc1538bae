/*
 * vector.c -- every real[] the extension is handed, checked in one place: the rows a source
 * returns (reader.c), starting centers (init_centers), the centers and the vector that
 * kmeans_predict labels, and a saved model's centers.
 *
 * One view of an array (its dimensions, NULL bitmap and values) serves both the rows, read
 * from the datum's header without copies (the header may be unaligned: a short varlena), and
 * the arguments, already detoasted ArrayTypes.  The same three questions are asked of each:
 * the shape, the first NULL, the first value that is not finite; each caller words the error
 * for what the array is, always with the offending value or position and an SQLSTATE.
 */
#include "kmeans.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"

/* "NaN", "Infinity" or "-Infinity": how a non-finite value is named in messages. */
const char *
KmeansNonFiniteName(float v)
{
	return isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
}

/*
 * The view of a real[] from the bytes after its varlena header (VARDATA_ANY), read without
 * assuming alignment.  Element types other than real are a bug of the caller's query.
 */
void
KmeansArrayViewRaw(const char *p, KmeansArrayView *v)
{
	int32		dataoffset;
	Oid			elemtype;

	memcpy(&v->ndim, p, sizeof(int32));
	memcpy(&dataoffset, p + sizeof(int32), sizeof(int32));
	memcpy(&elemtype, p + 2 * sizeof(int32), sizeof(Oid));
	if (elemtype != FLOAT4OID)
		elog(ERROR, "kmeans: an array of element type %u, not real (this is a bug)", elemtype);
	v->nitems = 1;
	for (int i = 0; i < v->ndim; i++)
	{
		int32		dim;

		memcpy(&dim, p + 3 * sizeof(int32) + i * sizeof(int32), sizeof(int32));
		if (i < 2)
			v->dims[i] = dim;
		v->nitems *= dim;
	}
	if (v->ndim == 0)
		v->nitems = 0;
	v->nulls = dataoffset != 0 ? (const bits8 *) (p + 3 * sizeof(int32) + 2 * sizeof(int32) * v->ndim) : NULL;
	v->values = dataoffset != 0 ? p + dataoffset - VARHDRSZ : p + ARR_OVERHEAD_NONULLS(v->ndim) - VARHDRSZ;
}

/* The view of a detoasted real[] argument. */
void
KmeansArrayViewOf(ArrayType *a, KmeansArrayView *v)
{
	KmeansArrayViewRaw(VARDATA(a), v);
}

/* Position (0-based) of the first NULL element, or -1. */
int64
KmeansArrayFirstNull(const KmeansArrayView *v)
{
	if (v->nulls == NULL)
		return -1;
	for (int64 i = 0; i < v->nitems; i++)
		if (!(v->nulls[i / 8] & (1 << (i % 8))))
			return i;
	return -1;
}

/*
 * Copies m values (of an array without NULLs, maybe unaligned) to dst and returns the
 * position of the first that is not finite, or -1.
 */
int64
KmeansCopyFinite(const char *values, int64 m, float *dst)
{
	memcpy(dst, values, sizeof(float) * m);
	for (int64 i = 0; i < m; i++)
		if (!isfinite(dst[i]))
			return i;
	return -1;
}

/* The values of an argument without NULLs, aligned (a detoasted array's data is). */
static const float *
Values(const KmeansArrayView *v)
{
	return (const float *) v->values;
}

/* Position of the first value that is not finite in an aligned array without NULLs, or -1. */
static int64
FirstNonFinite(const KmeansArrayView *v)
{
	const float *x = Values(v);

	for (int64 i = 0; i < v->nitems; i++)
		if (!isfinite(x[i]))
			return i;
	return -1;
}

/* Refuses a k x d argument of centers (what) with a value that is not finite. */
static void
CentersFinite(const KmeansArrayView *v, int d, const char *what, const char *hint)
{
	int64		bad = FirstNonFinite(v);

	if (bad >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s has %s at center %d, position %d", what,
						KmeansNonFiniteName(Values(v)[bad]), (int) (bad / d) + 1,
						(int) (bad % d) + 1),
				 errhint("%s", hint)));
}

/* Explicit starting centers: a k x d real[] of finite numbers. */
const float *
KmeansCheckStartCenters(ArrayType *a, int k, int d)
{
	KmeansArrayView v;

	KmeansArrayViewOf(a, &v);
	if (KmeansArrayFirstNull(&v) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("init_centers must not contain NULLs"),
				 errhint("Pass k rows of d numbers.")));
	if (k < 0)
		return NULL;			/* the shape is checked once k and d are known */
	if (v.ndim != 2 || v.dims[0] != k || v.dims[1] != d)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("init_centers must be a %d x %d array, got %s", k, d,
						v.ndim == 2 ? psprintf("%d x %d", v.dims[0], v.dims[1]) :
						psprintf("a %d-dimensional array", v.ndim)),
				 errhint("Pass one row of %d values per cluster, e.g. ARRAY[[..],[..]]::real[].", d)));
	CentersFinite(&v, d, "init_centers", "Starting centers must be finite numbers.");
	return Values(&v);
}

/* The centers kmeans_predict(centers, x) labels against: k x d finite numbers. */
const float *
KmeansCheckPredictCenters(ArrayType *a, int *k, int *d)
{
	KmeansArrayView v;

	KmeansArrayViewOf(a, &v);
	if (v.ndim != 2)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("centers must be a 2-dimensional array (k x d), got a %d-dimensional array",
						v.ndim),
				 errhint("Pass one row per center, e.g. ARRAY[[0,0],[1,1]]::real[].")));
	if (KmeansArrayFirstNull(&v) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("centers must not contain NULLs"),
				 errhint("Pass k rows of d numbers.")));
	*k = v.dims[0];
	*d = v.dims[1];
	CentersFinite(&v, *d, "centers", "Centers must be finite numbers.");
	return Values(&v);
}

/* A vector to label: one dimension, d values, no NULL, finite; against names the centers. */
const float *
KmeansCheckVector(ArrayType *x, int d, const char *against)
{
	return KmeansCheckVectorHint(x, d, against, "Label vectors of the length the model was fitted on.");
}

/* The same, with the hint for a vector of another length. */
const float *
KmeansCheckVectorHint(ArrayType *x, int d, const char *against, const char *length_hint)
{
	KmeansArrayView v;
	int64		bad;

	KmeansArrayViewOf(x, &v);
	if (v.ndim != 1 || v.nitems != d)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("vector has %d values, %s has dimension %d", (int) v.nitems, against, d),
				 errhint("%s", length_hint)));
	if (KmeansArrayFirstNull(&v) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("vector to label contains a NULL"),
				 errhint("Replace or drop NULL elements first.")));
	if ((bad = FirstNonFinite(&v)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector to label has %s at position %d",
						KmeansNonFiniteName(Values(&v)[bad]), (int) bad + 1),
				 errhint("Only finite values can be labelled.")));
	return Values(&v);
}

/*
 * A vector argument checked as KmeansCheckVectorHint checks it and copied into dst (d floats),
 * read in place: an aggregate's transition function sees a row per call, and a short array
 * would otherwise be copied once to be detoasted and again to be used.  Only a compressed or
 * out-of-line value is detoasted.
 */
void
KmeansReadVector(Datum x, int d, float *dst, const char *against, const char *length_hint)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(x);
	KmeansArrayView v;
	int64		bad;

	if (VARATT_IS_EXTERNAL(raw) || VARATT_IS_COMPRESSED(raw))
		raw = pg_detoast_datum(raw);
	KmeansArrayViewRaw(VARDATA_ANY(raw), &v);
	if (v.ndim != 1 || v.nitems != d)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("vector has %d values, %s has dimension %d", (int) v.nitems, against, d),
				 errhint("%s", length_hint)));
	if (KmeansArrayFirstNull(&v) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("vector contains a NULL"),
				 errhint("Replace or drop NULL elements first.")));
	if ((bad = KmeansCopyFinite(v.values, d, dst)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %s at position %d", KmeansNonFiniteName(dst[bad]), (int) bad + 1),
				 errhint("Only finite values can be clustered.")));
}

/*
 * A saved model's centers (model `name` in `table`, k x d): anything else is a damaged row,
 * since the table's constraints and the extension only ever store finite k x d arrays.
 */
const float *
KmeansCheckModelCenters(ArrayType *a, const char *name, const char *table, int k, int d)
{
	KmeansArrayView v;
	int64		bad;
	bool		shaped = ARR_ELEMTYPE(a) == FLOAT4OID;

	/* the view reads real[] only: the element type first */
	if (shaped)
	{
		KmeansArrayViewOf(a, &v);
		shaped = v.ndim == 2 && v.dims[0] == k && v.dims[1] == d && KmeansArrayFirstNull(&v) < 0;
	}
	if (!shaped)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has centers that are not a %d x %d real[] without NULLs",
						name, k, d),
				 errhint("Fit and save the model again.")));
	if ((bad = FirstNonFinite(&v)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has %s in the center of cluster %d at position %d",
						name, KmeansNonFiniteName(Values(&v)[bad]), (int) (bad / d),
						(int) (bad % d) + 1),
				 errdetail("The value is centers[%d][%d] of the model's row in %s.",
						   (int) (bad / d) + 1, (int) (bad % d) + 1, table),
				 errhint("Fit and save the model again.")));
	return Values(&v);
}
