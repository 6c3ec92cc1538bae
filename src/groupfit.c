/*
 * groupfit.c -- a fit of rows handed over one at a time: what kmeans_agg (one model per
 * GROUP BY group) and kmeans_cluster (one fit per window partition) share.
 *
 * The rows go through the reader's feed (KmeansFeedRow), which checks and keeps them as the
 * first pass over a source does; then the engine runs on them as on any resident data, with
 * the options of the jsonb argument checked as the named forms check theirs.  So a group fits
 * as kmeans_fit fits a query returning the same rows in the same order.
 */
#include "kmeans.h"

#include "utils/memutils.h"

/*
 * Starts a group's fit of k clusters with options (NULL for the defaults) for the SQL
 * function what.  Its memory is a context of its own under parent, deleted by
 * KmeansGroupFitFree or with parent.
 */
KmeansGroupFit *
KmeansGroupFitBegin(MemoryContext parent, const char *what, int k, Jsonb *options)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "kmeans group", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KmeansGroupFit *g = palloc0(sizeof(KmeansGroupFit));

	g->cxt = cxt;
	g->k = k;
	KmeansCheckK(k, -1, "k");
	KmeansParseJsonOptions(options, what, &g->opt);
	if (options != NULL)
		g->options = (Jsonb *) pg_detoast_datum_copy((struct varlena *) options);
	g->plan.what = what;
	g->plan.k_max = g->plan.k_min = k;
	g->plan.k_name = "k";
	g->plan.nseg = 1;
	g->plan.centers = k;
	g->plan.n_init = g->opt.n_init;
	g->plan.median = g->opt.median;
	g->plan.minibatch_rows = g->opt.minibatch ? g->opt.batch_size : 0;
	g->plan.parallel_init = g->opt.init == KMEANS_INIT_PARALLEL;
	g->plan.plusplus_init = g->opt.init == KMEANS_INIT_PLUSPLUS;
	g->feed = KmeansFeedOpen(what, &g->opt, &g->plan);
	MemoryContextSwitchTo(old);
	return g;
}

/*
 * Every row of a group must ask for the same k and options: the first row's are the group's,
 * and a later row with others is an ERROR rather than silently ignored.
 */
void
KmeansGroupFitCheckArgs(KmeansGroupFit *g, int k, Jsonb *options)
{
	bool		same = k == g->k;

	if (same && (options == NULL) != (g->options == NULL))
		same = false;
	else if (same && options != NULL)
		same = VARSIZE_ANY_EXHDR(options) == VARSIZE_ANY_EXHDR(g->options) &&
			memcmp(VARDATA_ANY(options), VARDATA_ANY(g->options), VARSIZE_ANY_EXHDR(options)) == 0;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: k and options differ between rows of one group", g->plan.what),
				 errdetail("The group's first row asked for k = %d.", g->k),
				 errhint("Pass the same k and options in every row, e.g. as constants.")));
}

/* One row of the group; a NULL vector is skipped, as the other forms skip it. */
void
KmeansGroupFitRow(KmeansGroupFit *g, Datum x, bool isnull)
{
	KmeansFeedRow(g->feed, x, isnull);
	g->rows++;
	if (!isnull)
		g->vectors++;
}

/*
 * Fits the group's rows; the final labels go to fn (when given) as the final pass makes them.
 * Anchor boxes (metric iou) are numbered by area, as kmeans_fit numbers them.  The caller
 * reads the model set and the data, then calls KmeansGroupFitEnd.
 */
void
KmeansGroupFitRun(KmeansGroupFit *g, KmeansLabelFn fn, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(g->cxt);

	KmeansStepLogReset();
	g->data = KmeansFeedStart(g->feed, &g->plan);
	if (g->opt.metric == KM_METRIC_IOU)
	{
		g->ms = KmeansRuns(g->data, &g->opt, 1, &g->k, NULL, NULL);
		KmeansOrderByArea(g->ms, 0);
		if (fn != NULL)
		{
			KmeansStepLogRun(-1);
			KmeansFinalPass(g->data, g->ms, fn, arg);
		}
	}
	else
		g->ms = KmeansRuns(g->data, &g->opt, 1, &g->k, fn, arg);
	MemoryContextSwitchTo(old);
}

/* Stops the backend and frees everything the group's fit held. */
void
KmeansGroupFitFree(KmeansGroupFit *g)
{
	if (g->data != NULL)
		KmeansEnd(g->data);
	MemoryContextDelete(g->cxt);
}

/* A support function of an aggregate called on its own. */
void
KmeansNotAggregate(const char *function, const char *aggregate)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s can only be called by the aggregate %s", function, aggregate),
			 errhint("Call %s(...) in a query instead.", aggregate)));
}
