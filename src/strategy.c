/*
 * strategy.c -- strategy => 'aggregate': every pass over the source is one aggregate query.
 *
 * The engine's own strategy reads the rows into the backend (kept, or streamed again every
 * pass, with parallel plans off so that every pass sees the rows in one order).  Here no pass
 * pulls the rows to this backend: each is
 *
 *     SELECT ext.kmeans_step_partial(CAST(q.x AS real[]), $1, $2) [, ... one per k] FROM (<source query>) q(x)
 *
 * (or kmeans_sample_partial for seeding), an ordinary aggregate with a combine function that
 * the planner may split into Partial Aggregates in parallel workers and Citus may run on every
 * node.  The partial states hold exact sums (step.c, sample.c), so the result is the same bits
 * however the rows were split and combined, and does not depend on the order of the rows.
 *
 * The engine's loop stays the one loop (lloyd.c, runs.c, seed.c): this file gives it a pass
 * (KmeansAggregatePass fills the pass's accumulators from the states), an empty-cluster repair
 * (each cluster's farthest row comes with its state) and a seeding that needs few passes:
 * 'random' draws k distinct rows by a hash of their values in one pass, and 'k-means||'
 * (Bahmani et al. 2012; what 'k-means++' means under this strategy) draws a first row, then in
 * each of KMEANS_PARALLEL_ROUNDS passes every row with probability min(1, l D^2 / phi)
 * (l = 2k), weighs the candidates by the rows nearest to them (one pass), and chooses k among
 * them by greedy k-means++ in memory, as the engine seeds any weighted rows.
 *
 * What needs every row's label is read the engine's way, streamed through this backend: the
 * final pass of kmeans_labels and kmeans_elbow, and the elbow's quality indices.  A pass
 * cannot know how many labels changed, so a fit stops when its centers moved less than tol
 * (with tol => 0, when they did not move at all, which is the same fixed point).
 */
#include "kmeans.h"

#include <float.h>
#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lloyd.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"


typedef struct KmeansAggregate
{
	const char *ext;			/* the extension's schema, quoted */
	Oid			step_type;		/* kmeans_step_state */
	Oid			sample_type;	/* kmeans_sample_state */
	const char *metric;			/* the metric's name, a parameter of every pass */
	KmeansSample first;			/* the first pass's sample, for seeding run 0 */
	int			first_m;
	int64		passes;			/* queries run over the source */
} KmeansAggregate;

/* Whether the source is a Citus distributed table (Citus keeps them in pg_dist_partition). */
static bool
CitusDistributed(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	Oid			nsp = get_namespace_oid("pg_catalog", false);
	bool		found;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", nsp)))
		return false;
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition "
							  "WHERE logicalrelid OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kmeans: reading pg_dist_partition failed");
	found = SPI_processed > 0;
	return found;
}

/*
 * Whether a fit reads its source by aggregate queries: when asked, or by default where it is
 * the only sensible way: a partitioned or foreign table, or a Citus distributed table, whose
 * rows the planner can read in parallel or on other nodes.
 */
bool
KmeansUseAggregate(const KmeansSource *src, const KmeansOptions *opt)
{
	if (opt->strategy != KMEANS_STRATEGY_AUTO)
		return opt->strategy == KMEANS_STRATEGY_AGGREGATE;
	/* mini-batch steps follow one another over the rows as the engine reads them */
	if (!OidIsValid(src->relid) || opt->minibatch)
		return false;
	return src->relkind == RELKIND_PARTITIONED_TABLE || src->relkind == RELKIND_FOREIGN_TABLE ||
		CitusDistributed(src->relid);
}

/*
 * Runs one pass: the query, its one result row of ncols states of type type, checked.  A state
 * is NULL where the source has no non-NULL vector.
 */
static HeapTuple
RunPass(KmeansData *data, const char *sql, int nparams, Oid *types, Datum *values, int ncols,
		Oid type, TupleDesc *desc)
{
	KmeansAggregate *agg = data->agg;
	int			rc;

	CHECK_FOR_INTERRUPTS();
	rc = SPI_execute_with_args(sql, nparams, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1 || SPI_tuptable->tupdesc->natts != ncols)
		elog(ERROR, "kmeans: an aggregate pass returned %s (this is a bug)",
			 rc != SPI_OK_SELECT ? SPI_result_code_string(rc) : "another shape");
	for (int i = 0; i < ncols; i++)
		if (TupleDescAttr(SPI_tuptable->tupdesc, i)->atttypid != type)
			elog(ERROR, "kmeans: an aggregate pass returned a column of type %u (this is a bug)",
				 TupleDescAttr(SPI_tuptable->tupdesc, i)->atttypid);
	agg->passes++;
	*desc = SPI_tuptable->tupdesc;
	return SPI_tuptable->vals[0];
}

/* The source's rows as the passes read them: the first column, as real[]. */
static char *
FromSource(KmeansData *data)
{
	return psprintf("FROM (%s) AS kmeans_rows(x)", data->src->query);
}

/*
 * One sampling pass (sample.c): m rows by the hash of (seed, round), by D^2 to centers when
 * kc > 0, with the rows' statistics.  Returns false when the source has no vector.
 */
static bool
SamplePass(KmeansData *data, const float *centers, int kc, int d, int m, uint64 seed, int round,
		   KmeansSample *out)
{
	KmeansAggregate *agg = data->agg;
	Oid			types[5] = {FLOAT4ARRAYOID, TEXTOID, INT4OID, INT8OID, INT4OID};
	Datum		values[5];
	char		nulls[6] = "     ";
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	Datum		state;
	char	   *sql = psprintf("SELECT %s.kmeans_sample_partial(CAST(x AS pg_catalog.float4[]), $1, $2, $3, $4, $5) %s",
							   agg->ext, FromSource(data));
	int			rc;

	values[0] = kc > 0 ? KmeansCentersDatum(centers, kc, d) : (Datum) 0;
	if (kc == 0)
		nulls[0] = 'n';
	values[1] = CStringGetTextDatum(agg->metric);
	values[2] = Int32GetDatum(m);
	values[3] = Int64GetDatum((int64) seed);
	values[4] = Int32GetDatum(round);
	CHECK_FOR_INTERRUPTS();
	rc = SPI_execute_with_args(sql, 5, types, values, nulls, true, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1 || SPI_tuptable->tupdesc->natts != 1 ||
		TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid != agg->sample_type)
		elog(ERROR, "kmeans: a sampling pass returned another shape (this is a bug)");
	agg->passes++;
	desc = SPI_tuptable->tupdesc;
	tup = SPI_tuptable->vals[0];
	state = heap_getattr(tup, 1, desc, &isnull);
	if (!isnull)
		KmeansSampleStateRead(state, out);
	SPI_freetuptable(SPI_tuptable);
	return !isnull;
}

/*
 * Opens the data of an aggregate-strategy fit: one pass counts the rows and sums them (and
 * draws run 0's first sample), and the sizes that the streamed passes of the final labels need
 * are set as if a first pass had read them (reader.c).
 */
KmeansData *
KmeansAggregateOpen(KmeansSource *src, const KmeansPlan *plan, const KmeansOptions *opt, bool gpu)
{
	KmeansAggregate *agg = palloc0(sizeof(KmeansAggregate));
	KmeansData *data;
	KmeansSample *first = &agg->first;
	double		sq = 0.0;

	if (!OidIsValid(opt->ext_namespace))
		elog(ERROR, "kmeans: the aggregate strategy without the extension's schema (this is a bug)");
	if (src->weight != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("strategy 'aggregate' does not take weights yet"),
				 errhint("Use strategy => 'engine' for a weighted fit.")));
	if (opt->median)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("strategy 'aggregate' does not take center => 'median'"),
				 errhint("Use strategy => 'engine' for median anchors.")));
	agg->ext = quote_identifier(get_namespace_name(opt->ext_namespace));
	agg->step_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									 CStringGetDatum("kmeans_step_state"),
									 ObjectIdGetDatum(opt->ext_namespace));
	agg->sample_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("kmeans_sample_state"),
									   ObjectIdGetDatum(opt->ext_namespace));
	if (!OidIsValid(agg->step_type) || !OidIsValid(agg->sample_type))
		elog(ERROR, "kmeans: the extension's state types are missing (this is a bug)");
	agg->metric = KmeansMetricName(opt->metric);

	data = palloc0(sizeof(KmeansData));
	data->src = src;
	data->agg = agg;
	/* run 0's first seeding sample comes with the statistics */
	agg->first_m = opt->init == KMEANS_INIT_RANDOM ? plan->k_max :
		opt->init == KMEANS_INIT_EXPLICIT ? 0 : 1;
	if (!SamplePass(data, NULL, 0, 1, agg->first_m, KmeansRunSeed(opt, 0), 0, first))
	{
		data->n = 0;
		return data;
	}
	KmeansDataOutside(data, plan, gpu, first->d, first->rows);
	data->mean_var = 0.0;
	for (int t = 0; t < data->d; t++)
	{
		double		m = first->sums[t] / data->n;

		sq += m * m;
	}
	data->mean_var = Max(0.0, (first->sumsq / data->n - sq) / data->d);
	return data;
}

/*
 * One Lloyd pass of the running segments as one query: a kmeans_step_partial per segment, read
 * into the pass's accumulators.  The centers are not centred (the data's offset is 0 here).
 */
void
KmeansAggregatePass(KmeansData *data, LloydState *ls)
{
	KmeansAggregate *agg = data->agg;
	RunSet	   *rs = ls->rs;
	KmeansModelSet *ms = ls->ms;
	int			d = data->d;
	int			nrun = rs->nrun;
	Oid		   *types = palloc(sizeof(Oid) * (nrun + 1));
	Datum	   *values = palloc(sizeof(Datum) * (nrun + 1));
	StringInfoData sql;
	TupleDesc	desc;
	HeapTuple	tup;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int r = 0; r < nrun; r++)
	{
		int			s = rs->segs[r];

		appendStringInfo(&sql, "%s%s.kmeans_step_partial(CAST(x AS pg_catalog.float4[]), $%d, $%d)",
						 r > 0 ? ", " : "", agg->ext, r + 1, nrun + 1);
		types[r] = FLOAT4ARRAYOID;
		values[r] = KmeansCentersDatum(ms->centers + (int64) ms->seg_off[s] * d,
								 ms->seg_off[s + 1] - ms->seg_off[s], d);
	}
	types[nrun] = TEXTOID;
	values[nrun] = CStringGetTextDatum(agg->metric);
	appendStringInfo(&sql, " %s", FromSource(data));
	tup = RunPass(data, sql.data, nrun + 1, types, values, nrun, agg->step_type, &desc);

	if (ls->agg_sums == NULL)
		ls->agg_sums = palloc0(sizeof(KmeansStepSums) * ms->nseg);
	for (int r = 0; r < nrun; r++)
	{
		bool		isnull;
		Datum		state = heap_getattr(tup, r + 1, desc, &isnull);
		KmeansStepSums *st = &ls->agg_sums[r];
		int			off = rs->off[r];

		if (isnull)
			elog(ERROR, "kmeans: an aggregate pass saw no rows, the first saw " INT64_FORMAT,
				 data->n);
		if (st->counts != NULL)
		{
			/* the previous pass's arrays */
			pfree(st->counts);
			pfree(st->sums);
			pfree(st->inertia);
			pfree(st->far);
			pfree(st->far_dist);
		}
		KmeansStepStateRead(state, st);
		if (st->rows != data->n)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source \"%s\" returned " INT64_FORMAT " rows, " INT64_FORMAT " in the first pass",
							data->src->source, st->rows, data->n),
					 errhint("A source read in several passes must return the same rows each time.")));
		for (int j = 0; j < st->k; j++)
		{
			rs->acc.counts[off + j] = st->counts[j];
			rs->acc.inertia[off + j] = st->inertia[j];
			memcpy(rs->acc.sums + (int64) (off + j) * d, st->sums + (int64) j * d,
				   sizeof(double) * d);
		}
		ls->changed[r] = -1;	/* not known: the fit stops when the centers stop moving */
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Empty clusters after an aggregate pass: each takes the farthest row of another cluster
 * (farthest first, each cluster giving at most one and keeping one), moved as the engine's
 * repair moves rows (repair.c), so that k never shrinks.
 */
void
KmeansAggregateRepair(KmeansData *data, LloydState *ls)
{
	RunSet	   *rs = ls->rs;
	int			d = data->d;

	for (int r = 0; r < rs->nrun; r++)
	{
		KmeansStepSums *st = &ls->agg_sums[r];
		int			off = rs->off[r];
		int			k = st->k;
		bool	   *used = NULL;

		for (int j = 0; j < k; j++)
		{
			int			from = -1;

			if (rs->acc.counts[off + j] != 0)
				continue;
			if (used == NULL)
				used = palloc0(sizeof(bool) * k);
			for (int i = 0; i < k; i++)
				if (!used[i] && rs->acc.counts[off + i] > 1 &&
					(from < 0 || st->far_dist[i] > st->far_dist[from]))
					from = i;
			if (from < 0)
				break;			/* fewer distinct rows than clusters */
			used[from] = true;
			for (int t = 0; t < d; t++)
			{
				double		v = st->far[(int64) from * d + t];

				rs->acc.sums[(int64) (off + from) * d + t] -= v;
				rs->acc.sums[(int64) (off + j) * d + t] = v;
			}
			rs->acc.counts[off + from]--;
			rs->acc.counts[off + j] = 1;
			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: cluster %d of k=%d was empty; moved the farthest row of cluster %d into it",
								j, k, from)));
		}
	}
}

/* Adds the rows x (n x d) to the candidates c (count *nc) that are not among them yet. */
void
KmeansAddCandidates(float **c, int *nc, int *cap, const float *x, int n, int d)
{
	for (int i = 0; i < n; i++)
	{
		const float *row = x + (Size) i * d;
		bool		seen = false;

		for (int j = 0; j < *nc && !seen; j++)
			seen = memcmp(*c + (Size) j * d, row, sizeof(float) * d) == 0;
		if (seen)
			continue;
		if (*nc == *cap)
		{
			*cap *= 2;
			*c = repalloc_huge(*c, sizeof(float) * (Size) *cap * d);
		}
		memcpy(*c + (Size) (*nc)++ * d, row, sizeof(float) * d);
	}
}

/*
 * Greedy k-means++ on the candidates, each weighed by its rows: the engine's own seeding of
 * weighted rows, on rows handed over (a feed), with the fit's seed.
 */
void
KmeansPlusPlusOnCandidates(const KmeansOptions *opt, const float *c, const double *w, int nc, int d,
					 int k, uint64 seed, float *centers)
{
	KmeansPlan	plan;
	KmeansOptions o = *opt;
	KmeansFeed *feed;
	KmeansData *cand;
	KmeansModelSet *ms;
	float	   *out;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans candidates",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	memset(&plan, 0, sizeof(plan));
	plan.what = "k-means|| seeding";
	plan.k_max = plan.k_min = k;
	plan.k_name = "k";
	plan.nseg = 1;
	plan.centers = k;
	plan.n_init = 1;
	plan.weighted = true;
	o.init = KMEANS_INIT_PLUSPLUS;
	o.n_init = 1;
	o.seed = (int64) seed;
	o.device = KMEANS_DEVICE_CPU;
	o.weight = "the candidates' rows";
	feed = KmeansFeedOpen("k-means|| seeding", &o, &plan);
	for (int i = 0; i < nc; i++)
		KmeansFeedRowWeighted(feed, KmeansVectorDatum(c + (Size) i * d, d), (float) w[i]);
	cand = KmeansFeedStart(feed, &plan);
	ms = KmeansModelSetMake(d, 1, &k);
	KmeansSeedRun(cand, &o, ms, 0);
	out = KmeansCentersOut(cand, ms, 0);
	MemoryContextSwitchTo(old);
	memcpy(centers, out, sizeof(float) * (Size) k * d);
	KmeansEnd(cand);
	MemoryContextDelete(cxt);
}

/*
 * Starting centers for k clusters of seeding run `run` under the aggregate strategy (not
 * centred: the data's offset is 0), 'random' or 'k-means||' (which 'k-means++' means here).
 */
void
KmeansAggregateSeed(KmeansData *data, const KmeansOptions *opt, int k, int run, float *centers)
{
	KmeansAggregate *agg = data->agg;
	int			d = data->d;
	uint64		seed = KmeansRunSeed(opt, run);
	KmeansSample smp;
	KmeansSample *first = &smp;
	int			l = (int) Min((int64) 2 * k, (int64) 250000);
	int			cap = Max(16, 4 * l),
				nc = 0;
	float	   *c;
	double	   *w;
	KmeansStepSums st;

	if (opt->init == KMEANS_INIT_RANDOM)
	{
		if (run == 0 && agg->first_m >= k)
			first = &agg->first;
		else
			SamplePass(data, NULL, 0, d, k, seed, 0, first);
		/* fewer distinct rows than k: the rows repeat, as the engine's random draw can */
		for (int j = 0; j < k; j++)
			memcpy(centers + (Size) j * d, first->x + (Size) (j % Max(first->n, 1)) * d,
				   sizeof(float) * d);
		return;
	}

	/* k-means||: a first row, then rounds of rows drawn in proportion to D^2 */
	if (run == 0 && agg->first_m == 1)
		first = &agg->first;
	else
		SamplePass(data, NULL, 0, d, 1, seed, 0, first);
	c = palloc(sizeof(float) * (Size) cap * d);
	KmeansAddCandidates(&c, &nc, &cap, first->x, Min(first->n, 1), d);
	for (int round = 1; round <= KMEANS_PARALLEL_ROUNDS; round++)
	{
		KmeansSample rs;
		int			take = 0;

		SamplePass(data, c, nc, d, Min(4 * l, 1000000), seed, round, &rs);
		if (!(rs.phi > 0.0))
			break;				/* every row is a candidate already */
		while (take < rs.n && rs.keys[take] >= rs.phi / l)
			take++;
		KmeansAddCandidates(&c, &nc, &cap, rs.x, take, d);
	}
	if (nc < k)
	{
		/* fewer candidates than clusters: top up with distinct rows drawn uniformly */
		KmeansSample more;

		SamplePass(data, NULL, 0, d, k, seed, KMEANS_PARALLEL_ROUNDS + 1, &more);
		KmeansAddCandidates(&c, &nc, &cap, more.x, more.n, d);
	}
	if (nc <= k)
	{
		for (int j = 0; j < k; j++)
			memcpy(centers + (Size) j * d, c + (Size) (j % nc) * d, sizeof(float) * d);
		return;
	}

	/* each candidate weighs the rows nearest to it: one pass */
	{
		Oid			types[2] = {FLOAT4ARRAYOID, TEXTOID};
		Datum		values[2];
		TupleDesc	desc;
		HeapTuple	tup;
		bool		isnull;

		values[0] = KmeansCentersDatum(c, nc, d);
		values[1] = CStringGetTextDatum(agg->metric);
		tup = RunPass(data, psprintf("SELECT %s.kmeans_step_partial(CAST(x AS pg_catalog.float4[]), $1, $2) %s",
									 agg->ext, FromSource(data)),
					  2, types, values, 1, agg->step_type, &desc);
		KmeansStepStateRead(heap_getattr(tup, 1, desc, &isnull), &st);
		SPI_freetuptable(SPI_tuptable);
	}
	w = palloc(sizeof(double) * nc);
	for (int j = 0; j < nc; j++)
		w[j] = (double) st.counts[j];
	KmeansPlusPlusOnCandidates(opt, c, w, nc, d, k, seed, centers);
}
