/*
 * fit.c -- the SQL entry points that fit: kmeans_fit and kmeans_labels.
 */
#include "kmeans.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kmeans_fit);
PG_FUNCTION_INFO_V1(kmeans_labels);

/* Argument positions shared by kmeans_fit and kmeans_labels. */
enum
{
	ARG_SOURCE,
	ARG_COLUMN,
	ARG_K,
	ARG_OPTIONS,				/* max_iter .. device: seven arguments */
	ARG_ID = ARG_OPTIONS + 7,
	ARG_MODEL,
	ARG_WEIGHT,
	ARG_METRIC,
	ARG_CENTER,
	ARG_STRATEGY,
	ARG_ALGORITHM,
	ARG_BATCH_SIZE,
	ARG_DTW_BAND,
	ARG_BARYCENTER_ITER,
	ARG_GAMMA
};

static const KmeansArgPos fit_args = {
	ARG_OPTIONS, ARG_OPTIONS + 1, ARG_OPTIONS + 2, ARG_OPTIONS + 3, ARG_OPTIONS + 4,
	ARG_OPTIONS + 5, ARG_OPTIONS + 6, ARG_WEIGHT, ARG_METRIC, ARG_CENTER, ARG_STRATEGY,
	ARG_ALGORITHM, ARG_BATCH_SIZE, ARG_DTW_BAND, ARG_BARYCENTER_ITER,
	ARG_GAMMA
};

typedef struct FitCall
{
	KmeansOptions opt;
	KmeansPlan	plan;
	int			k;
	char	   *model;
	KmeansData *data;
	KmeansModelSet *ms;
} FitCall;

/*
 * The common start of kmeans_fit and kmeans_labels: arguments, data, the fit itself, whose
 * final labels go to fn (kmeans_labels) as the final pass makes them.
 */
static void
FitBegin(FunctionCallInfo fcinfo, FitCall *fc, bool need_id, KmeansLabelFn fn, void *arg)
{
	text	   *source,
			   *column;
	bool		match = false;

	KmeansRequireArgs(fcinfo, ARG_K + 1, "source, column and k",
					  "Pass a table name or query, the vector column, and the number of clusters.");
	source = KmeansSourceArg(fcinfo, ARG_SOURCE);
	column = PG_GETARG_TEXT_PP(ARG_COLUMN);
	fc->k = PG_GETARG_INT32(ARG_K);
	KmeansCheckK(fc->k, -1, "k");
	KmeansParseOptions(fcinfo, &fit_args, &fc->opt);
	if (need_id && PG_ARGISNULL(ARG_ID))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kmeans_labels needs an id column"),
				 errhint("Pass id => 'name of a column or expression castable to bigint'.")));
	fc->model = PG_ARGISNULL(ARG_MODEL) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(ARG_MODEL));
	if (fc->model && fc->model[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty"),
				 errhint("Leave model out to skip saving the model.")));
	/* a save that will be refused is refused now, not after the fit */
	if (fc->model)
		KmeansModelCheckSave(fcinfo, fc->model);

	fc->plan.what = need_id ? "kmeans_labels" : "kmeans_fit";
	fc->plan.k_max = fc->plan.k_min = fc->k;
	fc->plan.k_name = "k";
	fc->plan.nseg = 1;
	fc->plan.centers = fc->k;
	fc->plan.n_init = fc->opt.n_init;
	fc->plan.weighted = fc->opt.weight != NULL;
	fc->plan.median = fc->opt.median;
	fc->plan.minibatch_rows = fc->opt.minibatch ? fc->opt.batch_size : 0;
	fc->plan.parallel_init = fc->opt.init == KMEANS_INIT_PARALLEL;
	fc->plan.plusplus_init = fc->opt.init == KMEANS_INIT_PLUSPLUS;
	fc->plan.init_auto = fc->opt.init_auto;
	fc->data = KmeansBegin(source, column, PG_ARGISNULL(ARG_ID) ? NULL : PG_GETARG_TEXT_PP(ARG_ID),
						   &fc->opt, &fc->plan);
	if (fc->opt.metric == KM_METRIC_IOU)
	{
		/* anchor boxes are numbered by area, whatever the start (refits included) */
		fc->ms = KmeansRuns(fc->data, &fc->opt, 1, &fc->k, NULL, NULL);
		KmeansOrderByArea(fc->ms, 0);
		if (fn != NULL)
		{
			KmeansStepLogRun(-1);
			KmeansFinalPass(fc->data, fc->ms, fn, arg);
		}
	}
	else if (fc->model && kmeans_match_clusters && !km_metric_series(fc->opt.metric))
	{
		int			old_k,
					old_d;
		const float *old = KmeansModelPrevious(KmeansModelsTable(fcinfo), fc->model, &old_k,
											   &old_d);

		/* a refit: the clusters are renumbered before any label goes out */
		match = old != NULL && old_k == fc->k && old_d == fc->data->d;
		fc->ms = KmeansRuns(fc->data, &fc->opt, 1, &fc->k, match ? NULL : fn, arg);
		if (match)
		{
			KmeansMatchClusters(fc->data, fc->ms, old, old_k, old_d);
			if (fn != NULL)
			{
				KmeansStepLogRun(-1);
				KmeansFinalPass(fc->data, fc->ms, fn, arg);
			}
		}
	}
	else
		fc->ms = KmeansRuns(fc->data, &fc->opt, 1, &fc->k, fn, arg);
	if (fc->model)
		KmeansModelSave(KmeansModelsTable(fcinfo), fc->model, fc->data->src, &fc->opt, fc->data,
						fc->ms, 0);
}


/* kmeans_fit: one row per cluster with its center, size and inertia. */
Datum
kmeans_fit(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);
	FitCall		fc;
	float	   *centers;

	memset(&fc, 0, sizeof(fc));
	FitBegin(fcinfo, &fc, false, NULL, NULL);
	centers = KmeansCentersOut(fc.data, fc.ms, 0);
	for (int j = 0; j < fc.k; j++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(j);
		values[1] = KmeansVectorDatum(centers + (int64) j * fc.data->d, fc.data->d);
		values[2] = Int64GetDatum(fc.ms->sizes[j]);
		values[3] = Float8GetDatum(fc.ms->inertia[j]);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	KmeansEnd(fc.data);
	return (Datum) 0;
}

typedef struct LabelSink
{
	Tuplestorestate *store;
	TupleDesc	desc;
	const KmeansOptions *opt;	/* the call's, parsed before the first label comes */
} LabelSink;

/* Emits (id, cluster, distance) for every row of a batch of the final pass. */
static void
EmitLabels(KmeansBatch *b, const int32 *labels, const float *dist, int nseg, void *arg)
{
	LabelSink  *ls = arg;

	for (int64 i = 0; i < b->n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int64GetDatum(b->ids[i]);
		values[1] = Int32GetDatum(labels[i * nseg]);
		values[2] = Float8GetDatum(KmeansMetricDistance(ls->opt->metric, dist[i * nseg]));
		tuplestore_putvalues(ls->store, ls->desc, values, nulls);
	}
}

/* kmeans_labels: every row's id, cluster and distance to its center, from the same fit. */
Datum
kmeans_labels(PG_FUNCTION_ARGS)
{
	FitCall		fc;
	LabelSink	sink;

	memset(&fc, 0, sizeof(fc));
	sink.store = KmeansResultStore(fcinfo, &sink.desc);
	sink.opt = &fc.opt;
	FitBegin(fcinfo, &fc, true, EmitLabels, &sink);
	KmeansEnd(fc.data);
	return (Datum) 0;
}
