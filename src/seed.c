/*
 * seed.c -- starting centers: greedy k-means++, random rows, or the caller's explicit centers,
 * and the random stream of each seeding run.
 *
 * The k-means++ distances of every row (mindist) belong to the backend (seed_begin), which
 * hands back a run of them at a time where the sampling needs it; batches start at multiples
 * of KM_SUB_ROWS, so the backend's per-run sums line up with global runs of rows.
 */
#include "kmeans.h"

#include <math.h>

#include "km_quality.h"

#include "miscadmin.h"
#include "utils/memutils.h"

/* One k-means++ seeding: the backend's run sums, and the step's arguments. */
typedef struct SeedState
{
	KmeansData *data;
	float	   *runbuf;			/* KM_SUB_ROWS: one run of the backend's mindist */
	double	   *run_sums;		/* per global run of KM_SUB_ROWS rows */
	const float *cand;			/* the center being added, or the t candidates */
	int			t;
	double	   *pot;			/* t: each candidate's potential */
} SeedState;

/* One batch of a mindist update for the center ss->cand. */
static void
MindistBatch(KmeansBatch *b, void *arg)
{
	SeedState  *ss = arg;
	KmBackend  *be = ss->data->be;
	double	   *sums = ss->run_sums + b->first / KM_SUB_ROWS;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->seed_update(be, b->blk, b->first, ss->cand, sums, &err), &err);
}

/* One batch of the potentials of the ss->t candidates. */
static void
PotentialBatch(KmeansBatch *b, void *arg)
{
	SeedState  *ss = arg;
	KmBackend  *be = ss->data->be;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->seed_potentials(be, b->blk, b->first, ss->cand, ss->t, ss->pot,
											   &err), &err);
}

/* The mindist values of run r, fetched from the backend. */
static const float *
RunValues(const SeedState *ss, int64 n, int64 r)
{
	KmBackend  *be = ss->data->be;
	int64		lo = r * KM_SUB_ROWS;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->seed_fetch(be, lo, Min(n - lo, (int64) KM_SUB_ROWS), ss->runbuf,
										  &err), &err);
	return ss->runbuf;
}

/*
 * The rows where the running sum of mindist first exceeds each target: D^2 sampling.  The
 * running sum is taken run by run with the backend's run sums, so the search agrees with the
 * total the targets were scaled by; inside the chosen run the rows are added in order, which
 * can differ from the backend's run sum in the last bits, so a run whose rows never reach the
 * target gives its last row with a positive distance.  A target that is never exceeded (all
 * remaining distances zero) falls back to the last row with a positive distance, or the last
 * row.
 */
static void
SampleByDistance(const SeedState *ss, int64 n, const double *targets, int t, int64 *rows)
{
	int64		nruns = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	int64		fallback = n - 1;

	/* a run holds a positive distance exactly when its sum is positive */
	for (int64 r = nruns - 1; r >= 0; r--)
		if (ss->run_sums[r] > 0.0)
		{
			const float *v = RunValues(ss, n, r);

			for (int64 i = Min(n, (r + 1) * KM_SUB_ROWS) - 1; i >= r * KM_SUB_ROWS; i--)
				if (v[i - r * KM_SUB_ROWS] > 0.0f)
				{
					fallback = i;
					break;
				}
			break;
		}
	for (int j = 0; j < t; j++)
	{
		double		cum = 0.0;

		rows[j] = fallback;
		CHECK_FOR_INTERRUPTS();
		for (int64 r = 0; r < nruns; r++)
		{
			if (cum + ss->run_sums[r] > targets[j])
			{
				double		part = 0.0;
				int64		end = Min(n, (r + 1) * KM_SUB_ROWS);
				const float *v = RunValues(ss, n, r) - r * KM_SUB_ROWS;

				for (int64 i = r * KM_SUB_ROWS; i < end; i++)
				{
					part += v[i];
					if (v[i] > 0.0f)
						rows[j] = i;
					if (cum + part > targets[j])
						break;
				}
				break;
			}
			cum += ss->run_sums[r];
		}
	}
}

/* Sum of the run sums in order: the k-means++ potential of the current centers. */
static double
TotalPotential(const SeedState *ss, int64 n)
{
	int64		nruns = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	double		total = 0.0;

	for (int64 r = 0; r < nruns; r++)
		total += ss->run_sums[r];
	return total;
}

/*
 * The seed of seeding run `run`: run 0 uses the seed itself, later runs a seed mixed with the
 * run number.  Each run starts afresh, so a run seeds every k the same way whatever k the
 * previous runs drew; kmeans_elbow relies on it.
 */
uint64
KmeansRunSeed(const KmeansOptions *opt, int run)
{
	uint64		seed = (uint64) opt->seed;

	if (run > 0)
		seed ^= UINT64CONST(0x9E3779B97F4A7C15) * (uint64) run;
	return seed;
}

/* Number of k-means++ candidates per center for k clusters: 2 + ln k, as scikit-learn draws. */
static int
Trials(int k)
{
	return 2 + (int) log((double) k);
}

/*
 * The first k-means++ center: a row drawn uniformly, or with weights in proportion to its
 * weight (as scikit-learn draws it), by the running sum of the weights in row order, the order
 * data->weight_total was summed in.
 */
int64
KmeansFirstCenterRow(KmeansData *data, KmRng *rng)
{
	double		target,
				cum = 0.0;
	int64		last = -1;

	if (data->weights == NULL)
		return (int64) km_rng_below(rng, (uint64_t) data->n);
	target = km_rng_uniform(rng) * data->weight_total;
	for (int64 i = 0; i < data->n; i++)
	{
		if (data->weights[i] <= 0.0f)
			continue;
		cum += data->weights[i];
		last = i;
		if (cum > target)
			break;
	}
	if (last < 0)
		elog(ERROR, "kmeans: k-means++ found no row of positive weight (this is a bug)");
	return last;
}

/*
 * Greedy k-means++ (Arthur & Vassilvitskii 2007, with the greedy trials of scikit-learn's
 * implementation): each new center is the best of 2 + ln k candidates drawn with probability
 * proportional to D^2, best meaning the lowest total potential after adding it.  With weights
 * the probabilities are proportional to w D^2 and the potentials weighted: the backend keeps
 * w D^2 as each row's distance (km_kernels.h), so the draws below are the same code.
 */
static void
SeedPlusPlus(KmeansData *data, int k, KmRng *rng, float *centers)
{
	int			d = data->d;
	int64		n = data->n;
	int			t = Trials(k);
	SeedState	ss;
	float	   *cand = palloc(sizeof(float) * t * d);
	double	   *targets = palloc(sizeof(double) * t);
	int64	   *rows = palloc(sizeof(int64) * t);
	int64		first;
	KmError		err = {0};

	ss.data = data;
	ss.runbuf = palloc(sizeof(float) * KM_SUB_ROWS);
	ss.run_sums = MemoryContextAllocHuge(CurrentMemoryContext,
										 sizeof(double) * ((n + KM_SUB_ROWS - 1) / KM_SUB_ROWS));
	ss.pot = palloc(sizeof(double) * t);
	KmeansCheckStatus(data->be->ops->seed_begin(data->be, n, &err), &err);

	first = KmeansFirstCenterRow(data, rng);
	KmeansFetchRows(data, &first, 1, centers);
	ss.cand = centers;
	KmeansScan(data, MindistBatch, &ss);

	for (int c = 1; c < k; c++)
	{
		double		total = TotalPotential(&ss, n);
		int			best = 0;

		for (int j = 0; j < t; j++)
			targets[j] = km_rng_uniform(rng) * total;
		SampleByDistance(&ss, n, targets, t, rows);
		KmeansFetchRows(data, rows, t, cand);

		memset(ss.pot, 0, sizeof(double) * t);
		ss.cand = cand;
		ss.t = t;
		KmeansScan(data, PotentialBatch, &ss);
		for (int j = 1; j < t; j++)
			if (ss.pot[j] < ss.pot[best])
				best = j;
		memcpy(centers + (int64) c * d, cand + (int64) best * d, sizeof(float) * d);

		if (c + 1 < k)
		{
			ss.cand = centers + (int64) c * d;
			KmeansScan(data, MindistBatch, &ss);
		}
	}
	pfree(ss.runbuf);
	pfree(ss.run_sums);
	pfree(ss.pot);
	pfree(cand);
	pfree(targets);
	pfree(rows);
}

/* An entry of WeightedSample's heap: a row and its key. */
typedef struct KeyedRow
{
	double		key;
	int64		row;
} KeyedRow;

/* Restores the min-heap on key below entry i. */
static void
KeySiftDown(KeyedRow *h, int size, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;
		KeyedRow	tmp;

		if (l < size && h[l].key < h[m].key)
			m = l;
		if (r < size && h[r].key < h[m].key)
			m = r;
		if (m == i)
			return;
		tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

static int
RowCmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/*
 * k distinct rows of positive weight drawn with probability proportional to weight, one after
 * another without replacement, in ascending row order: each row draws the key log(u) / w and
 * the k largest keys win (Efraimidis & Spirakis 2006), which has exactly the distribution of
 * successive weighted draws, in one pass over the weights and a heap of k.
 */
static void
WeightedSample(KmeansData *data, int k, uint64 seed, int64 *rows)
{
	KeyedRow   *h = palloc(sizeof(KeyedRow) * k);
	int			size = 0;
	KmRng		rng;

	km_rng_seed(&rng, seed);
	for (int64 i = 0; i < data->n; i++)
	{
		double		w = data->weights[i],
					key;

		if ((i & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
		if (w <= 0.0)
			continue;
		/* 1 - uniform lies in (0, 1], so the logarithm is finite */
		key = log(1.0 - km_rng_uniform(&rng)) / w;
		if (size < k)
		{
			h[size++].key = key;
			h[size - 1].row = i;
			if (size == k)
				for (int j = k / 2 - 1; j >= 0; j--)
					KeySiftDown(h, k, j);
		}
		else if (key > h[0].key)
		{
			h[0].key = key;
			h[0].row = i;
			KeySiftDown(h, k, 0);
		}
	}
	if (size < k)
		elog(ERROR, "kmeans: %d rows of positive weight for k = %d (this is a bug)", size, k);
	for (int j = 0; j < k; j++)
		rows[j] = h[j].row;
	qsort(rows, k, sizeof(int64), RowCmp);
	pfree(h);
}

/*
 * k distinct rows chosen uniformly, in ascending row order: km_sample_rows makes Floyd's draws
 * (Bentley & Floyd 1987) from the run's seed in O(k), where a scan of the rows taken so far
 * would cost O(k^2).
 */
void
KmeansSeedRandom(KmeansData *data, int k, uint64 seed, float *centers)
{
	int64	   *rows = palloc(sizeof(int64) * k);

	KmeansSampleRows(data, k, seed, rows);
	KmeansFetchRows(data, rows, k, centers);
	pfree(rows);
}

/* The rows random seeding takes: k distinct ones, by weight where rows carry weights. */
void
KmeansSampleRows(KmeansData *data, int k, uint64 seed, int64 *rows)
{
	if (data->weights != NULL)
		WeightedSample(data, k, seed, rows);
	else
		km_sample_rows(data->n, k, seed, rows);
}

/* Starting centers for k clusters (centred) of seeding run `run`, by the option's method. */
static void
SeedCenters(KmeansData *data, const KmeansOptions *opt, int k, int run, float *centers)
{
	if (data->agg != NULL)
		KmeansAggregateSeed(data, opt, k, run, centers);	/* strategy.c: few passes */
	else if (opt->init == KMEANS_INIT_RANDOM)
		KmeansSeedRandom(data, k, KmeansRunSeed(opt, run), centers);
	else if (opt->init == KMEANS_INIT_PARALLEL)
		KmeansSeedParallel(data, opt, k, run, centers);
	else
	{
		KmRng		rng;

		km_rng_seed(&rng, KmeansRunSeed(opt, run));
		SeedPlusPlus(data, k, &rng, centers);
	}
}

/*
 * Copies explicit starting centers (un-centred, k x d) into the model set, centred; under the
 * cosine metric scaled to unit length first, as the rows are.
 */
static void
ExplicitCenters(KmeansData *data, const KmeansOptions *opt, int k, float *centers)
{
	int			d = data->d;
	const float *v = KmeansCheckStartCenters(opt->init_centers, k, d);

	memcpy(centers, v, sizeof(float) * k * d);
	for (int j = 0; j < k; j++)
	{
		const char *bad = KmeansMetricPrepareRow(opt->metric, centers + (int64) j * d, d);

		if (bad)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("init_centers row %d %s", j + 1, bad),
					 errhint("%s", opt->metric == KM_METRIC_COSINE ?
							 "Give every starting center a nonzero value." :
							 KmeansMetricRowHint(opt->metric))));
	}
	for (int64 i = 0; i < (int64) k * d; i++)
		centers[i] -= data->mean[i % d];
}

/*
 * Seeds every segment of a model set for seeding run `run`.  Greedy k-means++ draws Trials(k)
 * candidates per center, so one run for the largest k of a group with the same number of
 * trials gives every smaller k of the group its first k centers, exactly what a run for that k
 * alone would choose; random seeding draws each k's own rows.  Explicit centers (one k only)
 * are taken as given.
 */
static void
SeedModelSet(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run)
{
	int			d = data->d;
	int			s = 0;

	if (opt->init == KMEANS_INIT_EXPLICIT)
	{
		if (ms->nseg != 1)
			elog(ERROR, "kmeans: explicit centers for %d values of k (this is a bug)", ms->nseg);
		ExplicitCenters(data, opt, ms->seg_off[1], ms->centers);
		return;
	}
	while (s < ms->nseg)
	{
		int			last = s;
		int			k;
		float	   *c;

#define SEG_K(j) (ms->seg_off[(j) + 1] - ms->seg_off[j])
		if (opt->init == KMEANS_INIT_PLUSPLUS)
			while (last + 1 < ms->nseg && Trials(SEG_K(last + 1)) == Trials(SEG_K(s)))
				last++;
		k = SEG_K(last);
		c = palloc(sizeof(float) * k * d);
		SeedCenters(data, opt, k, run, c);
		for (int j = s; j <= last; j++)
			memcpy(ms->centers + (int64) ms->seg_off[j] * d, c, sizeof(float) * SEG_K(j) * d);
#undef SEG_K
		pfree(c);
		s = last + 1;
	}
}

/* Seeds every segment of a model set for seeding run `run`, as a step of the fit's log. */
void
KmeansSeedRun(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run)
{
	double		start = KmeansStepStart();

	KmeansProgressSetPhase(KMEANS_PROGRESS_SEEDING, run + 1, 0);
	SeedModelSet(data, opt, ms, run);
	KmeansStepEnd(KMEANS_PHASE_SEED, start, 0, ms->nseg, NAN);
}
