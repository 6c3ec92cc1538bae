/*
 * seed_parallel.c -- init => 'k-means||' (Bahmani et al. 2012) over the engine's own passes:
 * starting centers in a fixed, small number of passes over the rows, where greedy k-means++
 * makes a few per center (a streamed source is read again for each).
 *
 *   1. One row drawn as greedy k-means++ draws its first (uniformly, or by weight): the first
 *      candidate.  (Finding its values is a pass when the rows are streamed.)
 *   2. KMEANS_PARALLEL_ROUNDS rounds, one pass each.  A pass assigns every row to the candidates
 *      the previous round added (the backend's Lloyd pass, one segment), lowers each row's
 *      D^2, the squared distance to its nearest candidate so far (kept here, 4 bytes a row),
 *      adds phi = sum w D^2, and gives the row the key w D^2 / u, u uniform in (0, 1] from a
 *      hash of the seed, the round and the row.  The rows of the M largest keys are kept.
 *      After the pass, the rows whose key reaches phi / l are the round's candidates: each row
 *      is one with probability min(1, l w D^2 / phi), the draw of the paper, made in the same
 *      pass that measures phi.  l = 2k (oversampling), M = 4 l leaves room for far more than the
 *      l rows expected.
 *   3. One pass counts, per candidate, the weight of the rows nearest to it.
 *   4. Greedy k-means++ on the candidates so weighed, in memory (strategy.c's, with the fit's
 *      seed), gives the k centers.
 *
 * So a fit of a source that does not fit kmeans.memory_limit reads it 2 + KMEANS_PARALLEL_ROUNDS
 * times to seed, whatever k is (test/sql/seeding.sql counts them).  The draws depend on the rows,
 * their order and the seed only: resident and streamed data, and any thread count, give the same
 * centers.  Fewer candidates than k (few distinct rows) are topped up with rows drawn uniformly.
 *
 * A fit that keeps nothing per row (mini-batch, KmeansKeepsRowState) keeps D^2 only while it
 * fits kmeans.memory_limit (KmeansParallelKeepsD2); beyond, each round's pass assigns the rows
 * to every candidate so far, and a row's distance there is its D^2.  Each (row, candidate) distance is the same float32 whichever other candidates are
 * installed with it, so the least of them is the same bits as the least of each round's
 * least, and both ways draw the same candidates (seeding.sql compares them).  The rounds then
 * compute about 10 l distances a row instead of 4 l, and the seeding with its weighing pass
 * 15 l instead of 9 l.
 */
#include "kmeans.h"

#include <math.h>

#include "lloyd.h"
#include "miscadmin.h"
#include "utils/memutils.h"

typedef struct Kept
{
	double		key;
	int64		row;
} Kept;

typedef struct Round
{
	KmeansData *data;
	int			d;
	uint64		seed;
	int			round;
	float	   *mindist;		/* n: D^2 to the nearest candidate so far, or NULL */
	double		phi;
	/* the rows of the largest keys: a min-heap of m entries and their values */
	int			m;
	int			nkept;
	Kept	   *heap;
	int		   *slot;			/* heap entry -> its row's values in vals */
	float	   *vals;			/* m x d */
	int64		buf_rows;
	int32	   *labels;
	float	   *dist;
	bool		weighing;		/* the weighting pass: the backend counts, nothing here */
} Round;

/* A uniform value in (0, 1] for row i of a round: a hash (SplitMix64's finaliser) of all three. */
static double
RowUniform(uint64 seed, int round, int64 row)
{
	uint64		z = seed ^ (UINT64CONST(0x9E3779B97F4A7C15) * (uint64) (round + 1)) ^
		(UINT64CONST(0xD1B54A32D192ED03) * (uint64) row);

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	z ^= z >> 31;
	return ((double) (z >> 11) + 1.0) * 0x1.0p-53;
}

static void
SiftDown(Round *r, int i)
{
	for (;;)
	{
		int			a = 2 * i + 1,
					b = a + 1,
					least = i;

		if (a < r->nkept && r->heap[a].key < r->heap[least].key)
			least = a;
		if (b < r->nkept && r->heap[b].key < r->heap[least].key)
			least = b;
		if (least == i)
			return;
		{
			Kept		t = r->heap[i];
			int			s = r->slot[i];

			r->heap[i] = r->heap[least];
			r->slot[i] = r->slot[least];
			r->heap[least] = t;
			r->slot[least] = s;
		}
		i = least;
	}
}

static void
SiftUp(Round *r, int i)
{
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (r->heap[p].key <= r->heap[i].key)
			return;
		{
			Kept		t = r->heap[i];
			int			s = r->slot[i];

			r->heap[i] = r->heap[p];
			r->slot[i] = r->slot[p];
			r->heap[p] = t;
			r->slot[p] = s;
		}
		i = p;
	}
}

/* Keeps row (values x) when its key is among the m largest so far. */
static void
Keep(Round *r, double key, int64 row, const float *x)
{
	int			at;

	if (r->nkept < r->m)
	{
		at = r->nkept++;
		r->slot[at] = at;
		r->heap[at].key = key;
		r->heap[at].row = row;
		memcpy(r->vals + (int64) r->slot[at] * r->d, x, sizeof(float) * r->d);
		SiftUp(r, at);
		return;
	}
	if (key <= r->heap[0].key)
		return;
	r->heap[0].key = key;
	r->heap[0].row = row;
	memcpy(r->vals + (int64) r->slot[0] * r->d, x, sizeof(float) * r->d);
	SiftDown(r, 0);
}

/* One batch of a round's pass: the backend assigns it; D^2, phi and the keys here. */
static void
RoundBatch(KmeansBatch *b, void *arg)
{
	Round	   *r = arg;
	KmBackend  *be = r->data->be;
	bool		iou = r->data->src->metric == KM_METRIC_IOU;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->pass_block(be, b->blk, b->first, &err), &err);
	if (r->weighing)
		return;
	for (int64 off = 0; off < b->n; off += r->buf_rows)
	{
		int64		m = Min(r->buf_rows, b->n - off);

		KmeansCheckStatus(be->ops->state_fetch(be, b->first + off, m, r->labels, r->dist, &err), &err);
		for (int64 i = 0; i < m; i++)
		{
			int64		row = b->first + off + i;
			/* the backend's distance is squared, except 1 - IoU, which k-means++ squares */
			float		d2 = iou ? r->dist[i] * r->dist[i] : r->dist[i];
			double		w = b->w ? (double) b->w[off + i] : 1.0;
			double		wd2;

			if (r->mindist != NULL)
			{
				if (d2 < r->mindist[row])
					r->mindist[row] = d2;
				d2 = r->mindist[row];
			}
			wd2 = w * (double) d2;
			if (!(wd2 > 0.0))
				continue;		/* a candidate already, or of weight 0 */
			r->phi += wd2;
			Keep(r, wd2 / RowUniform(r->seed, r->round, row), row, b->x + (off + i) * r->d);
		}
	}
}

typedef struct Drawn
{
	double		key;
	int64		row;
	int			slot;
} Drawn;

static int
KeyDescending(const void *a, const void *b)
{
	const Drawn *x = a,
			   *y = b;

	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/*
 * A pass of the rows over the candidates c[from .. to): a round's (weights NULL), or the
 * weighting one, which sets weights[j - from] to the weight of the rows nearest candidate j.
 */
static void
CandidatePass(Round *r, const float *c, int from, int to, double *weights)
{
	KmBackend  *be = r->data->be;
	int			k = to - from;
	int			seg_off[2] = {0, k};
	int			segs[1] = {0};
	int64		changed[1];
	KmAccum		acc;
	KmError		err = {0};

	acc.d = r->d;
	acc.k = k;
	acc.sums = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * (Size) k * r->d);
	memset(acc.sums, 0, sizeof(double) * (Size) k * r->d);
	acc.counts = palloc0(sizeof(int64) * k);
	acc.inertia = palloc0(sizeof(double) * k);
	acc.mass = r->data->weights ? palloc0(sizeof(double) * k) : NULL;
	r->weighing = weights != NULL;
	KmeansCheckStatus(be->ops->set_centers(be, c + (int64) from * r->d, r->d, 1, seg_off, &err), &err);
	KmeansCheckStatus(be->ops->pass_begin(be, r->data->n, 1, segs, true, false,
										  KmeansKeepsRowState(r->data->fit), &err), &err);
	KmeansScan(r->data, RoundBatch, r);
	KmeansCheckStatus(be->ops->pass_end(be, &acc, changed, &err), &err);
	if (weights != NULL)
		for (int j = 0; j < k; j++)
			weights[j] = acc.mass ? acc.mass[j] : (double) acc.counts[j];
	pfree(acc.sums);
	pfree(acc.counts);
	pfree(acc.inertia);
	if (acc.mass)
		pfree(acc.mass);
}

/* Starting centers (centred, k x d) for seeding run `run` by k-means||. */
void
KmeansSeedParallel(KmeansData *data, const KmeansOptions *opt, int k, int run, float *centers)
{
	int			d = data->d;
	uint64		seed = KmeansRunSeed(opt, run);
	int			l = (int) Min((int64) 2 * k, (int64) 250000);
	int			cap = Max(16, 4 * l),
				nc = 0,
				done = 0;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans k-means||",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KmPrune		prune = data->be->prune;
	Round		r;
	float	   *c = MemoryContextAllocHuge(cxt, sizeof(float) * (Size) cap * d);
	float	   *first = palloc(sizeof(float) * d);
	double	   *w;

	memset(&r, 0, sizeof(r));
	r.data = data;
	r.d = d;
	r.seed = seed;
	r.m = (int) Min((int64) 4 * l, (int64) 1000000);
	if (KmeansParallelKeepsD2(data->fit, data->n))
	{
		r.mindist = MemoryContextAllocHuge(cxt, sizeof(float) * data->n);
		for (int64 i = 0; i < data->n; i++)
			r.mindist[i] = INFINITY;
	}
	r.heap = MemoryContextAllocHuge(cxt, sizeof(Kept) * r.m);
	r.slot = MemoryContextAllocHuge(cxt, sizeof(int) * r.m);
	r.vals = MemoryContextAllocHuge(cxt, sizeof(float) * (Size) r.m * d);
	r.buf_rows = Min(data->n, (int64) KMEANS_CHUNK_ROWS);
	r.labels = MemoryContextAllocHuge(cxt, sizeof(int32) * r.buf_rows);
	r.dist = MemoryContextAllocHuge(cxt, sizeof(float) * r.buf_rows);
	/* the candidates' passes start every label afresh: nothing for bounds to keep */
	data->be->prune = KM_PRUNE_OFF;

	/* 1. the first candidate, drawn as greedy k-means++ draws its first center */
	KmeansSeedRandom(data, 1, seed, first);
	KmeansAddCandidates(&c, &nc, &cap, first, 1, d);

	/* 2. the rounds */
	for (r.round = 1; r.round <= KMEANS_PARALLEL_ROUNDS && done < nc; r.round++)
	{
		int			take = 0;

		CHECK_FOR_INTERRUPTS();
		r.phi = 0.0;
		r.nkept = 0;
		/* the new candidates lower the kept D^2; without it, every candidate gives it */
		CandidatePass(&r, c, r.mindist != NULL ? done : 0, nc, NULL);
		done = nc;
		if (!(r.phi > 0.0))
			break;				/* every row is a candidate already */
		/* the kept rows by key, largest first (ties by row); those reaching phi / l are drawn */
		{
			Drawn	   *drawn = palloc(sizeof(Drawn) * Max(1, r.nkept));
			float	   *x = palloc(sizeof(float) * (Size) Max(1, r.nkept) * d);

			for (int i = 0; i < r.nkept; i++)
			{
				drawn[i].key = r.heap[i].key;
				drawn[i].row = r.heap[i].row;
				drawn[i].slot = r.slot[i];
			}
			qsort(drawn, r.nkept, sizeof(Drawn), KeyDescending);
			while (take < r.nkept && drawn[take].key >= r.phi / l)
			{
				memcpy(x + (Size) take * d, r.vals + (Size) drawn[take].slot * d, sizeof(float) * d);
				take++;
			}
			KmeansAddCandidates(&c, &nc, &cap, x, take, d);
			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: k-means|| round %d: phi %.6g, %d rows drawn, %d candidates",
								r.round, r.phi, take, nc)));
			pfree(drawn);
			pfree(x);
		}
	}
	if (nc < k)
	{
		/* fewer candidates than clusters: top up with distinct rows drawn uniformly */
		float	   *more = palloc(sizeof(float) * (Size) k * d);

		KmeansSeedRandom(data, k, seed ^ UINT64CONST(0x5EED), more);
		KmeansAddCandidates(&c, &nc, &cap, more, k, d);
	}
	if (nc <= k)
	{
		for (int j = 0; j < k; j++)
			memcpy(centers + (Size) j * d, c + (Size) (j % nc) * d, sizeof(float) * d);
		goto out;
	}

	/* 3. each candidate weighs the rows nearest to it */
	w = palloc(sizeof(double) * nc);
	CandidatePass(&r, c, 0, nc, w);

	/* 4. greedy k-means++ on them, in the rows' own coordinates (they are centred here) */
	for (Size i = 0; i < (Size) nc * d; i++)
		c[i] += data->mean[i % d];
	KmeansPlusPlusOnCandidates(opt, c, w, nc, d, k, seed, centers);
	for (Size i = 0; i < (Size) k * d; i++)
		centers[i] -= data->mean[i % d];
out:
	data->be->prune = prune;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
