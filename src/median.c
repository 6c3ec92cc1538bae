/*
 * median.c -- center => 'median' (metric => 'iou'): each anchor box the per-dimension median of
 * its boxes' widths and heights rather than their mean, the variant of YOLO's anchor clustering
 * that a few outlying boxes move less.
 *
 * After a pass the backend holds every row's label (pass_begin .. pass_end) and the pass's
 * counts say how many rows each cluster has; the medians need the rows themselves, grouped by
 * label, so each iteration reads the labels back with the data, a batch of rows at a time (one
 * more scan of the source when it is streamed), and gathers the values, which are sorted per
 * cluster and dimension.  The median of an even count is the mean of the two middle values, as numpy's.
 * A cluster the repair filled (it had no row in the pass) keeps the relocated row that the sums
 * give; that row also stays in the median of the cluster it came from for this iteration.
 * Memory: every row's d values, and a count and an offset per center (budget.c).
 */
#include "kmeans.h"

#include <math.h>

#include "lloyd.h"
#include "miscadmin.h"
#include "utils/memutils.h"

typedef struct Gather
{
	LloydState *ls;
	int64	   *start;			/* per running center: its first value */
	const int64 *count;			/* its rows: the pass's counts */
	int64	   *fill;			/* its rows gathered so far */
	float	   *vals;			/* per center: d runs of count values */
} Gather;

/* The running center (0 .. rs->k - 1) of each row and running segment, from the state. */
static inline int
RunningCenter(const LloydState *ls, int64 i, int r)
{
	return ls->rs->off[r] + ls->labels[i * ls->ms->nseg + ls->rs->segs[r]];
}

/* Gathers one batch's values by label. */
static void
GatherBatch(KmeansBatch *b, void *arg)
{
	Gather	   *g = arg;
	LloydState *ls = g->ls;
	KmBackend  *be = ls->data->be;
	int			d = ls->data->d;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->state_fetch(be, b->first, b->n, ls->labels, ls->dist, &err), &err);
	for (int64 i = 0; i < b->n; i++)
		for (int r = 0; r < ls->rs->nrun; r++)
		{
			int			j = RunningCenter(ls, i, r);
			int64		at = g->start[j] * d + g->fill[j]++;

			for (int t = 0; t < d; t++)
				g->vals[at + t * g->count[j]] = b->x[i * d + t] + ls->data->mean[t];
		}
}

static int
FloatCmp(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return x < y ? -1 : x > y;
}

/*
 * The medians of the running centers after a pass (rs->k x d, as the data holds the rows,
 * centred), NaN for a center that had no row in the pass.  Called before the repair changes
 * the pass's counts.
 */
double *
KmeansMedianCenters(KmeansData *data, LloydState *ls)
{
	RunSet	   *rs = ls->rs;
	int			d = data->d;
	int64		total = 0;
	double	   *med = palloc(sizeof(double) * rs->k * d);
	Gather		g;

	KmeansLloydBuffers(ls);
	g.ls = ls;
	g.count = rs->acc.counts;
	g.fill = palloc0(sizeof(int64) * rs->k);
	g.start = palloc(sizeof(int64) * (rs->k + 1));
	for (int j = 0; j < rs->k; j++)
	{
		g.start[j] = total;
		total += g.count[j];
	}
	g.start[rs->k] = total;
	g.vals = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(total, 1) * d);
	KmeansScan(data, GatherBatch, &g);

	for (int j = 0; j < rs->k; j++)
	{
		int64		m = g.count[j];

		CHECK_FOR_INTERRUPTS();
		for (int t = 0; t < d; t++)
		{
			float	   *v = g.vals + g.start[j] * d + t * m;

			if (m == 0)
			{
				med[(int64) j * d + t] = NAN;
				continue;
			}
			qsort(v, m, sizeof(float), FloatCmp);
			med[(int64) j * d + t] = (m % 2 ? (double) v[m / 2] : 0.5 * ((double) v[m / 2 - 1] + v[m / 2])) -
				data->mean[t];
		}
	}
	pfree(g.vals);
	pfree(g.fill);
	pfree(g.start);
	return med;
}
