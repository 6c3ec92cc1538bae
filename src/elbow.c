/*
 * elbow.c -- kmeans_elbow: every k of a range fitted together, with quality indices per k.
 *
 * Each k gets exactly the fit kmeans_fit would give it: the same seeding and the same Lloyd
 * arithmetic.  Greedy k-means++ draws 2 + floor(ln k) candidates per center, so one seeding run
 * serves every k with the same number of candidates: its first k centers are exactly what a run
 * for k alone would choose.  k = 3..49 takes three runs (to 7, 20 and 49).  Then all k iterate
 * together: each pass over the data assigns every row to its nearest center in every running
 * k, and a k that has converged drops out of later passes.
 *
 * Quality indices, computed on the final labels: Calinski-Harabasz and Davies-Bouldin from one
 * more pass (exact, any size); the silhouette on every row when there are at most
 * silhouette_sample rows, else on a deterministic sample of that many rows.
 */
#include "kmeans.h"

#include <math.h>

#include "funcapi.h"
#include "km_quality.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kmeans_elbow);

enum
{
	ARG_SOURCE,
	ARG_COLUMN,
	ARG_K_MIN,
	ARG_K_MAX,
	ARG_K_STEP,
	ARG_MAX_ITER,
	ARG_TOL,
	ARG_INIT,
	ARG_N_INIT,
	ARG_SEED,
	ARG_DEVICE,
	ARG_SILHOUETTE_SAMPLE,
	ARG_ID
};

static const KmeansArgPos elbow_args = {
	ARG_MAX_ITER, ARG_TOL, ARG_INIT, -1, ARG_N_INIT, ARG_SEED, ARG_DEVICE
};

/* The final pass's labels of every row in every segment, kept for the quality indices. */
typedef struct FinalLabels
{
	const int  *seg_off;		/* where each k's centers start, as in the model set */
	int32	   *labels;			/* n x nseg, segment-local */
} FinalLabels;

static void
KeepLabels(KmeansBatch *b, const int32 *labels, const float *dist, int nseg, void *arg)
{
	FinalLabels *fl = arg;

	(void) dist;
	for (int64 i = 0; i < b->n; i++)
		for (int s = 0; s < nseg; s++)
			fl->labels[(b->first + i) * nseg + s] = labels[i * nseg + s] - fl->seg_off[s];
}

/* Per-segment scatter sums for Calinski-Harabasz and Davies-Bouldin. */
typedef struct ScatterState
{
	KmeansModelSet *ms;
	const int32 *labels;		/* the final labels, n x nseg, segment-local */
	double	   *means;			/* per center x d */
	double	   *sq;				/* per center */
	double	   *lin;			/* per center */
} ScatterState;

static void
ScatterBatch(KmeansBatch *b, void *arg)
{
	ScatterState *st = arg;
	KmeansModelSet *ms = st->ms;

	for (int s = 0; s < ms->nseg; s++)
	{
		int			off = ms->seg_off[s];

		km_quality_scatter(b->x, b->n, ms->d, st->labels + b->first * ms->nseg + s, ms->nseg,
						   st->means + (int64) off * ms->d, st->sq + off, st->lin + off);
	}
}

/* Silhouette per segment on all rows or a deterministic sample of sample_size rows. */
static void
Silhouettes(KmeansData *data, KmeansModelSet *ms, const int *ks, const int32 *final_labels,
			int64 sample_size, uint64 seed, double *out)
{
	int64		s = Min(data->n, sample_size);
	int			d = data->d;
	int			nseg = ms->nseg;
	int64	   *rows = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * s);
	float	   *x = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * s * d);
	int32	   *labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * s * nseg);
	double	   *values = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * s * nseg);
	KmBackend  *be = data->be;
	KmError		err = {0};

	if (s == data->n)
		for (int64 i = 0; i < s; i++)
			rows[i] = i;
	else
		km_sample_rows(data->n, s, seed, rows);
	KmeansFetchRows(data, rows, s, x);
	for (int64 i = 0; i < s; i++)
		memcpy(labels + i * nseg, final_labels + rows[i] * nseg, sizeof(int32) * nseg);
	/*
	 * In slices of about 2^26 distance-and-bucket steps, so that a cancel is seen within a
	 * fraction of a second however large the sample.
	 */
	{
		int64		slice = Max((int64) 64, ((int64) 1 << 26) / Max((int64) 1, s * (d + nseg)));

		for (int64 i0 = 0; i0 < s; i0 += slice)
		{
			CHECK_FOR_INTERRUPTS();
			KmeansCheckStatus(be->ops->silhouette(be, x, s, labels, nseg, ks, i0,
												  Min(s, i0 + slice), values, &err), &err);
		}
	}
	for (int j = 0; j < nseg; j++)
	{
		double		sum = 0.0;

		for (int64 i = 0; i < s; i++)
			sum += values[i * nseg + j];
		out[j] = s > 0 ? sum / s : NAN;
	}
	pfree(rows);
	pfree(x);
	pfree(labels);
	pfree(values);
}

/* kmeans_elbow: one row per k with inertia, iterations, quality indices and the suggested k. */
Datum
kmeans_elbow(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);
	KmeansOptions opt;
	KmeansData *data;
	KmeansModelSet *ms;
	int			k_min,
				k_max,
				k_step,
				nseg;
	int64		sample_size;
	int		   *ks,
			   *seg_off;
	double	   *inertia,
			   *sil,
			   *ch,
			   *db;
	int			knee;
	ScatterState sc;
	FinalLabels fl;
	KmeansPlan	plan;

	for (int i = ARG_SOURCE; i <= ARG_K_STEP; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("source, column, k_min, k_max and k_step must not be NULL"),
					 errhint("Pass a table name or query, the vector column, and the range of k.")));
	k_min = PG_GETARG_INT32(ARG_K_MIN);
	k_max = PG_GETARG_INT32(ARG_K_MAX);
	k_step = PG_GETARG_INT32(ARG_K_STEP);
	KmeansCheckK(k_min, -1, "k_min");
	KmeansCheckK(k_max, -1, "k_max");
	if (k_max < k_min)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k_max (%d) is smaller than k_min (%d)", k_max, k_min),
				 errhint("Give the range of k as k_min <= k_max.")));
	if (k_step < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k_step must be at least 1, got %d", k_step),
				 errhint("k runs over k_min, k_min + k_step, ... up to k_max.")));
	KmeansParseOptions(fcinfo, &elbow_args, &opt);
	sample_size = PG_ARGISNULL(ARG_SILHOUETTE_SAMPLE) ? 0 : PG_GETARG_INT32(ARG_SILHOUETTE_SAMPLE);
	if (PG_ARGISNULL(ARG_SILHOUETTE_SAMPLE) || sample_size < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("silhouette_sample must be 0 or more, got %s",
						PG_ARGISNULL(ARG_SILHOUETTE_SAMPLE) ? "NULL" :
						psprintf(INT64_FORMAT, sample_size)),
				 errhint("0 skips the silhouette; n computes it on at most n rows.")));

	nseg = (k_max - k_min) / k_step + 1;
	ks = palloc(sizeof(int) * nseg);
	for (int s = 0; s < nseg; s++)
		ks[s] = k_min + s * k_step;

	memset(&plan, 0, sizeof(plan));
	plan.what = "kmeans_elbow";
	plan.k_max = ks[nseg - 1];
	plan.k_name = "k_max";
	plan.nseg = nseg;
	for (int s = 0; s < nseg; s++)
		plan.centers += ks[s];
	/* centers are numbered with int offsets; the memory estimate refuses far fewer by default */
	if (plan.centers > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("k = %d .. %d is " INT64_FORMAT " centers in all, more than kmeans_elbow fits (%d)",
						k_min, k_max, plan.centers, PG_INT32_MAX),
				 errhint("Use a narrower range of k or a larger k_step.")));
	plan.n_init = opt.n_init;
	plan.final_labels = true;
	plan.silhouette_rows = sample_size;
	seg_off = palloc(sizeof(int) * (nseg + 1));
	seg_off[0] = 0;
	for (int s = 0; s < nseg; s++)
		seg_off[s + 1] = seg_off[s] + ks[s];
	data = KmeansBegin(PG_GETARG_TEXT_PP(ARG_SOURCE), PG_GETARG_TEXT_PP(ARG_COLUMN),
					   PG_ARGISNULL(ARG_ID) ? NULL : PG_GETARG_TEXT_PP(ARG_ID), &opt, &plan);

	/*
	 * n_init seeding runs of every k together; per k the run with the lowest inertia is kept
	 * (the first on ties), as kmeans_fit keeps it.
	 */
	fl.seg_off = seg_off;
	fl.labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * data->n * nseg);
	ms = KmeansRuns(data, &opt, nseg, ks, KeepLabels, &fl);

	/* Calinski-Harabasz and Davies-Bouldin: the label means, then one scatter pass */
	memset(&sc, 0, sizeof(sc));
	sc.ms = ms;
	sc.labels = fl.labels;
	sc.means = MemoryContextAllocHuge(CurrentMemoryContext,
									  sizeof(double) * ms->seg_off[nseg] * data->d);
	for (int j = 0; j < ms->seg_off[nseg]; j++)
		for (int t = 0; t < data->d; t++)
			sc.means[(int64) j * data->d + t] = ms->sizes[j] > 0 ?
				ms->sums[(int64) j * data->d + t] / ms->sizes[j] : 0.0;
	sc.sq = palloc0(sizeof(double) * ms->seg_off[nseg]);
	sc.lin = palloc0(sizeof(double) * ms->seg_off[nseg]);
	KmeansScan(data, ScatterBatch, &sc);

	inertia = palloc(sizeof(double) * nseg);
	sil = palloc(sizeof(double) * nseg);
	ch = palloc(sizeof(double) * nseg);
	db = palloc(sizeof(double) * nseg);
	for (int s = 0; s < nseg; s++)
	{
		int			off = ms->seg_off[s];

		inertia[s] = KmeansSegmentInertia(ms, s);
		ch[s] = km_calinski_harabasz(data->n, ks[s], data->d, ms->sizes + off,
									 sc.means + (int64) off * data->d, sc.sq + off);
		db[s] = km_davies_bouldin(ks[s], data->d, ms->sizes + off,
								  sc.means + (int64) off * data->d, sc.lin + off);
	}
	if (sample_size > 0)
		Silhouettes(data, ms, ks, fl.labels, sample_size, (uint64) opt.seed, sil);
	knee = km_knee(ks, inertia, nseg);

	for (int s = 0; s < nseg; s++)
	{
		Datum		values[8];
		bool		nulls[8] = {false, false, false, false, false, false, false, false};

		values[0] = Int32GetDatum(ks[s]);
		values[1] = Float8GetDatum(inertia[s]);
		values[2] = Float8GetDatum(inertia[s] / data->n);
		values[3] = Int32GetDatum(ms->n_iter[s]);
		values[4] = Float8GetDatum(sil[s]);
		/* the silhouette needs two clusters and fewer clusters than rows; CH needs two */
		nulls[4] = sample_size == 0 || ks[s] < 2 || ks[s] >= Min(data->n, sample_size);
		values[5] = Float8GetDatum(ch[s]);
		nulls[5] = ks[s] < 2 || isnan(ch[s]);
		values[6] = Float8GetDatum(db[s]);
		nulls[6] = ks[s] < 2 || isnan(db[s]);
		values[7] = BoolGetDatum(s == knee);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	KmeansEnd(data);
	return (Datum) 0;
}
