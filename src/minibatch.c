/*
 * minibatch.c -- mini-batch k-means (Sculley 2010), as scikit-learn's MiniBatchKMeans runs it:
 * algorithm => 'minibatch'.
 *
 * Each step assigns one mini-batch of rows to the current centers and moves every center that
 * received rows to the weighted mean of what it has seen so far:
 *
 *     c_j <- (W_j c_j + S_j) / (W_j + m_j),    W_j <- W_j + m_j
 *
 * where S_j and m_j are the batch's sum and weight for center j and W_j the weight the center
 * has taken in all earlier steps (so 1 / W_j is the per-center learning rate; W_j starts at 0,
 * so the first batch that reaches a center replaces it by the batch's mean).  Centers that
 * take too little weight are moved to random rows of the batch, as scikit-learn does: when a
 * center has taken none yet, or every 10 k rows, each center of weight below 1 % of the
 * largest (at most half a batch of them, the lightest) moves to a row of the batch drawn
 * uniformly among those of positive weight, and its W_j becomes the least W of the others.
 *
 * Batches.  An epoch reads the source once (max_iter is the number of epochs), resident or
 * streamed, through the same scan as a Lloyd pass.  Its rows are cut into windows of
 * KMEANS_MB_WINDOW_BATCHES batches in the source's order; each window's rows are dealt into
 * batches by a permutation drawn from the seed, a fresh one per window and epoch, and a batch
 * keeps its rows in source order (the order of a batch's rows changes only the rounding of its
 * sums).  So the batches, and every result, depend only on the rows, their order, batch_size
 * and the seed: not on whether the rows are kept in memory, nor on the thread count.  A source
 * whose order follows the clusters (sorted by them) mixes only within a window; give such a
 * source an ORDER BY random() or a hash of the id.
 *
 * Stopping, as scikit-learn: after the first step, an exponentially weighted average of the
 * batch inertia per row, with alpha = 2 batch_size / (n + 1), must fall below its least value
 * within 10 steps (max_no_improvement); and when tol > 0, a step that moves the centers by a
 * total squared distance of at most tol times the data's mean variance ends the fit.  Every k
 * of an elbow has its own counts, average and stop, and stopped k cost nothing in later steps.
 * The final labels and inertia come from one full pass (lloyd.c), as for Lloyd.
 *
 * Memory: a window of rows and one batch, besides what every fit holds (budget.c), and
 * nothing per row: a step's state is its batch's, the final pass and the k-means|| rounds keep
 * none (KmeansKeepsRowState), and k-means|| keeps D^2 only within kmeans.memory_limit, so a
 * streamed fit's memory does not grow with the table.
 */
#include "kmeans.h"

#include <math.h>

#include "lloyd.h"
#include "miscadmin.h"
#include "utils/memutils.h"

/* Steps without a new least smoothed inertia that end a fit (scikit-learn's default). */
#define KMEANS_MB_NO_IMPROVEMENT 10
/* Centers lighter than this share of the heaviest are moved (scikit-learn's default). */
#define KMEANS_MB_REASSIGN_RATIO 0.01

/* The stopping state of one segment (one k). */
typedef struct MbSegment
{
	int64		steps;			/* steps taken */
	int64		since_reassign; /* rows since the last look for light centers */
	bool		have_ewa;
	double		ewa;			/* smoothed batch inertia per row */
	bool		have_min;
	double		ewa_min;
	int			no_improvement;
	double		epoch_inertia;	/* the epoch's batch inertias added up */
} MbSegment;

typedef struct MiniBatch
{
	KmeansData *data;
	KmeansModelSet *ms;
	int			d;
	int64		batch;			/* rows per batch */
	int64		window;			/* rows per window */
	double		tol_abs;
	double		alpha;
	KmRng		rng;

	double	   *wsum;			/* per center of the model set: W_j */
	MbSegment  *seg;			/* per segment */
	int			epoch;

	/* the window being filled, rows in source order */
	float	   *wx;
	float	   *ww;				/* their weights, or NULL */
	int64		wn;
	int32	   *perm;			/* the window's permutation, then its batches' rows */
	int32	   *pos;			/* each window row's place in the permutation */
	/* one batch, gathered */
	float	   *bx;
	float	   *bw;
	int32	   *pick;			/* the batch's rows of positive weight, for a reassignment */
	float	   *next;			/* a center's update, d */
	MemoryContext step_cxt;		/* what one step allocates */
} MiniBatch;

/* Rows per window: KMEANS_MB_WINDOW_BATCHES batches, but not much beyond 64 MB of rows. */
#define KMEANS_MB_WINDOW_BATCHES 16

static int64
WindowRows(int64 n, int64 batch, int d, bool weighted)
{
	/*
	 * the window's size decides the batches, and so the result: pos (counted in budget.c)
	 * is left out of this row size, so that it does not change them
	 */
	int64		row_bytes = (int64) d * sizeof(float) + (weighted ? sizeof(float) : 0) +
		sizeof(int32);
	int64		batches;

	if (n <= 0 || batch <= 0)
		return 0;
	batches = Max(1, Min(KMEANS_MB_WINDOW_BATCHES, (int64) KMEANS_BATCH_BYTES / (row_bytes * batch)));
	return Min(n, batch * batches);
}

/* The window's size for the memory estimate (budget.c): rows of a window and of a batch. */
int64
KmeansMiniBatchWindow(int64 n, int64 batch, int d, bool weighted)
{
	return WindowRows(n, Min(n, batch), d, weighted);
}

/* Moves the light centers of segment r to rows of the batch (scikit-learn's reassignment). */
static void
Reassign(MiniBatch *mb, RunSet *rs, int r, int64 nb)
{
	KmeansModelSet *ms = mb->ms;
	int			s = rs->segs[r];
	int			k = ms->seg_off[s + 1] - ms->seg_off[s];
	double	   *W = mb->wsum + ms->seg_off[s];
	double		wmax = 0.0,
				wmin = INFINITY;
	int64		limit = (int64) (0.5 * (double) nb);
	int64		candidates = 0;
	int			moved = 0;
	bool	   *move = palloc0(sizeof(bool) * k);
	int		   *order = palloc(sizeof(int) * k);
	int			light = 0;

	for (int j = 0; j < k; j++)
		wmax = Max(wmax, W[j]);
	for (int j = 0; j < k; j++)
		if (W[j] < KMEANS_MB_REASSIGN_RATIO * wmax)
			order[light++] = j;
	if (light == 0)
		goto done;
	/* at most half a batch of them: the lightest, the lower index first on ties */
	if (light > limit)
	{
		for (int a = 1; a < light; a++)
		{
			int			j = order[a],
						b = a;

			while (b > 0 && W[order[b - 1]] > W[j])
			{
				order[b] = order[b - 1];
				b--;
			}
			order[b] = j;
		}
		light = (int) limit;
	}
	/* rows of positive weight may hold a center */
	for (int64 i = 0; i < nb; i++)
		if (mb->bw == NULL || mb->bw[i] > 0.0f)
			mb->pick[candidates++] = (int32) i;
	for (int a = 0; a < light && candidates > 0; a++)
	{
		int			j = order[a];
		/* a partial Fisher-Yates shuffle: distinct rows */
		int64		c = moved + (int64) km_rng_below(&mb->rng, (uint64) (candidates - moved));
		int32		row = mb->pick[c];

		mb->pick[c] = mb->pick[moved];
		mb->pick[moved] = row;
		memcpy(ms->centers + (int64) (ms->seg_off[s] + j) * mb->d, mb->bx + (int64) row * mb->d,
			   sizeof(float) * mb->d);
		move[j] = true;
		if (++moved == candidates)
			break;
	}
	for (int j = 0; j < k; j++)
		if (!move[j])
			wmin = Min(wmin, W[j]);
	for (int j = 0; j < k; j++)
		if (move[j])
			W[j] = wmin;
	if (KmeansTracing() && moved > 0)
		ereport(NOTICE,
				(errmsg("kmeans: k=%d epoch %d step " INT64_FORMAT ": %d light centers moved to rows of the batch",
						k, mb->epoch, mb->seg[s].steps, moved)));
done:
	pfree(move);
	pfree(order);
}

/*
 * scikit-learn's stopping rule after one step of segment s: true when the segment stops.
 * batch_inertia is the step's inertia over the batch's nb rows.
 */
static bool
Converged(MiniBatch *mb, int s, double batch_inertia, int64 nb, double shift)
{
	MbSegment  *g = &mb->seg[s];

	batch_inertia /= (double) nb;
	/* the first step's inertia is that of the starting centers */
	if (g->steps == 1)
		return false;
	g->ewa = g->have_ewa ? g->ewa * (1.0 - mb->alpha) + batch_inertia * mb->alpha : batch_inertia;
	g->have_ewa = true;
	if (mb->tol_abs > 0.0 && shift <= mb->tol_abs)
		return true;
	if (!g->have_min || g->ewa < g->ewa_min)
	{
		g->no_improvement = 0;
		g->ewa_min = g->ewa;
		g->have_min = true;
	}
	else
		g->no_improvement++;
	return g->no_improvement >= KMEANS_MB_NO_IMPROVEMENT;
}

/* One step over the nb gathered rows, for every running segment. */
static void
Step(MiniBatch *mb, int64 nb)
{
	KmeansData *data = mb->data;
	KmBackend  *be = data->be;
	KmeansModelSet *ms = mb->ms;
	int			d = mb->d;
	int64		slice = data->chunk_rows;
	MemoryContext old = MemoryContextSwitchTo(mb->step_cxt);
	RunSet	   *rs = KmeansRunSetMake(data, ms, false);
	int64	   *changed = palloc(sizeof(int64) * ms->nseg);
	KmError		err = {0};

	if (rs->nrun == 0)
		goto done;
	KmeansRunSetReset(rs);
	KmeansCheckStatus(be->ops->pass_begin(be, nb, ms->nseg, rs->segs, true, false, true, &err), &err);
	/* in slices of a resident chunk's rows, so that a cancel is seen within a call's work */
	for (int64 off = 0; off < nb; off += slice)
	{
		KmBlock    *blk = NULL;
		KmStatus	st;
		int64		len = Min(slice, nb - off);

		CHECK_FOR_INTERRUPTS();
		KmeansCheckStatus(be->ops->block_create(be, mb->bx + off * d, mb->bw ? mb->bw + off : NULL,
												len, NULL, &blk, &err), &err);
		st = be->ops->pass_block(be, blk, off, &err);
		be->ops->block_destroy(be, blk);
		KmeansCheckStatus(st, &err);
	}
	KmeansCheckStatus(be->ops->pass_end(be, &rs->acc, changed, &err), &err);

	for (int r = 0; r < rs->nrun; r++)
	{
		int			s = rs->segs[r];
		int			k = rs->off[r + 1] - rs->off[r];
		MbSegment  *g = &mb->seg[s];
		double	   *W = mb->wsum + ms->seg_off[s];
		double		inertia = 0.0;
		double		shift = 0.0;
		bool		empty = false;
		float	   *before = palloc(sizeof(float) * (int64) k * d);
		float	   *c0 = ms->centers + (int64) ms->seg_off[s] * d;

		memcpy(before, c0, sizeof(float) * (int64) k * d);
		for (int j = 0; j < k; j++)
		{
			int			a = rs->off[r] + j;
			double		m = rs->acc.mass ? rs->acc.mass[a] : (double) rs->acc.counts[a];
			const double *sum = rs->acc.sums + (int64) a * d;
			float	   *c = c0 + (int64) j * d;
			float	   *next = mb->next;

			inertia += rs->acc.inertia[a];
			if (m > 0.0)
			{
				double		total = W[j] + m;

				for (int t = 0; t < d; t++)
					next[t] = (float) (((double) c[t] * W[j] + sum[t]) / total);
				KmeansMetricFinishCenter(data->src->metric, next, c, data->mean, d);
				memcpy(c, next, sizeof(float) * d);
				W[j] = total;
			}
			empty |= W[j] == 0.0;
		}
		g->steps++;
		g->since_reassign += nb;
		if (empty || g->since_reassign >= 10 * (int64) k)
		{
			g->since_reassign = 0;
			Reassign(mb, rs, r, nb);
		}
		for (int64 i = 0; i < (int64) k * d; i++)
		{
			double		diff = (double) c0[i] - before[i];

			shift += diff * diff;
		}
		g->epoch_inertia += inertia;
		ms->n_iter[s] = mb->epoch;
		if (Converged(mb, s, inertia, nb, shift))
		{
			ms->converged[s] = true;
			if (KmeansTracing())
				ereport(NOTICE,
						(errmsg("kmeans: k=%d stopped in epoch %d after " INT64_FORMAT " steps: smoothed inertia %.6g, center shift %.6g",
								k, mb->epoch, g->steps, KmeansMetricInertia(data->src->metric, g->ewa * (double) nb),
								shift)));
		}
		pfree(before);
	}
done:
	MemoryContextSwitchTo(old);
	MemoryContextReset(mb->step_cxt);
}

/*
 * The window's rows dealt into batches by a fresh permutation; each batch one step.  Batch b
 * takes the rows at places b * batch .. (b + 1) * batch - 1 of the permutation, in source order:
 * a counting sort of the rows by their batch (each row's place inverted), not a sort per batch.
 */
static void
ProcessWindow(MiniBatch *mb)
{
	int64		m = mb->wn;
	int			d = mb->d;
	int64		nbatches = (m + mb->batch - 1) / mb->batch;
	int64	   *next;

	if (m == 0)
		return;
	for (int64 i = 0; i < m; i++)
		mb->perm[i] = (int32) i;
	for (int64 i = m - 1; i > 0; i--)
	{
		int64		j = (int64) km_rng_below(&mb->rng, (uint64) (i + 1));
		int32		t = mb->perm[i];

		mb->perm[i] = mb->perm[j];
		mb->perm[j] = t;
	}
	for (int64 i = 0; i < m; i++)
		mb->pos[mb->perm[i]] = (int32) i;
	next = palloc(sizeof(int64) * nbatches);
	for (int64 b = 0; b < nbatches; b++)
		next[b] = b * mb->batch;
	for (int64 row = 0; row < m; row++)
		mb->perm[next[mb->pos[row] / mb->batch]++] = (int32) row;
	pfree(next);
	for (int64 first = 0; first < m; first += mb->batch)
	{
		int64		nb = Min(mb->batch, m - first);
		int32	   *rows = mb->perm + first;

		if (!KmeansMiniBatchRunning(mb->ms))
			break;
		for (int64 i = 0; i < nb; i++)
		{
			memcpy(mb->bx + i * d, mb->wx + (int64) rows[i] * d, sizeof(float) * d);
			if (mb->bw)
				mb->bw[i] = mb->ww[rows[i]];
		}
		Step(mb, nb);
	}
	mb->wn = 0;
}

/*
 * A batch of the scan: its rows go into the window, which is dealt out each time it fills.
 * Once every segment has stopped, the scan is ended: the rest of the epoch is not read.
 */
static void
WindowBatch(KmeansBatch *b, void *arg)
{
	MiniBatch  *mb = arg;
	int64		done = 0;

	while (done < b->n && KmeansMiniBatchRunning(mb->ms))
	{
		int64		take = Min(b->n - done, mb->window - mb->wn);

		memcpy(mb->wx + mb->wn * mb->d, b->x + done * mb->d, sizeof(float) * take * mb->d);
		if (mb->ww)
			memcpy(mb->ww + mb->wn, b->w + done, sizeof(float) * take);
		mb->wn += take;
		done += take;
		if (mb->wn == mb->window)
			ProcessWindow(mb);
	}
	b->done = !KmeansMiniBatchRunning(mb->ms);
}

/* Whether any segment still runs. */
bool
KmeansMiniBatchRunning(const KmeansModelSet *ms)
{
	for (int s = 0; s < ms->nseg; s++)
		if (!ms->converged[s])
			return true;
	return false;
}

/*
 * Mini-batch k-means on every segment of the model set from its seeded centers, run `run` of
 * n_init (the batches' permutations and the reassignments draw from its seed).
 */
void
KmeansMiniBatch(KmeansData *data, const KmeansOptions *opt, KmeansModelSet *ms, int run)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kmeans minibatch",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	MiniBatch	mb;
	KmPrune		prune = data->be->prune;

	memset(&mb, 0, sizeof(mb));
	mb.data = data;
	mb.ms = ms;
	mb.d = ms->d;
	mb.batch = Min((int64) opt->batch_size, data->n);
	mb.window = WindowRows(data->n, mb.batch, mb.d, data->weights != NULL);
	mb.tol_abs = opt->tol * data->mean_var;
	mb.alpha = Min(1.0, 2.0 * (double) mb.batch / ((double) data->n + 1.0));
	/* a stream of its own, apart from the seeding's */
	km_rng_seed(&mb.rng, KmeansRunSeed(opt, run) ^ UINT64CONST(0x6D696E6962617463));
	mb.wsum = palloc0(sizeof(double) * ms->seg_off[ms->nseg]);
	mb.seg = palloc0(sizeof(MbSegment) * ms->nseg);
	mb.wx = MemoryContextAllocHuge(cxt, sizeof(float) * mb.window * mb.d);
	mb.ww = data->weights ? MemoryContextAllocHuge(cxt, sizeof(float) * mb.window) : NULL;
	mb.perm = MemoryContextAllocHuge(cxt, sizeof(int32) * mb.window);
	mb.pos = MemoryContextAllocHuge(cxt, sizeof(int32) * mb.window);
	mb.bx = MemoryContextAllocHuge(cxt, sizeof(float) * mb.batch * mb.d);
	mb.bw = data->weights ? MemoryContextAllocHuge(cxt, sizeof(float) * mb.batch) : NULL;
	mb.pick = MemoryContextAllocHuge(cxt, sizeof(int32) * mb.batch);
	mb.next = palloc(sizeof(float) * mb.d);
	mb.step_cxt = AllocSetContextCreate(cxt, "kmeans minibatch step", ALLOCSET_DEFAULT_SIZES);

	for (int s = 0; s < ms->nseg; s++)
	{
		ms->converged[s] = false;
		ms->n_iter[s] = 0;
	}
	/* a batch's rows have no state worth bounds: every step starts its labels afresh */
	data->be->prune = KM_PRUNE_OFF;
	for (mb.epoch = 1; mb.epoch <= opt->max_iter && KmeansMiniBatchRunning(ms); mb.epoch++)
	{
		double		start = KmeansStepStart();
		double		total = 0.0;
		int			running = 0;

		KmeansProgressSetPhase(KMEANS_PROGRESS_ITERATING, 0, mb.epoch);
		for (int s = 0; s < ms->nseg; s++)
		{
			mb.seg[s].epoch_inertia = 0.0;
			running += !ms->converged[s];
		}
		KmeansScan(data, WindowBatch, &mb);
		ProcessWindow(&mb);		/* the epoch's last, partial window */
		for (int s = 0; s < ms->nseg; s++)
		{
			double		inertia = KmeansMetricInertia(data->src->metric, mb.seg[s].epoch_inertia);

			total += inertia;
			if (KmeansTracing() && ms->n_iter[s] == mb.epoch)
				ereport(NOTICE,
						(errmsg("kmeans: k=%d epoch %d: " INT64_FORMAT " steps, batch inertia %.6g in all%s",
								ms->seg_off[s + 1] - ms->seg_off[s], mb.epoch, mb.seg[s].steps,
								inertia, ms->converged[s] ? ", stopped" : "")));
		}
		KmeansStepEnd(KMEANS_PHASE_ITERATE, start, mb.epoch, running, total);
		KmeansProgressInertia(total);
	}
	data->be->prune = prune;

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
