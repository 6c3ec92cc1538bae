/*
 * aggregate.c -- kmeans_agg(x, k [, options]): one k-means model per GROUP BY group.
 *
 * The transition function hands each row to the group's fit (groupfit.c); the final function
 * fits and returns a kmeans_model, (k, dim, metric, centers, sizes, inertia, n_iter, n_rows,
 * options), which kmeans_predict labels with and kmeans_save_model stores.  The rows of a group
 * are kept in memory within kmeans.memory_limit: a fit needs them once per iteration and an
 * aggregate cannot read its input twice.  There is no combine function: a fit of the whole
 * group cannot be assembled from fits of its parts (kmeans_step is the aggregate that can).
 */
#include "kmeans.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(kmeans_agg_transfn);
PG_FUNCTION_INFO_V1(kmeans_agg_final);

/* kmeans_agg's transition, for (x, k) and (x, k, options). */
Datum
kmeans_agg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KmeansGroupFit *g;
	Jsonb	   *options = PG_NARGS() > 3 && !PG_ARGISNULL(3) ? PG_GETARG_JSONB_P(3) : NULL;
	int			k;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		KmeansNotAggregate("kmeans_agg_transfn", "kmeans_agg");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kmeans_agg: k must not be NULL"),
				 errhint("Pass the number of clusters per group.")));
	k = PG_GETARG_INT32(2);
	if (PG_ARGISNULL(0))
		g = KmeansGroupFitBegin(aggcxt, "kmeans_agg", k, options);
	else
	{
		g = (KmeansGroupFit *) PG_GETARG_POINTER(0);
		KmeansGroupFitCheckArgs(g, k, options);
	}
	KmeansGroupFitRow(g, PG_GETARG_DATUM(1), PG_ARGISNULL(1));
	PG_RETURN_POINTER(g);
}

/* The model of a fitted group as a kmeans_model value. */
static Datum
ModelDatum(FunctionCallInfo fcinfo, KmeansGroupFit *g)
{
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {false};
	int			k = g->k,
				d = g->data->d;
	Datum	   *sizes = palloc(sizeof(Datum) * k);

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "kmeans_agg_final must return a composite type");
	desc = BlessTupleDesc(desc);
	for (int j = 0; j < k; j++)
		sizes[j] = Int64GetDatum(g->ms->sizes[j]);
	values[0] = Int32GetDatum(k);
	values[1] = Int32GetDatum(d);
	values[2] = CStringGetTextDatum(KmeansMetricName(g->opt.metric));
	values[3] = KmeansCentersDatum(KmeansCentersOut(g->data, g->ms, 0), k, d);
	values[4] = PointerGetDatum(construct_array(sizes, k, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[5] = Float8GetDatum(KmeansSegmentInertia(g->ms, 0));
	values[6] = Int32GetDatum(g->ms->n_iter[0]);
	values[7] = Int64GetDatum(g->data->n);
	values[8] = DirectFunctionCall1(jsonb_in,
									CStringGetDatum(KmeansOptionsJson(&g->opt, g->data->src, false)));
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * kmeans_agg's final function: fits the group.  It frees the group's rows and engine as it
 * ends (FINALFUNC_MODIFY = READ_WRITE), so that a query over many groups holds one engine at a
 * time.  A group of only NULL vectors has no model (NULL), as an aggregate of no rows.
 */
Datum
kmeans_agg_final(PG_FUNCTION_ARGS)
{
	KmeansGroupFit *g;
	Datum		model;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	g = (KmeansGroupFit *) PG_GETARG_POINTER(0);
	if (g->vectors == 0)
	{
		KmeansGroupFitFree(g);
		PG_RETURN_NULL();
	}
	KmeansGroupFitRun(g, NULL, NULL);
	model = ModelDatum(fcinfo, g);
	KmeansGroupFitFree(g);
	PG_RETURN_DATUM(model);
}
