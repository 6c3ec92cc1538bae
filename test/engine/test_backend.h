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

		MUST(be->ops->block_create(be, x + b * bsize * d, m, NULL, &blocks[b], ERR));
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

#endif							/* TEST_BACKEND_H */
