/*
 * results.c -- what every SQL form hands back: a materialised result set, a real[] per vector,
 * and the centers un-centred, as users see them.
 */
#include "kmeans.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/tuplestore.h"

/* Sets up a materialised result in the query's memory and returns its store. */
Tuplestorestate *
KmeansResultStore(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	Tuplestorestate *store;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "kmeans: return type must be a row type (this is a bug)");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);
	*desc = tupdesc;
	return store;
}

/* A one-dimensional real[] of d values. */
Datum
KmeansVectorDatum(const float *v, int d)
{
	Datum	   *elems = palloc(sizeof(Datum) * d);
	ArrayType  *a;

	for (int j = 0; j < d; j++)
		elems[j] = Float4GetDatum(v[j]);
	a = construct_array(elems, d, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
	pfree(elems);
	return PointerGetDatum(a);
}

/* A k x d real[] of centers (row j + 1 is center j), as the models table and the results hold them. */
Datum
KmeansCentersDatum(const float *c, int k, int d)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max((int64) k * d, 1));
	int			dims[2] = {k, d};
	int			lbs[2] = {1, 1};
	ArrayType  *a;

	for (int64 i = 0; i < (int64) k * d; i++)
		elems[i] = Float4GetDatum(c[i]);
	a = construct_md_array(elems, NULL, 2, dims, lbs, FLOAT4OID, sizeof(float4), true,
						   TYPALIGN_INT);
	pfree(elems);
	return PointerGetDatum(a);
}

/* The centers of segment seg, un-centred: what users see. */
float *
KmeansCentersOut(KmeansData *data, KmeansModelSet *ms, int seg)
{
	int			d = ms->d;
	int			k = ms->seg_off[seg + 1] - ms->seg_off[seg];
	float	   *out = palloc(sizeof(float) * k * d);
	const float *c = ms->centers + (int64) ms->seg_off[seg] * d;

	for (int64 i = 0; i < (int64) k * d; i++)
		out[i] = c[i] + data->mean[i % d];
	return out;
}
