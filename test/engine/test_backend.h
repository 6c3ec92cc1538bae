/*
 * test_backend.h -- what the tests of a backend's operations share: MUST for calls that must
 * succeed, and accumulators to compare (test_cuda.c, test_state.c).  Include after
 * km_kernels.h and test_util.h; everything here is static.
 */
#ifndef TEST_BACKEND_H
#define TEST_BACKEND_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs a backend call that must succeed; on failure prints it with its message and exits. */
#define MUST(call) \
	do { \
		KmError		e_ = {0}; \
		KmStatus	s_ = (call); \
		if (s_ != KM_OK) \
		{ \
			printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, e_.message); \
			exit(1); \
		} \
	} while (0)

/* An error slot for MUST's calls. */
#define ERR (&e_)

/* Zeroed accumulators for k centers of dimension d. */
static inline void
AccumAlloc(KmAccum *a, int k, int d)
{
	a->d = d;
	a->k = k;
	a->sums = calloc((size_t) k * d, sizeof(double));
	a->counts = calloc(k, sizeof(int64_t));
	a->inertia = calloc(k, sizeof(double));
	a->mass = NULL;				/* unweighted rows */
}

static inline void
AccumFree(KmAccum *a)
{
	free(a->sums);
	free(a->counts);
	free(a->inertia);
}

/* True when two accumulators hold the same bits. */
static inline int
AccumSame(const KmAccum *a, const KmAccum *b)
{
	return a->k == b->k && a->d == b->d &&
		memcmp(a->sums, b->sums, sizeof(double) * a->k * a->d) == 0 &&
		memcmp(a->counts, b->counts, sizeof(int64_t) * a->k) == 0 &&
		memcmp(a->inertia, b->inertia, sizeof(double) * a->k) == 0;
}

/*
 * The state a Lloyd pass must leave, kept by the test as km_state.c keeps it: each row's
 * segment-local label and distance per segment (n * nseg, labels -1 before the first pass),
 * room for one block's labels, and room for what a backend's state_fetch returns.
 */
typedef struct RefState
{
	int64_t		n;
	int			nseg;
	int32_t    *labels;
	float	   *dist;
	int32_t    *blk_labels;		/* bsize * nseg */
	float	   *blk_dist;
	int32_t    *got_labels;		/* n * nseg */
	float	   *got_dist;
} RefState;

static inline void
RefStateAlloc(RefState *rs, int64_t n, int nseg, int64_t bsize)
{
	rs->n = n;
	rs->nseg = nseg;
	rs->labels = malloc(sizeof(int32_t) * n * nseg);
	rs->dist = calloc((size_t) n * nseg, sizeof(float));
	rs->blk_labels = malloc(sizeof(int32_t) * bsize * nseg);
	rs->blk_dist = malloc(sizeof(float) * bsize * nseg);
	rs->got_labels = malloc(sizeof(int32_t) * n * nseg);
	rs->got_dist = malloc(sizeof(float) * n * nseg);
	memset(rs->labels, 0xff, sizeof(int32_t) * n * nseg);
}

static inline void
RefStateFree(RefState *rs)
{
	free(rs->labels);
	free(rs->dist);
	free(rs->blk_labels);
	free(rs->blk_dist);
	free(rs->got_labels);
	free(rs->got_dist);
}

/*
 * One pass as the reference makes it: assign_accumulate on each block in turn (block b holds
 * rows b * bsize ..), the nrun installed segments' labels (offsets off) compared with the kept
 * state, the changes counted per installed segment (state segment segs[r]) and the state
 * updated.  A backend's pass over the same blocks must give the same bits.
 */
static inline void
ReferencePass(KmBackend *be, KmBlock **blocks, int64_t nblk, int64_t bsize, int nrun,
			  const int *segs, const int *off, int exact, RefState *rs, KmAccum *acc,
			  int64_t *changed)
{
	for (int r = 0; r < nrun; r++)
		changed[r] = 0;
	for (int64_t b = 0; b < nblk; b++)
	{
		int64_t		m = rs->n - b * bsize < bsize ? rs->n - b * bsize : bsize;

		MUST(be->steps->assign_accumulate(be, blocks[b], rs->blk_labels, rs->blk_dist, exact, acc,
										  ERR));
		for (int64_t i = 0; i < m; i++)
			for (int r = 0; r < nrun; r++)
			{
				int64_t		at = (b * bsize + i) * rs->nseg + segs[r];
				int32_t		l = rs->blk_labels[i * nrun + r] - off[r];

				changed[r] += rs->labels[at] != l;
				rs->labels[at] = l;
				rs->dist[at] = rs->blk_dist[i * nrun + r];
			}
	}
}

/* Blocks of bsize rows (the last one shorter) over the n rows of x, on be. */
static inline KmBlock **
MakeBlocks(KmBackend *be, float *x, int64_t n, int d, int64_t bsize)
{
	int64_t		nblk = (n + bsize - 1) / bsize;
	KmBlock   **blocks = calloc(nblk, sizeof(KmBlock *));

	for (int64_t b = 0; b < nblk; b++)
	{
		int64_t		m = n - b * bsize < bsize ? n - b * bsize : bsize;

		MUST(be->ops->block_create(be, x + b * bsize * d, NULL, m, NULL, &blocks[b], ERR));
	}
	return blocks;
}

static inline void
FreeBlocks(KmBackend *be, KmBlock **blocks, int64_t nblk)
{
	for (int64_t b = 0; b < nblk; b++)
		be->ops->block_destroy(be, blocks[b]);
	free(blocks);
}

/*
 * Misuse of the state operations is refused with a message, and the backend stays usable, on
 * a fresh backend of dimension 2: four rows (0,0), (1,1), (5,5), (6,6), centers (0,0), (5,5).
 */
static inline void
TestStateMisuse(const char *name, KmBackend *be)
{
	KmBlock    *blk;
	KmError		err = {0};
	float		x[8] = {0, 0, 1, 1, 5, 5, 6, 6},
				c[4] = {0, 0, 5, 5},
				m[4],
				dd[4];
	int			seg_off[2] = {0, 2};
	int			segs[1] = {0},
				bad[1] = {3};
	int32_t		l[4];
	double		sums[1];
	int64_t		changed[1];
	KmAccum		a;
	KmStatus	st;

#define REFUSED(call, text) \
	do { \
		st = (call); \
		CHECK(st == KM_ERR_ARGUMENT && strstr(err.message, (text)) != NULL, \
			  "%s: %s: status %d, \"%s\"", name, #call, (int) st, err.message); \
	} while (0)

	AccumAlloc(&a, 2, 2);
	MUST(be->ops->block_create(be, x, NULL, 4, NULL, &blk, ERR));
	REFUSED(be->ops->pass_begin(be, 4, 1, segs, 1, 0, 1, &err), "set_centers");
	MUST(be->ops->set_centers(be, c, 2, 1, seg_off, ERR));
	REFUSED(be->ops->pass_block(be, blk, 0, &err), "outside a pass");
	REFUSED(be->ops->pass_begin(be, 4, 1, bad, 1, 0, 1, &err), "maps to 3");
	MUST(be->ops->pass_begin(be, 4, 1, segs, 1, 0, 1, ERR));
	REFUSED(be->ops->pass_block(be, blk, 1, &err), "rows 1..5 of 4");
	MUST(be->ops->pass_block(be, blk, 0, ERR));
	MUST(be->ops->pass_end(be, &a, changed, ERR));
	/* by hand: rows (0,0), (1,1) -> center 0, (5,5), (6,6) -> center 1 */
	CHECK(a.counts[0] == 2 && a.counts[1] == 2 && a.sums[0] == 1.0 && a.sums[2] == 11.0 &&
		  a.inertia[0] == 2.0 && a.inertia[1] == 2.0 && changed[0] == 4,
		  "%s by hand: counts %lld %lld, sums %g %g, inertia %g %g, changed %lld", name,
		  (long long) a.counts[0], (long long) a.counts[1], a.sums[0], a.sums[2], a.inertia[0],
		  a.inertia[1], (long long) changed[0]);
	REFUSED(be->ops->pass_end(be, &a, changed, &err), "outside a pass");
	REFUSED(be->ops->state_fetch(be, 2, 3, l, dd, &err), "rows 2..5 of 4");
	MUST(be->ops->state_fetch(be, 0, 4, l, dd, ERR));
	CHECK(l[0] == 0 && l[1] == 0 && l[2] == 1 && l[3] == 1 && dd[1] == 2.0f,
		  "%s: the state: labels %d %d %d %d, distance %g", name, l[0], l[1], l[2], l[3], dd[1]);

	REFUSED(be->ops->seed_update(be, blk, 0, c, sums, &err), "before seed_begin");
	MUST(be->ops->seed_begin(be, 4, ERR));
	/* a seeding starts a new fit: the Lloyd state gave its room back */
	REFUSED(be->ops->state_fetch(be, 0, 4, l, dd, &err), "before any pass");
	REFUSED(be->ops->seed_fetch(be, 2, 3, m, &err), "rows 2..5 of 4");
	/* by hand: distances to (0, 0) are 0, 2, 50, 72 */
	MUST(be->ops->seed_update(be, blk, 0, c, sums, ERR));
	MUST(be->ops->seed_fetch(be, 0, 4, m, ERR));
	CHECK(m[0] == 0 && m[1] == 2 && m[2] == 50 && m[3] == 72 && sums[0] == 124.0,
		  "%s: k-means++ by hand: %g %g %g %g, sum %g", name, m[0], m[1], m[2], m[3], sums[0]);
#undef REFUSED
	be->ops->block_destroy(be, blk);
	AccumFree(&a);
}

#endif							/* TEST_BACKEND_H */
