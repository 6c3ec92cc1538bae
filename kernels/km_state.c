/*
 * km_state.c -- each row's Lloyd state and k-means++ distance in host memory (km_state.h).
 *
 * The arithmetic is the backend's own (its steps); this file only keeps what outlives a block
 * and compares labels, so a pass gives the same totals, bit for bit, as the steps called on the
 * same blocks: the totals start at zero and each block's are added in the order the blocks
 * come, which is what adding them into a caller's zeroed accumulator does.
 *
 * Tested by test/engine/test_kernels.c (the CPU backend's passes and seeding against its steps
 * with the state kept by the test) and test/engine/test_cuda.c (the GPU backend with a device
 * too small for the state, against the same backend with room).
 */
#include "km_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

KmStatus
km_rows_within(const char *what, int64_t first, int64_t m, int64_t n, KmError *err)
{
	if (first < 0 || m < 0 || first + m > n)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "%s: rows %lld..%lld of %lld", what,
					   (long long) first, (long long) (first + m), (long long) n);
	return KM_OK;
}

static void
FreeLloyd(KmHostState *hs)
{
	free(hs->labels);
	free(hs->dist);
	hs->labels = NULL;
	hs->dist = NULL;
	hs->n = 0;
	hs->nseg = 0;
}

static void
FreePass(KmHostState *hs)
{
	free(hs->segs);
	free(hs->off);
	free(hs->changed);
	free(hs->acc.sums);
	free(hs->acc.counts);
	free(hs->acc.inertia);
	free(hs->acc.mass);
	hs->segs = NULL;
	hs->off = NULL;
	hs->changed = NULL;
	memset(&hs->acc, 0, sizeof(hs->acc));
	hs->open = 0;
}

static void
FreeSeed(KmHostState *hs)
{
	free(hs->mind);
	hs->mind = NULL;
	hs->seed_n = 0;
}

void
km_host_state_free(KmHostState *hs)
{
	FreeLloyd(hs);
	FreePass(hs);
	FreeSeed(hs);
	free(hs->blk_labels);
	free(hs->blk_dist);
	hs->blk_labels = NULL;
	hs->blk_dist = NULL;
	hs->blk_cap = 0;
}

KmStatus
km_host_pass_begin(KmHostState *hs, int64_t n, int nseg, const int *segs, int nrun,
				   const int *off, int d, int reset, int exact, int keep, KmError *err)
{
	int			k = off[nrun];

	FreePass(hs);
	if (n < 1 || nseg < 1 || nrun < 1 || nrun > nseg || k < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: n=%lld nseg=%d nrun=%d k=%d",
					   (long long) n, nseg, nrun, k);
	for (int r = 0; r < nrun; r++)
		if (segs[r] < 0 || segs[r] >= nseg)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: segment %d maps to %d of %d", r,
						   segs[r], nseg);
	/* a pass that keeps no state serves its block's labels as the state's: all segments */
	if (!keep && nrun != nseg)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin without state for %d of %d segments",
					   nrun, nseg);
	/* the seeding is over once the passes begin: its distances give their room back */
	FreeSeed(hs);
	if (!keep)
		FreeLloyd(hs);
	else if (hs->n != n || hs->nseg != nseg)
	{
		size_t		entries = (size_t) n * nseg;

		FreeLloyd(hs);
		hs->labels = malloc(sizeof(int32_t) * entries);
		hs->dist = malloc(sizeof(float) * entries);
		if (hs->labels == NULL || hs->dist == NULL)
		{
			FreeLloyd(hs);
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the labels of %lld rows for %d k",
						   (long long) n, nseg);
		}
		hs->n = n;
		hs->nseg = nseg;
		reset = 1;
	}
	hs->segs = malloc(sizeof(int) * nrun);
	hs->off = malloc(sizeof(int) * (nrun + 1));
	hs->changed = calloc(nrun, sizeof(int64_t));
	hs->acc.d = d;
	hs->acc.k = k;
	hs->acc.sums = calloc((size_t) k * d, sizeof(double));
	hs->acc.counts = calloc(k, sizeof(int64_t));
	hs->acc.inertia = calloc(k, sizeof(double));
	hs->acc.mass = calloc(k, sizeof(double));	/* filled by weighted blocks only */
	if (hs->segs == NULL || hs->off == NULL || hs->changed == NULL || hs->acc.sums == NULL ||
		hs->acc.counts == NULL || hs->acc.inertia == NULL || hs->acc.mass == NULL)
	{
		FreePass(hs);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the sums of %d centers of %d values",
					   k, d);
	}
	memcpy(hs->segs, segs, sizeof(int) * nrun);
	memcpy(hs->off, off, sizeof(int) * (nrun + 1));
	if (reset && keep)
		memset(hs->labels, 0xff, sizeof(int32_t) * (size_t) n * nseg);
	hs->fresh = reset || !keep;
	hs->nrun = nrun;
	hs->exact = exact;
	hs->keep = keep;
	hs->pass_n = n;
	hs->blk_first = 0;
	hs->blk_rows = 0;
	hs->open = 1;
	return KM_OK;
}

/* Room for a block's labels and distances. */
static KmStatus
BlockBuffers(KmHostState *hs, int64_t entries, KmError *err)
{
	if (entries <= hs->blk_cap)
		return KM_OK;
	free(hs->blk_labels);
	free(hs->blk_dist);
	hs->blk_labels = malloc(sizeof(int32_t) * (size_t) entries);
	hs->blk_dist = malloc(sizeof(float) * (size_t) entries);
	hs->blk_cap = hs->blk_labels && hs->blk_dist ? entries : 0;
	if (hs->blk_cap == 0)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the labels of a block of %lld entries",
					   (long long) entries);
	return KM_OK;
}

KmStatus
km_host_pass_prepare(KmHostState *hs, int64_t first, int64_t rows, KmError *err)
{
	KmStatus	st;

	if (!hs->open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_block outside a pass");
	if ((st = km_rows_within("pass_block", first, rows, hs->pass_n, err)) != KM_OK)
		return st;
	if ((st = BlockBuffers(hs, rows * hs->nrun, err)) != KM_OK)
		return st;
	hs->blk_first = first;
	hs->blk_rows = rows;
	return KM_OK;
}

void
km_host_pass_record(KmHostState *hs, int64_t first, int64_t rows, const int32_t *labels,
					const float *dist, int64_t *changed)
{
	/* local copies: the stores into the state could otherwise alias its fields */
	const int	nrun = hs->nrun;
	const int	nseg = hs->nseg;
	const int  *restrict off = hs->off;
	const int  *restrict segs = hs->segs;
	int32_t    *restrict state_labels;
	float	   *restrict state_dist;

	if (!hs->keep)
		return;					/* nothing kept, no change counted */
	state_labels = hs->labels + first * nseg;
	state_dist = hs->dist + first * nseg;
	for (int64_t i = 0; i < rows; i++)
		for (int r = 0; r < nrun; r++)
		{
			int32_t		local = labels[i * nrun + r] - off[r];
			int64_t		at = i * nseg + segs[r];

			changed[r] += state_labels[at] != local;
			state_labels[at] = local;
			state_dist[at] = dist[i * nrun + r];
		}
}

KmStatus
km_host_pass_block(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first, int64_t rows,
				   KmError *err)
{
	KmStatus	st;

	if ((st = km_host_pass_prepare(hs, first, rows, err)) != KM_OK || rows == 0)
		return st;
	if ((st = be->steps->assign_accumulate(be, blk, hs->blk_labels, hs->blk_dist, hs->exact,
										   &hs->acc, err)) != KM_OK)
		return st;
	km_host_pass_record(hs, first, rows, hs->blk_labels, hs->blk_dist, hs->changed);
	return KM_OK;
}

KmStatus
km_host_pass_end(KmHostState *hs, KmAccum *acc, int64_t *changed, KmError *err)
{
	int			k = hs->acc.k;
	int			d = hs->acc.d;

	if (!hs->open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_end outside a pass");
	if (acc->d != d || acc->k != k)
	{
		FreePass(hs);
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d x %d, centers %d x %d",
					   acc->k, acc->d, k, d);
	}
	for (int64_t q = 0; q < (int64_t) k * d; q++)
		acc->sums[q] += hs->acc.sums[q];
	for (int j = 0; j < k; j++)
	{
		acc->counts[j] += hs->acc.counts[j];
		acc->inertia[j] += hs->acc.inertia[j];
		if (acc->mass != NULL)
			acc->mass[j] += hs->acc.mass[j];
	}
	memcpy(changed, hs->changed, sizeof(int64_t) * hs->nrun);
	FreePass(hs);
	return KM_OK;
}

KmStatus
km_host_state_fetch(KmHostState *hs, int64_t first, int64_t m, int32_t *labels, float *dist,
					KmError *err)
{
	size_t		at = (size_t) first * hs->nseg;
	size_t		entries = (size_t) m * hs->nseg;
	KmStatus	st;

	if (hs->open && !hs->keep)
	{
		/* the open pass keeps nothing: its last block's labels, made segment-local */
		const int	nrun = hs->nrun;
		const int32_t *bl;
		const float *bd;

		if ((st = km_rows_within("state_fetch", first - hs->blk_first, m, hs->blk_rows, err)) != KM_OK)
			return st;
		bl = hs->blk_labels + (first - hs->blk_first) * nrun;
		bd = hs->blk_dist + (first - hs->blk_first) * nrun;
		for (int64_t i = 0; i < m; i++)
			for (int r = 0; r < nrun; r++)
			{
				labels[i * nrun + hs->segs[r]] = bl[i * nrun + r] - hs->off[r];
				dist[i * nrun + hs->segs[r]] = bd[i * nrun + r];
			}
		return KM_OK;
	}
	if (hs->n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "state_fetch before any pass that keeps the state");
	if ((st = km_rows_within("state_fetch", first, m, hs->n, err)) != KM_OK)
		return st;
	memcpy(labels, hs->labels + at, sizeof(int32_t) * entries);
	memcpy(dist, hs->dist + at, sizeof(float) * entries);
	return KM_OK;
}

KmStatus
km_host_seed_begin(KmHostState *hs, int64_t n, KmError *err)
{
	if (n < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "seed_begin: n=%lld", (long long) n);
	/* a new seeding starts a new fit, whose first pass starts its labels afresh anyway */
	FreePass(hs);
	FreeLloyd(hs);
	if (hs->seed_n != n)
	{
		FreeSeed(hs);
		if ((hs->mind = malloc(sizeof(float) * (size_t) n)) == NULL)
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate the k-means++ distances of %lld rows",
						   (long long) n);
		hs->seed_n = n;
	}
	for (int64_t i = 0; i < n; i++)
		hs->mind[i] = INFINITY;
	return KM_OK;
}

/* Checks that rows first .. first + m - 1 are rows of the seeding. */
static KmStatus
SeedRows(const KmHostState *hs, int64_t first, int64_t m, KmError *err)
{
	if (hs->seed_n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++ step before seed_begin");
	return km_rows_within("k-means++", first, m, hs->seed_n, err);
}

KmStatus
km_host_seed_update(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first, int64_t rows,
					const float *c, double *sub_sums, KmError *err)
{
	KmStatus	st;

	if ((st = SeedRows(hs, first, rows, err)) != KM_OK || rows == 0)
		return st;
	return be->steps->mindist_update(be, blk, c, hs->mind + first, sub_sums, err);
}

KmStatus
km_host_seed_potentials(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first,
						int64_t rows, const float *cand, int t, double *pot, KmError *err)
{
	KmStatus	st;

	if ((st = SeedRows(hs, first, rows, err)) != KM_OK || rows == 0 || t == 0)
		return st;
	return be->steps->potentials(be, blk, cand, t, hs->mind + first, pot, err);
}

KmStatus
km_host_seed_fetch(KmHostState *hs, int64_t first, int64_t m, float *out, KmError *err)
{
	KmStatus	st;

	if ((st = SeedRows(hs, first, m, err)) != KM_OK || m == 0)
		return st;
	memcpy(out, hs->mind + first, sizeof(float) * (size_t) m);
	return KM_OK;
}
