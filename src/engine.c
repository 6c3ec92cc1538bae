/*
 * engine.c -- the host side of a fit: seeding, the Lloyd loop, empty-cluster repair, and the
 * final assignment, all written as passes over the data so that resident and streamed data
 * take the same arithmetic.
 *
 * Per-row state that outlives a pass (the previous labels, the k-means++ distances) is kept in
 * host arrays indexed by row position; batches always start at a multiple of KM_SUB_ROWS, so
 * the backend's per-run sums line up with global runs of rows whatever the batch size.
 */
#include "kmeans.h"

#include <math.h>

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* Turns a compute-side failure into one ERROR. */
void
KmeansCheckStatus(KmStatus st, const KmError *err)
{
	if (st == KM_OK)
		return;
	if (st == KM_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("kmeans: %s", err->message),
				 errhint("Lower kmeans.threads or k, or free memory on the server.")));
	if (st == KM_ERR_DEVICE_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("kmeans: %s", err->message),
				 errhint("Raise kmeans.gpu_memory_limit or lower k, or run on the CPU with device => 'cpu'.")));
	if (st == KM_ERR_THREAD)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("kmeans: %s", err->message),
				 errhint("Lower kmeans.threads (now %d; 0 means one per core), or raise the server's limit on processes.",
						 kmeans_threads)));
	if (st == KM_ERR_NO_DEVICE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmeans: %s", err->message)));
	if (st == KM_ERR_DEVICE)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("kmeans: GPU error: %s", err->message),
				 errdetail("Reported at %s:%d.", err->file ? err->file : "?", err->line),
				 errhint("Run on the CPU with device => 'cpu' meanwhile.")));
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("kmeans: %s: %s", km_status_name(st), err->message),
			 errdetail("Reported at %s:%d.", err->file ? err->file : "?", err->line)));
}

/* A model set for the given k of each segment, centers uninitialised. */
KmeansModelSet *
KmeansModelSetMake(int d, int nseg, const int *ks)
{
	KmeansModelSet *ms = palloc0(sizeof(KmeansModelSet));
	int64		total = 0;

	ms->nseg = nseg;
	ms->d = d;
	ms->seg_off = palloc(sizeof(int) * (nseg + 1));
	for (int s = 0; s < nseg; s++)
	{
		ms->seg_off[s] = (int) total;
		total += ks[s];
	}
	ms->seg_off[nseg] = (int) total;
	if (total * d > (int64) (MaxAllocHugeSize / sizeof(double)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kmeans: " INT64_FORMAT " centers of dimension %d are too many", total, d)));
	ms->centers = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * total * d);
	ms->n_iter = palloc0(sizeof(int) * nseg);
	ms->converged = palloc0(sizeof(bool) * nseg);
	ms->sizes = palloc0(sizeof(int64) * total);
	ms->inertia = palloc0(sizeof(double) * total);
	ms->sums = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * total * d);
	return ms;
}

/* Frees a model set that is no longer kept, so that n_init runs hold two sets, not n_init. */
void
KmeansModelSetFree(KmeansModelSet *ms)
{
	pfree(ms->seg_off);
	pfree(ms->centers);
	pfree(ms->n_iter);
	pfree(ms->converged);
	pfree(ms->sizes);
	pfree(ms->inertia);
	pfree(ms->sums);
	pfree(ms);
}

/* ---------------------------------------------------------------------------------------------
 * Fetching rows by position
 * ------------------------------------------------------------------------------------------- */

typedef struct FetchState
{
	int64		m;
	const int64 *rows;			/* ascending */
	const int  *slot;			/* where row i goes in out */
	int64		next;
	int			d;
	float	   *out;
} FetchState;

static void
FetchBatch(KmeansBatch *b, void *arg)
{
	FetchState *fs = arg;

	while (fs->next < fs->m && fs->rows[fs->next] < b->first + b->n)
	{
		int64		i = fs->rows[fs->next] - b->first;

		memcpy(fs->out + (int64) fs->slot[fs->next] * fs->d, b->x + i * fs->d,
			   sizeof(float) * fs->d);
		fs->next++;
	}
}

typedef struct RowRef
{
	int64		row;
	int			slot;
} RowRef;

static int
RowRefCmp(const void *a, const void *b)
{
	const RowRef *x = a,
			   *y = b;

	if (x->row != y->row)
		return x->row < y->row ? -1 : 1;
	return x->slot - y->slot;
}

/* Copies the (centred) rows at the given positions into out[slot], in one pass. */
void
KmeansFetchRows(KmeansData *data, const int64 *rows, int64 m, float *out)
{
	RowRef	   *refs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RowRef) * m);
	int64	   *sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * m);
	int		   *slots = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * m);
	FetchState	fs;

	for (int64 i = 0; i < m; i++)
	{
		refs[i].row = rows[i];
		refs[i].slot = i;
	}
	qsort(refs, m, sizeof(RowRef), RowRefCmp);
	for (int64 i = 0; i < m; i++)
	{
		sorted[i] = refs[i].row;
		slots[i] = refs[i].slot;
	}
	fs.m = m;
	fs.rows = sorted;
	fs.slot = slots;
	fs.next = 0;
	fs.d = data->d;
	fs.out = out;
	KmeansScan(data, FetchBatch, &fs);
	if (fs.next != m)
		elog(ERROR, "kmeans: fetched " INT64_FORMAT " of " INT64_FORMAT " rows (this is a bug)",
			 fs.next, m);
	pfree(refs);
	pfree(sorted);
	pfree(slots);
}

/* ---------------------------------------------------------------------------------------------
 * Seeding
 * ------------------------------------------------------------------------------------------- */

typedef struct SeedState
{
	KmeansData *data;
	float	   *mindist;		/* n, or NULL where the backend keeps it (seed_begin) */
	float	   *runbuf;			/* KM_SUB_ROWS: one run of the backend's mindist */
	double	   *run_sums;		/* per global run of KM_SUB_ROWS rows */
	const float *cand;
	int			t;
	double	   *pot;
} SeedState;

static void
MindistBatch(KmeansBatch *b, void *arg)
{
	SeedState  *ss = arg;
	KmBackend  *be = ss->data->be;
	double	   *sums = ss->run_sums + b->first / KM_SUB_ROWS;
	KmError		err = {0};

	if (ss->mindist == NULL)
		KmeansCheckStatus(be->ops->seed_update(be, b->blk, b->first, ss->cand, sums, &err), &err);
	else
		KmeansCheckStatus(be->ops->mindist_update(be, b->blk, ss->cand, ss->mindist + b->first,
												  sums, &err), &err);
}

static void
PotentialBatch(KmeansBatch *b, void *arg)
{
	SeedState  *ss = arg;
	KmBackend  *be = ss->data->be;
	KmError		err = {0};

	if (ss->mindist == NULL)
		KmeansCheckStatus(be->ops->seed_potentials(be, b->blk, b->first, ss->cand, ss->t,
												   ss->pot, &err), &err);
	else
		KmeansCheckStatus(be->ops->potentials(be, b->blk, ss->cand, ss->t,
											  ss->mindist + b->first, ss->pot, &err), &err);
}

/* The mindist values of run r: in the host array, or fetched from the backend. */
static const float *
RunValues(const SeedState *ss, int64 n, int64 r)
{
	KmBackend  *be = ss->data->be;
	int64		lo = r * KM_SUB_ROWS;
	KmError		err = {0};

	if (ss->mindist != NULL)
		return ss->mindist + lo;
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
 * Greedy k-means++ (Arthur & Vassilvitskii 2007, with the greedy trials of scikit-learn's
 * implementation): each new center is the best of 2 + ln k candidates drawn with probability
 * proportional to D^2, best meaning the lowest total potential after adding it.
 */
static void
SeedPlusPlus(KmeansData *data, int k, KmRng *rng, float *centers)
{
	int			d = data->d;
	int64		n = data->n;
	int			t = 2 + (int) log((double) k);
	SeedState	ss;
	float	   *cand = palloc(sizeof(float) * t * d);
	double	   *targets = palloc(sizeof(double) * t);
	int64	   *rows = palloc(sizeof(int64) * t);
	int64		first;

	ss.data = data;
	ss.mindist = NULL;
	ss.runbuf = NULL;
	ss.run_sums = MemoryContextAllocHuge(CurrentMemoryContext,
										 sizeof(double) * ((n + KM_SUB_ROWS - 1) / KM_SUB_ROWS));
	ss.pot = palloc(sizeof(double) * t);
	if (data->be->ops->seed_begin != NULL)
	{
		KmError		err = {0};
		KmStatus	st = data->be->ops->seed_begin(data->be, n, &err);

		if (st == KM_OK)
			ss.runbuf = palloc(sizeof(float) * KM_SUB_ROWS);
		else if (st == KM_ERR_DEVICE_NOMEM)
			elog(DEBUG1, "kmeans: the k-means++ distances stay on the host: %s", err.message);
		else
			KmeansCheckStatus(st, &err);
	}
	if (ss.runbuf == NULL)
	{
		ss.mindist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * n);
		for (int64 i = 0; i < n; i++)
			ss.mindist[i] = INFINITY;
	}

	first = (int64) km_rng_below(rng, (uint64_t) n);
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
	if (ss.mindist)
		pfree(ss.mindist);
	if (ss.runbuf)
		pfree(ss.runbuf);
	pfree(ss.run_sums);
	pfree(ss.pot);
	pfree(cand);
	pfree(targets);
	pfree(rows);
}

/* k distinct rows chosen uniformly (Floyd's algorithm), in ascending row order. */
static void
SeedRandom(KmeansData *data, int k, KmRng *rng, float *centers)
{
	int64		n = data->n;
	int64	   *rows = palloc(sizeof(int64) * k);
	int			m = 0;

	/* Floyd: for j = n-k .. n-1 pick r in [0, j]; take r unless taken, else j */
	for (int64 j = n - k; j < n; j++)
	{
		int64		r = (int64) km_rng_below(rng, (uint64_t) j + 1);
		bool		taken = false;

		for (int i = 0; i < m; i++)
			if (rows[i] == r)
			{
				taken = true;
				break;
			}
		rows[m++] = taken ? j : r;
	}
	for (int i = 1; i < m; i++)
		for (int j = i; j > 0 && rows[j - 1] > rows[j]; j--)
		{
			int64		tmp = rows[j];

			rows[j] = rows[j - 1];
			rows[j - 1] = tmp;
		}
	KmeansFetchRows(data, rows, k, centers);
	pfree(rows);
}

/* Starting centers for k clusters (centred), by the option's method. */
void
KmeansSeed(KmeansData *data, const KmeansOptions *opt, int k, KmRng *rng, float *centers)
{
	if (opt->init == KMEANS_INIT_RANDOM)
		SeedRandom(data, k, rng, centers);
	else
		SeedPlusPlus(data, k, rng, centers);
}

/* ---------------------------------------------------------------------------------------------
 * Lloyd
 * ------------------------------------------------------------------------------------------- */

/* The centers of the running segments, as installed in the backend for one pass. */
typedef struct RunSet
{
	int			nrun;
	int		   *segs;			/* running segment -> model-set segment */
	int		   *off;			/* nrun + 1, offsets into the run set's centers */
	int			k;
	KmAccum		acc;
} RunSet;

typedef struct LloydState
{
	KmeansData *data;
	KmeansModelSet *ms;
	RunSet	   *rs;
	int32	   *labels_old;		/* n * nseg, segment-local */
	float	   *dist_all;		/* n * nseg: each row's distance in this pass, for repairs */
	int64	   *changed;		/* per running segment */
	int32	   *labels;			/* per batch: rows * nrun */
	float	   *dist;
	bool		accumulate;
	bool		exact;			/* distances summed directly: the final pass reports them */
	bool		device_state;	/* the backend keeps labels_old and dist_all (pass_begin) */
	KmeansLabelFn sink;
	void	   *sink_arg;
} LloydState;

/* Installs the centers of the running segments (all segments when all is true). */
static RunSet *
RunSetMake(KmeansData *data, KmeansModelSet *ms, bool all)
{
	RunSet	   *rs = palloc0(sizeof(RunSet));
	int			d = ms->d;
	float	   *c;
	KmError		err = {0};

	rs->segs = palloc(sizeof(int) * ms->nseg);
	rs->off = palloc(sizeof(int) * (ms->nseg + 1));
	rs->off[0] = 0;
	for (int s = 0; s < ms->nseg; s++)
		if (all || !ms->converged[s])
		{
			rs->segs[rs->nrun] = s;
			rs->off[rs->nrun + 1] = rs->off[rs->nrun] + (ms->seg_off[s + 1] - ms->seg_off[s]);
			rs->nrun++;
		}
	rs->k = rs->off[rs->nrun];
	if (rs->nrun == 0)
		return rs;
	c = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rs->k * d);
	for (int r = 0; r < rs->nrun; r++)
	{
		int			s = rs->segs[r];

		memcpy(c + (int64) rs->off[r] * d, ms->centers + (int64) ms->seg_off[s] * d,
			   sizeof(float) * (ms->seg_off[s + 1] - ms->seg_off[s]) * d);
	}
	KmeansCheckStatus(data->be->ops->set_centers(data->be, c, d, rs->nrun, rs->off, &err), &err);
	pfree(c);

	rs->acc.d = d;
	rs->acc.k = rs->k;
	rs->acc.sums = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * rs->k * d);
	rs->acc.counts = palloc(sizeof(int64) * rs->k);
	rs->acc.inertia = palloc(sizeof(double) * rs->k);
	return rs;
}

static void
RunSetReset(RunSet *rs)
{
	memset(rs->acc.sums, 0, sizeof(double) * rs->k * rs->acc.d);
	memset(rs->acc.counts, 0, sizeof(int64) * rs->k);
	memset(rs->acc.inertia, 0, sizeof(double) * rs->k);
}

static void
RunSetFree(RunSet *rs)
{
	if (rs->nrun > 0)
	{
		pfree(rs->acc.sums);
		pfree(rs->acc.counts);
		pfree(rs->acc.inertia);
	}
	pfree(rs->segs);
	pfree(rs->off);
	pfree(rs);
}

/* Per-batch label and distance buffers for nrun segments. */
static void
BatchBuffers(LloydState *ls, int nrun)
{
	KmeansData *data = ls->data;
	int64		rows = Min(data->n, data->resident ? data->chunk_rows : (int64) data->batch_rows);

	ls->labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * rows * nrun);
	ls->dist = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rows * nrun);
}

/* One batch of a Lloyd pass: assign, count label changes, accumulate. */
static void
LloydBatch(KmeansBatch *b, void *arg)
{
	LloydState *ls = arg;
	RunSet	   *rs = ls->rs;
	KmBackend  *be = ls->data->be;
	int			nseg = ls->ms->nseg;
	KmError		err = {0};

	/* a backend that can do both in one step saves handing the labels back */
	if (ls->accumulate && be->ops->assign_accumulate)
		KmeansCheckStatus(be->ops->assign_accumulate(be, b->blk, ls->labels, ls->dist, ls->exact,
													 &rs->acc, &err), &err);
	else
		KmeansCheckStatus(be->ops->assign(be, b->blk, ls->labels, ls->dist, ls->exact, &err),
						  &err);
	if (ls->labels_old)
	{
		for (int64 i = 0; i < b->n; i++)
			for (int r = 0; r < rs->nrun; r++)
			{
				int32		local = ls->labels[i * rs->nrun + r] - rs->off[r];
				int64		at = (b->first + i) * nseg + rs->segs[r];

				if (ls->labels_old[at] != local)
				{
					ls->changed[r]++;
					ls->labels_old[at] = local;
				}
				ls->dist_all[at] = ls->dist[i * rs->nrun + r];
			}
	}
	if (ls->accumulate && !be->ops->assign_accumulate)
		KmeansCheckStatus(be->ops->accumulate(be, b->blk, rs->nrun, ls->labels, ls->dist,
											  &rs->acc, &err), &err);
	if (ls->sink)
		ls->sink(b, ls->labels, ls->dist, rs->nrun, ls->sink_arg);
}

/* One batch of a Lloyd pass whose per-row state the backend keeps: enqueued, not waited for. */
static void
PassBatch(KmeansBatch *b, void *arg)
{
	LloydState *ls = arg;
	KmBackend  *be = ls->data->be;
	KmError		err = {0};

	KmeansCheckStatus(be->ops->pass_block(be, b->blk, b->first, &err), &err);
}

/* The host copies of the per-row state, for a loop that keeps it here or a repair that reads it. */
static void
HostState(LloydState *ls)
{
	int64		entries = ls->data->n * ls->ms->nseg;

	if (ls->labels_old != NULL)
		return;
	ls->labels_old = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * entries);
	memset(ls->labels_old, 0xff, sizeof(int32) * entries);
	ls->dist_all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * entries);
}

/*
 * One Lloyd pass over every row for the running segments: with the state on the device, the
 * blocks are enqueued and the pass is waited for once, at its end; otherwise each batch is
 * assigned, compared and accumulated here.  A device that cannot hold the state on the first
 * pass hands it to the host for the rest of the fit.
 */
static void
LloydPass(LloydState *ls, int it)
{
	KmeansData *data = ls->data;
	KmBackend  *be = data->be;
	RunSet	   *rs = ls->rs;
	KmError		err = {0};

	if (ls->device_state)
	{
		KmStatus	st = be->ops->pass_begin(be, data->n, ls->ms->nseg, rs->segs, it == 1, &err);

		if (st == KM_ERR_DEVICE_NOMEM && it == 1)
		{
			elog(DEBUG1, "kmeans: the rows' labels stay on the host: %s", err.message);
			ls->device_state = false;
		}
		else
		{
			KmeansCheckStatus(st, &err);
			KmeansScan(data, PassBatch, ls);
			KmeansCheckStatus(be->ops->pass_end(be, &rs->acc, ls->changed, &err), &err);
			return;
		}
	}
	HostState(ls);
	if (ls->labels == NULL)
		BatchBuffers(ls, ls->ms->nseg);
	KmeansScan(data, LloydBatch, ls);
}

/* A candidate row for an empty cluster: far from its center. */
typedef struct FarRow
{
	float		dist;
	int64		row;
	int32		label;			/* global in the run set */
	float	   *x;
} FarRow;

/* True when a is a better relocation candidate than b: farther, then earlier. */
static inline bool
FarBetter(const FarRow *a, const FarRow *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->row < b->row);
}

static void
HeapSiftDown(FarRow *h, int size, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					w = i;
		FarRow		tmp;

		if (l < size && FarBetter(&h[w], &h[l]))
			w = l;
		if (r < size && FarBetter(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		tmp = h[i];
		h[i] = h[w];
		h[w] = tmp;
		i = w;
	}
}

static void
HeapSiftUp(FarRow *h, int i)
{
	while (i > 0)
	{
		int			p = (i - 1) / 2;
		FarRow		tmp;

		if (!FarBetter(&h[p], &h[i]))
			return;
		tmp = h[i];
		h[i] = h[p];
		h[p] = tmp;
		i = p;
	}
}

/* Pushes a candidate into a bounded min-heap on FarBetter (the worst kept candidate on top). */
static void
HeapOffer(FarRow *h, int *size, int cap, const FarRow *cand)
{
	if (*size < cap)
	{
		h[*size] = *cand;
		HeapSiftUp(h, (*size)++);
	}
	else if (FarBetter(cand, &h[0]))
	{
		h[0] = *cand;
		HeapSiftDown(h, *size, 0);
	}
}

static int
FarRowCmp(const void *a, const void *b)
{
	const FarRow *x = a,
			   *y = b;

	if (FarBetter(x, y))
		return -1;
	if (FarBetter(y, x))
		return 1;
	return 0;
}

/*
 * Empty clusters: each takes one of the rows farthest from their centers, moved out of a cluster
 * that keeps at least one row (as scikit-learn relocates, so k never shrinks).  Among the k
 * farthest rows at most k - m are the last row of their cluster, so m movable rows are found.
 * The pass just made left every row's label and distance in labels_old and dist_all (fetched
 * from the backend where it keeps them, only when a cluster is empty), so the candidates are
 * chosen from memory; only their vectors are fetched.
 */
static void
RepairEmpty(KmeansData *data, LloydState *ls)
{
	RunSet	   *rs = ls->rs;
	KmeansModelSet *ms = ls->ms;
	int			d = data->d;
	int			nseg = ms->nseg;
	bool		any = false;

	for (int j = 0; j < rs->k; j++)
		any |= rs->acc.counts[j] == 0;
	if (!any)
		return;
	if (ls->device_state)
	{
		KmError		err = {0};

		HostState(ls);
		KmeansCheckStatus(data->be->ops->state_fetch(data->be, ls->labels_old, ls->dist_all, &err),
						  &err);
	}

	for (int r = 0; r < rs->nrun; r++)
	{
		int			seg = rs->segs[r];
		int			k = rs->off[r + 1] - rs->off[r];
		int			cap = (int) Min((int64) k, data->n);
		int			size = 0;
		int			next = 0;
		bool		empty = false;
		FarRow	   *h;
		int64	   *rows;
		float	   *x;

		for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
			if (rs->acc.counts[j] == 0)
				empty = true;
		if (!empty)
			continue;

		h = palloc(sizeof(FarRow) * cap);
		for (int64 i = 0; i < data->n; i++)
		{
			FarRow		cand;

			if ((i & ((1 << 20) - 1)) == 0)
				CHECK_FOR_INTERRUPTS();
			cand.dist = ls->dist_all[i * nseg + seg];
			cand.row = i;
			cand.label = ls->labels_old[i * nseg + seg] + rs->off[r];
			cand.x = NULL;
			HeapOffer(h, &size, cap, &cand);
		}
		qsort(h, size, sizeof(FarRow), FarRowCmp);
		rows = palloc(sizeof(int64) * size);
		x = palloc(sizeof(float) * size * d);
		for (int i = 0; i < size; i++)
		{
			rows[i] = h[i].row;
			h[i].x = x + (int64) i * d;
		}
		KmeansFetchRows(data, rows, size, x);

		for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
		{
			FarRow	   *f;
			double	   *sj = rs->acc.sums + (int64) j * d;
			double	   *so;

			if (rs->acc.counts[j] != 0)
				continue;
			while (next < size && rs->acc.counts[h[next].label] <= 1)
				next++;
			if (next == size)
				break;			/* fewer distinct rows than clusters: nothing left to move */
			f = &h[next++];
			so = rs->acc.sums + (int64) f->label * d;
			for (int t = 0; t < d; t++)
			{
				so[t] -= f->x[t];
				sj[t] = f->x[t];
			}
			rs->acc.counts[f->label]--;
			rs->acc.counts[j] = 1;
			if (kmeans_verbose)
				ereport(NOTICE,
						(errmsg("kmeans: cluster %d of k=%d was empty; moved row " INT64_FORMAT " into it",
								j - rs->off[r], k, f->row + 1)));
		}
		pfree(h);
		pfree(rows);
		pfree(x);
	}
}

/*
 * Lloyd's algorithm (Lloyd 1982) on every segment of the model set together: each pass assigns
 * every row to its nearest center in every running segment, then each segment moves its
 * centers to the means.  A segment stops when no label changed (strict convergence) or when
 * the centers moved less than tol times the data's mean variance, as scikit-learn does; a
 * stopped segment costs nothing in later passes.
 */
void
KmeansLloyd(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms)
{
	int			d = ms->d;
	double		tol_abs = opt->tol * data->mean_var;
	LloydState	ls;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans lloyd",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.accumulate = true;
	ls.device_state = data->be->ops->pass_begin != NULL;
	ls.changed = palloc(sizeof(int64) * ms->nseg);

	for (int s = 0; s < ms->nseg; s++)
	{
		ms->converged[s] = false;
		ms->n_iter[s] = 0;
	}

	for (int it = 1; it <= opt->max_iter; it++)
	{
		RunSet	   *rs = RunSetMake(data, ms, false);

		if (rs->nrun == 0)
		{
			RunSetFree(rs);
			break;
		}
		ls.rs = rs;
		RunSetReset(rs);
		memset(ls.changed, 0, sizeof(int64) * rs->nrun);
		LloydPass(&ls, it);
		RepairEmpty(data, &ls);

		for (int r = 0; r < rs->nrun; r++)
		{
			int			s = rs->segs[r];
			double		shift = 0.0;
			double		inertia = 0.0;

			for (int j = rs->off[r]; j < rs->off[r + 1]; j++)
			{
				float	   *c = ms->centers + (int64) (ms->seg_off[s] + j - rs->off[r]) * d;
				const double *sum = rs->acc.sums + (int64) j * d;
				int64		cnt = rs->acc.counts[j];

				inertia += rs->acc.inertia[j];
				if (cnt == 0)
					continue;	/* only when rows are fewer than distinct points */
				for (int t = 0; t < d; t++)
				{
					float		v = (float) (sum[t] / cnt);
					double		diff = (double) v - c[t];

					shift += diff * diff;
					c[t] = v;
				}
			}
			ms->n_iter[s] = it;
			if (kmeans_verbose)
				ereport(NOTICE,
						(errmsg("kmeans: k=%d iteration %d: inertia %.6g, " INT64_FORMAT " labels changed, center shift %.6g",
								rs->off[r + 1] - rs->off[r], it, inertia, ls.changed[r], shift)));
			if (ls.changed[r] == 0 || shift <= tol_abs)
				ms->converged[s] = true;
		}
		RunSetFree(rs);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The final assignment of every row to the final centers of every segment: sizes and inertia
 * per center, and the labels handed to fn (global run-set labels, equal to model-set offsets).
 */
void
KmeansFinalPass(KmeansData *data, KmeansModelSet *ms, KmeansLabelFn fn, void *arg)
{
	LloydState	ls;
	RunSet	   *rs = RunSetMake(data, ms, true);

	memset(&ls, 0, sizeof(ls));
	ls.data = data;
	ls.ms = ms;
	ls.rs = rs;
	ls.accumulate = true;
	ls.exact = true;
	ls.sink = fn;
	ls.sink_arg = arg;
	BatchBuffers(&ls, rs->nrun);
	RunSetReset(rs);
	KmeansScan(data, LloydBatch, &ls);
	memcpy(ms->sizes, rs->acc.counts, sizeof(int64) * rs->k);
	memcpy(ms->inertia, rs->acc.inertia, sizeof(double) * rs->k);
	memcpy(ms->sums, rs->acc.sums, sizeof(double) * rs->k * ms->d);
	pfree(ls.labels);
	pfree(ls.dist);
	RunSetFree(rs);

	/* finish with the invariants every result relies on */
	for (int64 i = 0; i < (int64) ms->seg_off[ms->nseg] * ms->d; i++)
		if (!isfinite(ms->centers[i]))
			elog(ERROR, "kmeans: center value " INT64_FORMAT " is not finite (this is a bug)", i);
	/* the range check of the first pass (reader.c) keeps every distance finite */
	for (int j = 0; j < ms->seg_off[ms->nseg]; j++)
		if (!isfinite(ms->inertia[j]))
			elog(ERROR, "kmeans: the inertia of center %d is not finite (this is a bug)", j);
}

/* Copies explicit starting centers (un-centred, k x d) into the model set, centred. */
static void
ExplicitCenters(KmeansData *data, const KmeansOptions *opt, int k, float *centers)
{
	ArrayType  *a = opt->init_centers;
	int			d = data->d;
	const float *v;

	if (ARR_NDIM(a) != 2 || ARR_DIMS(a)[0] != k || ARR_DIMS(a)[1] != d)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("init_centers must be a %d x %d array, got %s", k, d,
						ARR_NDIM(a) == 2 ? psprintf("%d x %d", ARR_DIMS(a)[0], ARR_DIMS(a)[1]) :
						psprintf("a %d-dimensional array", ARR_NDIM(a))),
				 errhint("Pass one row of %d values per cluster, e.g. ARRAY[[..],[..]]::real[].", d)));
	v = (const float *) ARR_DATA_PTR(a);
	for (int64 i = 0; i < (int64) k * d; i++)
	{
		if (!isfinite(v[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("init_centers has a non-finite value at center %d, position %d",
							(int) (i / d) + 1, (int) (i % d) + 1),
					 errhint("Starting centers must be finite numbers.")));
		centers[i] = v[i] - data->mean[i % d];
	}
}


/*
 * The random stream of seeding run `run`: run 0 uses the seed itself, later runs a seed mixed
 * with the run number.  Each run starts afresh, so a run seeds every k the same way whatever k
 * the previous runs drew; kmeans_elbow relies on it.
 */
void
KmeansRunRng(const KmeansOptions *opt, int run, KmRng *rng)
{
	uint64_t	seed = (uint64_t) opt->seed;

	if (run > 0)
		seed ^= UINT64_C(0x9E3779B97F4A7C15) * (uint64_t) run;
	km_rng_seed(rng, seed);
}

/* Sum of the final inertia of one segment. */
double
KmeansSegmentInertia(const KmeansModelSet *ms, int s)
{
	double		total = 0.0;

	for (int j = ms->seg_off[s]; j < ms->seg_off[s + 1]; j++)
		total += ms->inertia[j];
	return total;
}

/* A complete fit for one k: n_init seedings, Lloyd on each, the lowest inertia kept. */
KmeansModelSet *
KmeansFitOne(KmeansData *data, const KmeansOptions *opt, int k)
{
	KmeansModelSet *best = NULL;
	double		best_inertia = 0.0;
	int			n_init = opt->init == KMEANS_INIT_EXPLICIT ? 1 : opt->n_init;

	for (int run = 0; run < n_init; run++)
	{
		KmeansModelSet *ms = KmeansModelSetMake(data->d, 1, &k);
		double		inertia;

		if (opt->init == KMEANS_INIT_EXPLICIT)
			ExplicitCenters(data, opt, k, ms->centers);
		else
		{
			KmRng		rng;

			KmeansRunRng(opt, run, &rng);
			KmeansSeed(data, opt, k, &rng, ms->centers);
		}
		KmeansLloyd(data, opt, ms);
		KmeansFinalPass(data, ms, NULL, NULL);
		inertia = KmeansSegmentInertia(ms, 0);
		if (kmeans_verbose && n_init > 1)
			ereport(NOTICE,
					(errmsg("kmeans: run %d of %d: inertia %.9g after %d iterations",
							run + 1, n_init, inertia, ms->n_iter[0])));
		if (best == NULL || inertia < best_inertia)
		{
			if (best != NULL)
				KmeansModelSetFree(best);
			best = ms;
			best_inertia = inertia;
		}
		else
			KmeansModelSetFree(ms);
	}
	return best;
}

/* Stops the backend's threads and frees its memory; also run when an ERROR unwinds the fit. */
static void
ReleaseBackend(void *arg)
{
	KmeansData *data = arg;
	KmBackend  *be = data->be;

	if (be == NULL)
		return;
	KmeansDataDetach(data);
	be->ops->destroy(be);
}

/*
 * Whether the fit runs on the GPU: 'cpu' never, 'gpu' or an ERROR saying why not, 'auto' when
 * kmeans.gpu_id can be used.  An 'auto' that falls back says so in one NOTICE per session,
 * except in a build without the GPU backend, where the CPU is the only choice.  The probe
 * initialises CUDA in this backend process, never earlier.
 */
static bool
UseGpu(const KmeansOptions *opt)
{
	static bool fallback_reported = false;
	char		desc[256];
	KmError		err = {0};

	if (opt->device == KMEANS_DEVICE_CPU)
		return false;
	if (km_cuda_probe(kmeans_gpu_id, desc, sizeof(desc), &err) == KM_OK)
	{
		elog(DEBUG1, "kmeans: running on %s", desc);
		return true;
	}
	if (opt->device == KMEANS_DEVICE_GPU)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("device \"gpu\" is not available"),
				 errdetail("%s.", err.message),
				 errhint("Use device => 'cpu' or 'auto', or set kmeans.device = 'auto'; "
						 "kmeans.gpu_id picks another GPU.")));
	if (!fallback_reported && km_cuda_built())
	{
		ereport(NOTICE,
				(errmsg("kmeans: no usable GPU, running on the CPU"),
				 errdetail("%s.", err.message),
				 errhint("Set kmeans.device = 'cpu' to choose the CPU without probing.")));
		fallback_reported = true;
	}
	return false;
}

/*
 * Starts the chosen backend and hands it the data.  Its threads and memory live outside
 * PostgreSQL's allocator, so they are tied to the data's memory context: deleting the context,
 * as ERROR and cancel do, releases them.
 */
static void
EngineStart(KmeansData *data, bool gpu)
{
	MemoryContextCallback *cb;
	KmBackend  *be = NULL;
	KmError		err = {0};
	int			threads = kmeans_threads > 0 ? kmeans_threads : km_cpu_count();

	if (gpu)
		KmeansCheckStatus(km_cuda_backend_create(kmeans_gpu_id, data->d,
												 (size_t) kmeans_gpu_memory_limit * 1024,
												 &be, &err), &err);
	else
		KmeansCheckStatus(km_cpu_backend_create(threads, data->d, &be, &err), &err);

	cb = MemoryContextAlloc(data->cxt, sizeof(MemoryContextCallback));
	cb->func = ReleaseBackend;
	cb->arg = data;
	data->be = be;
	MemoryContextRegisterResetCallback(data->cxt, cb);
	KmeansDataAttach(data, be);
}

/* Releases the backend at the end of a fit that went well. */
static void
EngineStop(KmeansData *data)
{
	ReleaseBackend(data);
	data->be = NULL;
}

/*
 * Opens a fit: connects to SPI, opens a GUC nest level for the scan settings, reads the source
 * once, checks k_max against its rows and starts the backend.  KmeansEnd closes it.
 */
KmeansData *
KmeansBegin(text *source, text *column, text *id_column, const KmeansOptions *opt,
			const KmeansPlan *plan)
{
	KmeansData *data;
	int			nest;
	bool		gpu;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kmeans: SPI_connect failed");
	nest = NewGUCNestLevel();
	/* the device comes first: it sets how many rows a resident chunk holds */
	gpu = UseGpu(opt);
	data = KmeansDataLoad(KmeansSourceMake(source, column, id_column), plan, gpu);
	data->guc_nest = nest;
	KmeansCheckK(plan->k_max, data->n, plan->k_name);
	EngineStart(data, gpu);
	return data;
}

/* Closes a fit that went well: the backend, the scan settings, SPI. */
void
KmeansEnd(KmeansData *data)
{
	int			nest = data->guc_nest;

	EngineStop(data);
	AtEOXact_GUC(true, nest);
	SPI_finish();
}
