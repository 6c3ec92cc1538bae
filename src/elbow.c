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
	ARG_ID,
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

static const KmeansArgPos elbow_args = {
	ARG_MAX_ITER, ARG_TOL, ARG_INIT, -1, ARG_N_INIT, ARG_SEED, ARG_DEVICE, ARG_WEIGHT, ARG_METRIC,
	ARG_CENTER, ARG_STRATEGY, ARG_ALGORITHM, ARG_BATCH_SIZE, ARG_DTW_BAND, ARG_BARYCENTER_ITER,
	ARG_GAMMA
};

/* The arguments of one call: the range of k, the options, and what the fit will hold. */
typedef struct ElbowCall
{
	KmeansOptions opt;
	KmeansPlan	plan;
	int			nseg;
	int		   *ks;
	int64		sample_size;	/* silhouette rows; 0 for none */
} ElbowCall;

/* The quality indices per k, computed on the final labels. */
typedef struct ElbowQuality
{
	double	   *inertia;
	double	   *sil;
	double	   *ch;
	double	   *db;
	int			knee;
} ElbowQuality;

/* The final pass's labels of every row in every segment (n x nseg), kept for the quality indices. */
typedef struct FinalLabels
{
	int32	   *labels;
	double	   *spread;			/* metric => 'dtw': per center, the sum of its rows' DTW */
	const int  *seg_off;		/* then the segments' first centers */
} FinalLabels;

/* Keeps a batch's final labels (and under DTW the spread of each cluster). */
static void
KeepLabels(KmeansBatch *b, const int32 *labels, const float *dist, int nseg, void *arg)
{
	FinalLabels *fl = arg;

	memcpy(fl->labels + b->first * nseg, labels, sizeof(int32) * b->n * nseg);
	if (fl->spread != NULL)
		for (int64 i = 0; i < b->n * nseg; i++)
			fl->spread[fl->seg_off[i % nseg] + labels[i]] += sqrt((double) dist[i]);
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

/*
 * The label sums of a batch, every row counted once: a weighted fit's own sums are weighted,
 * and the quality indices are scikit-learn's, which weigh every row alike.
 */
static void
LabelSumsBatch(KmeansBatch *b, void *arg)
{
	ScatterState *st = arg;
	KmeansModelSet *ms = st->ms;
	int			d = ms->d;

	for (int64 i = 0; i < b->n; i++)
		for (int s = 0; s < ms->nseg; s++)
		{
			int64		j = ms->seg_off[s] + st->labels[(b->first + i) * ms->nseg + s];
			double	   *m = st->means + j * d;

			for (int t = 0; t < d; t++)
				m[t] += b->x[i * d + t];
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

/* Reads and checks the arguments: the range of k, the options, the plan of the fit. */
static void
ReadArgs(FunctionCallInfo fcinfo, ElbowCall *ec)
{
	int			k_min,
				k_max,
				k_step;
	int64		sample_size;
	int			nseg;
	int		   *ks;
	KmeansPlan	plan;

	KmeansRequireArgs(fcinfo, ARG_K_STEP + 1, "source, column, k_min, k_max and k_step",
					  "Pass a table name or query, the vector column, and the range of k.");
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
	KmeansParseOptions(fcinfo, &elbow_args, &ec->opt);
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
	plan.k_min = ks[0];
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
	plan.n_init = ec->opt.n_init;
	plan.final_labels = true;
	plan.weighted = ec->opt.weight != NULL;
	plan.median = ec->opt.median;
	plan.minibatch_rows = ec->opt.minibatch ? ec->opt.batch_size : 0;
	plan.parallel_init = ec->opt.init == KMEANS_INIT_PARALLEL;
	plan.plusplus_init = ec->opt.init == KMEANS_INIT_PLUSPLUS;
	plan.init_auto = ec->opt.init_auto;
	plan.silhouette_rows = sample_size;
	ec->plan = plan;
	ec->nseg = nseg;
	ec->ks = ks;
	ec->sample_size = sample_size;
}

/*
 * The suggested k (the row marked elbow): where the Calinski-Harabasz index peaks inside the
 * range, else the knee of the inertia curve (Kneedle).  CH, the ratio of between- to
 * within-cluster dispersion corrected for k, was the most reliable of thirty indices in Milligan
 * & Cooper's comparison (1985) and finds the k of separated clusters, where the knee of the
 * inertia curve often stops short (four clusters read as three).  A peak at either end of the
 * range is no peak: CH keeps rising on data without clusters of that size (the raw wine
 * measurements) and falls from the smallest k on data whose structure is gradual (the seismic
 * profiles); the knee is the better guide there.  ks ascend; ch is NaN where undefined (k = 1).
 */
static int
SuggestK(const int *ks, const double *inertia, const double *ch, int nseg)
{
	int			first = -1,
				last = -1,
				best = -1;

	for (int s = 0; s < nseg; s++)
	{
		if (ks[s] < 2 || !isfinite(ch[s]))
			continue;
		if (first < 0)
			first = s;
		last = s;
		if (best < 0 || ch[s] > ch[best])
			best = s;
	}
	if (best >= 0 && best != first && best != last)
		return best;
	return km_knee(ks, inertia, nseg);
}

/* Inertia, Calinski-Harabasz, Davies-Bouldin and silhouette per k, and the suggested k. */
static void
MeasureQuality(KmeansData *data, KmeansModelSet *ms, const ElbowCall *ec, const int32 *labels,
			   const double *spread, ElbowQuality *q)
{
	int			nseg = ec->nseg;
	const int  *ks = ec->ks;
	ScatterState sc;

	if (data->series != NULL)
	{
		/* series under DTW: no means to scatter around, so no Calinski-Harabasz (dtw.c) */
		q->inertia = palloc(sizeof(double) * nseg);
		q->sil = palloc(sizeof(double) * nseg);
		q->ch = palloc(sizeof(double) * nseg);
		q->db = palloc(sizeof(double) * nseg);
		for (int s = 0; s < nseg; s++)
		{
			q->inertia[s] = KmeansSegmentInertia(ms, s);
			q->ch[s] = NAN;
		}
		KmeansDtwQuality(data, ms, &ec->opt, ks, labels, spread, ec->sample_size, q->sil, q->db);
		q->knee = SuggestK(ks, q->inertia, q->ch, nseg);
		return;
	}
	/* Calinski-Harabasz and Davies-Bouldin: the label means, then one scatter pass */
	memset(&sc, 0, sizeof(sc));
	sc.ms = ms;
	sc.labels = labels;
	sc.means = MemoryContextAllocHuge(CurrentMemoryContext,
									  sizeof(double) * ms->seg_off[nseg] * data->d);
	if (data->weights == NULL)
		memcpy(sc.means, ms->sums, sizeof(double) * ms->seg_off[nseg] * data->d);
	else
	{
		memset(sc.means, 0, sizeof(double) * ms->seg_off[nseg] * data->d);
		KmeansScan(data, LabelSumsBatch, &sc);
	}
	for (int j = 0; j < ms->seg_off[nseg]; j++)
		for (int t = 0; t < data->d; t++)
			sc.means[(int64) j * data->d + t] = ms->sizes[j] > 0 ?
				sc.means[(int64) j * data->d + t] / ms->sizes[j] : 0.0;
	sc.sq = palloc0(sizeof(double) * ms->seg_off[nseg]);
	sc.lin = palloc0(sizeof(double) * ms->seg_off[nseg]);
	KmeansScan(data, ScatterBatch, &sc);

	q->inertia = palloc(sizeof(double) * nseg);
	q->sil = palloc(sizeof(double) * nseg);
	q->ch = palloc(sizeof(double) * nseg);
	q->db = palloc(sizeof(double) * nseg);
	for (int s = 0; s < nseg; s++)
	{
		int			off = ms->seg_off[s];

		q->inertia[s] = KmeansSegmentInertia(ms, s);
		q->ch[s] = km_calinski_harabasz(data->n, ks[s], data->d, ms->sizes + off,
										sc.means + (int64) off * data->d, sc.sq + off);
		q->db[s] = km_davies_bouldin(ks[s], data->d, ms->sizes + off,
									 sc.means + (int64) off * data->d, sc.lin + off);
	}
	if (ec->sample_size > 0)
		Silhouettes(data, ms, ks, labels, ec->sample_size, (uint64) ec->opt.seed, q->sil);
	q->knee = SuggestK(ks, q->inertia, q->ch, nseg);
}

/* One result row per k. */
static void
EmitRows(Tuplestorestate *store, TupleDesc desc, KmeansData *data, KmeansModelSet *ms,
		  const ElbowCall *ec, const ElbowQuality *q)
{
	const int  *ks = ec->ks;
	int64		sample_size = ec->sample_size;

	for (int s = 0; s < ec->nseg; s++)
	{
		Datum		values[8];
		bool		nulls[8] = {false, false, false, false, false, false, false, false};

		values[0] = Int32GetDatum(ks[s]);
		values[1] = Float8GetDatum(q->inertia[s]);
		values[2] = Float8GetDatum(q->inertia[s] / data->n);
		values[3] = Int32GetDatum(ms->n_iter[s]);
		values[4] = Float8GetDatum(q->sil[s]);
		/* the silhouette needs two clusters and fewer clusters than rows; CH needs two */
		nulls[4] = sample_size == 0 || ks[s] < 2 || ks[s] >= Min(data->n, sample_size);
		values[5] = Float8GetDatum(q->ch[s]);
		nulls[5] = ks[s] < 2 || isnan(q->ch[s]);
		values[6] = Float8GetDatum(q->db[s]);
		nulls[6] = ks[s] < 2 || isnan(q->db[s]);
		values[7] = BoolGetDatum(s == q->knee);
		tuplestore_putvalues(store, desc, values, nulls);
	}
}

/* kmeans_elbow: one row per k with inertia, iterations, quality indices and the suggested k. */
Datum
kmeans_elbow(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);
	ElbowCall	ec;
	KmeansData *data;
	KmeansModelSet *ms;
	FinalLabels fl;
	ElbowQuality q;
	double		start;

	ReadArgs(fcinfo, &ec);
	data = KmeansBegin(KmeansSourceArg(fcinfo, ARG_SOURCE), PG_GETARG_TEXT_PP(ARG_COLUMN),
					   PG_ARGISNULL(ARG_ID) ? NULL : PG_GETARG_TEXT_PP(ARG_ID), &ec.opt, &ec.plan);
	fl.labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * data->n * ec.nseg);
	fl.spread = NULL;
	if (ec.opt.metric == KM_METRIC_DTW)
	{
		int		   *seg_off = palloc(sizeof(int) * ec.nseg);

		for (int s = 0, off = 0; s < ec.nseg; off += ec.ks[s], s++)
			seg_off[s] = off;
		fl.seg_off = seg_off;
		fl.spread = palloc0(sizeof(double) * ec.plan.centers);
	}
	ms = KmeansRuns(data, &ec.opt, ec.nseg, ec.ks, KeepLabels, &fl);
	start = KmeansStepStart();
	KmeansProgressSetPhase(KMEANS_PROGRESS_QUALITY, 0, 0);
	MeasureQuality(data, ms, &ec, fl.labels, fl.spread, &q);
	KmeansStepEnd(KMEANS_PHASE_QUALITY, start, 0, ec.nseg, NAN);
	EmitRows(store, desc, data, ms, &ec, &q);
	KmeansEnd(data);
	return (Datum) 0;
}
