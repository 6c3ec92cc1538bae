/*
 * test_bounds.c -- the CPU backend's pruned passes (km_bounds.c) against its unpruned ones,
 * bit for bit: every pass's sums, counts, inertia, changed counts, and each row's label and
 * distance, over whole fits; and the two kernels the pruned passes lean on (the second least
 * distance, the accumulation of several segments) against plain loops.
 *
 * Each case runs the same sequence of passes on three backends over the same rows: unpruned on
 * one thread, pruned on one thread and pruned on three (blocks of another size, so that rows
 * stream in a different split).  The centers between passes are the unpruned backend's means,
 * or, for the near-tie data, centers nudged by a few units in the last place each pass, so
 * that labels flip on rounding alone.  Cases cover uniform, clustered, duplicate-heavy and
 * near-tie rows, d from 1 to 1,024 (above KM_SMALL_D_MAX the kernel prunes nothing and must
 * still agree), k from 1 to 4,096, and elbow-like sets of segments where segments drop out
 * as they converge.
 *
 * The planted faults (KM_PRUNE_FAULT_MARGIN: bounds without their rounding margins;
 * KM_PRUNE_FAULT_MOVE: bounds not loosened by the centers' movement) run the same cases, and
 * each must be caught: some pass must differ.
 */
#include "km_bounds.h"
#include "km_kernels.h"
#include "test_util.h"
#include "test_backend.h"

#include <math.h>

enum Kind
{
	UNIFORM,
	CLUSTERED,
	DUPLICATES,
	NEAR_TIE
};

static const char *kind_name[] = {"uniform", "clustered", "duplicates", "near-tie"};

/* Rows of one kind: n x d. */
static void
MakeRows(enum Kind kind, float *x, int64_t n, int d, int k)
{
	int			nc = k < 2 ? 2 : k;
	float	   *c = Alloc(sizeof(float) * (size_t) nc * d);

	switch (kind)
	{
		case UNIFORM:
			RandFill(x, (size_t) n * d, 0.0f);
			break;
		case CLUSTERED:
			RandFill(c, (size_t) nc * d, 0.0f);
			for (int64_t i = 0; i < n; i++)
			{
				const float *ci = c + (size_t) RandBelow(nc) * d;

				for (int t = 0; t < d; t++)
					x[i * d + t] = 8.0f * ci[t] + 0.3f * RandUnit();
			}
			break;
		case DUPLICATES:
			RandDuplicateCenters(c, nc, d);
			RandRowsOfCenters(x, n, c, nc > 6 ? nc / 3 : 2, d);
			break;
		case NEAR_TIE:
			/* small integers: many rows at exactly equal distances from centers placed between */
			for (size_t q = 0; q < (size_t) n * d; q++)
				x[q] = (float) (RandBelow(5) - 2);
			break;
	}
	free(c);
}

/* k starting centers: rows picked at random (offset a little for the near-tie kind). */
static void
StartCenters(enum Kind kind, const float *x, int64_t n, int d, int k, float *c)
{
	for (int j = 0; j < k; j++)
	{
		const float *row = x + (size_t) RandBelow((int) n) * d;

		for (int t = 0; t < d; t++)
			c[(size_t) j * d + t] = kind == NEAR_TIE ? row[t] + 0.5f * (RandBelow(3) - 1) : row[t];
	}
}

typedef struct Runner
{
	KmBackend  *be;
	KmBlock   **blocks;
	int64_t		nblk;
	int64_t		bsize;
	KmAccum		acc;
	int64_t    *changed;
	int32_t    *labels;
	float	   *dist;
} Runner;

static void
RunnerMake(Runner *rn, int threads, KmPrune prune, float *x, int64_t n, int d, int k,
		   int nseg, int64_t bsize)
{
	MUST(km_cpu_backend_create(threads, d, &rn->be, ERR));
	rn->be->prune = prune;
	rn->bsize = bsize;
	rn->nblk = (n + bsize - 1) / bsize;
	rn->blocks = MakeBlocks(rn->be, x, n, d, bsize);
	AccumAlloc(&rn->acc, k, d);
	rn->changed = calloc(nseg, sizeof(int64_t));
	rn->labels = malloc(sizeof(int32_t) * n * nseg);
	rn->dist = malloc(sizeof(float) * n * nseg);
}

static void
RunnerFree(Runner *rn)
{
	FreeBlocks(rn->be, rn->blocks, rn->nblk);
	rn->be->ops->destroy(rn->be);
	AccumFree(&rn->acc);
	free(rn->changed);
	free(rn->labels);
	free(rn->dist);
}

/* One pass of rn over its blocks with the installed centers (k of them, in nrun segments). */
static void
RunnerPass(Runner *rn, int64_t n, int nseg, const int *segs, int nrun, int k, int d, int reset)
{
	memset(rn->acc.sums, 0, sizeof(double) * k * d);
	memset(rn->acc.counts, 0, sizeof(int64_t) * k);
	memset(rn->acc.inertia, 0, sizeof(double) * k);
	rn->acc.k = k;
	MUST(rn->be->ops->pass_begin(rn->be, n, nseg, segs, reset, 0, 1, ERR));
	for (int64_t b = 0; b < rn->nblk; b++)
		MUST(rn->be->ops->pass_block(rn->be, rn->blocks[b], b * rn->bsize, ERR));
	MUST(rn->be->ops->pass_end(rn->be, &rn->acc, rn->changed, ERR));
	(void) nrun;
	MUST(rn->be->ops->state_fetch(rn->be, 0, n, rn->labels, rn->dist, ERR));
}

/* True when two runners' last passes left the same bits. */
static int
SameBits(const Runner *a, const Runner *b, int64_t n, int nseg, int nrun, int k, int d)
{
	return memcmp(a->acc.sums, b->acc.sums, sizeof(double) * k * d) == 0 &&
		memcmp(a->acc.counts, b->acc.counts, sizeof(int64_t) * k) == 0 &&
		memcmp(a->acc.inertia, b->acc.inertia, sizeof(double) * k) == 0 &&
		memcmp(a->changed, b->changed, sizeof(int64_t) * nrun) == 0 &&
		memcmp(a->labels, b->labels, sizeof(int32_t) * n * nseg) == 0 &&
		memcmp(a->dist, b->dist, sizeof(float) * n * nseg) == 0;
}

typedef struct Outcome
{
	int			passes_differing;	/* passes where a pruned run left other bits */
	int64_t		scanned;		/* pruned, one thread: pairs scanned in full after pass 1 */
	int64_t		pairs;
} Outcome;

/*
 * A fit of nseg segments (segment s has ks[s] centers) over n x d rows of a kind, for passes
 * passes; segments drop out of the installed set once no label changed in them, as the engine
 * drops converged ones.  With fault, the pruned runs plant it.
 */
static Outcome
RunCase(enum Kind kind, int64_t n, int d, int nseg, const int *ks, int passes, KmPrune mode)
{
	int			seg_off[65];
	float	   *x,
			   *c,
			   *run_c;
	int			ktot;
	int			segs[64],
				off[65];
	unsigned char done[64] = {0};
	Runner		ref,
				one,
				three;
	Outcome		out = {0};
	uint64_t	saved_rng = rng_state;

	seg_off[0] = 0;
	for (int s = 0; s < nseg; s++)
		seg_off[s + 1] = seg_off[s] + ks[s];
	ktot = seg_off[nseg];
	x = Alloc(sizeof(float) * (size_t) n * d);
	c = Alloc(sizeof(float) * (size_t) ktot * d);
	run_c = Alloc(sizeof(float) * (size_t) ktot * d);
	MakeRows(kind, x, n, d, ks[nseg - 1]);
	for (int s = 0; s < nseg; s++)
		StartCenters(kind, x, n, d, ks[s], c + (size_t) seg_off[s] * d);

	RunnerMake(&ref, 1, KM_PRUNE_OFF, x, n, d, ktot, nseg, 4 * KM_SUB_ROWS);
	RunnerMake(&one, 1, mode, x, n, d, ktot, nseg, 4 * KM_SUB_ROWS);
	RunnerMake(&three, 3, mode, x, n, d, ktot, nseg, 2 * KM_SUB_ROWS);

	for (int p = 0; p < passes; p++)
	{
		int			nrun = 0,
					k;

		/* the running segments' centers, installed on every runner */
		off[0] = 0;
		for (int s = 0; s < nseg; s++)
			if (!done[s] || p == passes - 1)
			{
				segs[nrun] = s;
				off[nrun + 1] = off[nrun] + ks[s];
				memcpy(run_c + (size_t) off[nrun] * d, c + (size_t) seg_off[s] * d,
					   sizeof(float) * ks[s] * d);
				nrun++;
			}
		if (nrun == 0)
		{
			/* every segment settled: on to the last pass, which installs them all */
			p = passes - 2;
			continue;
		}
		k = off[nrun];
		MUST(ref.be->ops->set_centers(ref.be, run_c, d, nrun, off, ERR));
		MUST(one.be->ops->set_centers(one.be, run_c, d, nrun, off, ERR));
		MUST(three.be->ops->set_centers(three.be, run_c, d, nrun, off, ERR));
		RunnerPass(&ref, n, nseg, segs, nrun, k, d, p == 0);
		RunnerPass(&one, n, nseg, segs, nrun, k, d, p == 0);
		RunnerPass(&three, n, nseg, segs, nrun, k, d, p == 0);
		if (!SameBits(&ref, &one, n, nseg, nrun, k, d) ||
			!SameBits(&ref, &three, n, nseg, nrun, k, d))
			out.passes_differing++;
		if (p > 0 && one.be->pass_scanned != NULL)
			for (int r = 0; r < nrun; r++)
			{
				out.scanned += one.be->pass_scanned[r];
				out.pairs += one.be->pass_rows;
			}

		/* the next centers, from the reference alone so that every runner gets the same */
		for (int r = 0; r < nrun; r++)
		{
			int			s = segs[r];

			if (ref.changed[r] == 0)
				done[s] = 1;
			for (int j = 0; j < ks[s]; j++)
			{
				float	   *cj = c + (size_t) (seg_off[s] + j) * d;
				int			g = off[r] + j;

				for (int t = 0; t < d; t++)
				{
					if (kind == NEAR_TIE)
					{
						/* a nudge of up to two units in the last place, either way */
						int			steps = RandBelow(5) - 2;

						for (; steps > 0; steps--)
							cj[t] = nextafterf(cj[t], INFINITY);
						for (; steps < 0; steps++)
							cj[t] = nextafterf(cj[t], -INFINITY);
					}
					else if (ref.acc.counts[g] > 0)
						cj[t] = (float) (ref.acc.sums[(size_t) g * d + t] / ref.acc.counts[g]);
				}
			}
		}
	}
	RunnerFree(&ref);
	RunnerFree(&one);
	RunnerFree(&three);
	free(x);
	free(c);
	free(run_c);
	rng_state = saved_rng;
	return out;
}

/* KM_TEST_QUICK (the valgrind run): only the cases of at most this many (row, center) pairs */
static int64_t max_pairs = INT64_MAX;

/* The cases, each run in mode; returns the number of cases where some pass differed. */
static int
RunSuite(KmPrune mode, int report)
{
	static const struct
	{
		enum Kind	kind;
		int64_t		n;
		int			d;
		int			k;
		int			passes;
	}			cases[] = {
		{UNIFORM, 5000, 1, 1, 6}, {UNIFORM, 5000, 1, 7, 12}, {UNIFORM, 9000, 2, 40, 15},
		{UNIFORM, 9000, 3, 200, 10}, {UNIFORM, 6000, 4, 200, 10}, {UNIFORM, 5000, 7, 33, 10},
		{UNIFORM, 5000, 16, 64, 8}, {UNIFORM, 3000, 17, 20, 4}, {UNIFORM, 2100, 64, 40, 4},
		{UNIFORM, 1100, 1024, 9, 3}, {UNIFORM, 9000, 2, 4096, 4},
		{CLUSTERED, 9000, 2, 10, 15}, {CLUSTERED, 9000, 4, 200, 12}, {CLUSTERED, 6000, 10, 49, 12},
		{CLUSTERED, 5000, 16, 300, 8}, {CLUSTERED, 3000, 128, 30, 4},
		{DUPLICATES, 6000, 1, 9, 10}, {DUPLICATES, 6000, 3, 60, 10}, {DUPLICATES, 6000, 8, 30, 10},
		{NEAR_TIE, 6000, 1, 5, 20}, {NEAR_TIE, 6000, 2, 9, 20}, {NEAR_TIE, 6000, 3, 30, 20},
		{NEAR_TIE, 4000, 6, 12, 20}, {NEAR_TIE, 3000, 16, 40, 12},
		{NEAR_TIE, 4000, 2, 4, 30}, {NEAR_TIE, 4000, 4, 8, 30}, {NEAR_TIE, 4000, 8, 6, 30},
		{NEAR_TIE, 4000, 12, 16, 30}, {NEAR_TIE, 4000, 3, 3, 30}, {NEAR_TIE, 4000, 5, 20, 30},
	};
	int			caught = 0;

	for (size_t q = 0; q < sizeof(cases) / sizeof(cases[0]); q++)
	{
		int			k = cases[q].k;
		Outcome		o;

		if (cases[q].n * k > max_pairs)
			continue;
		rng_state = 1000 + q;
		o = RunCase(cases[q].kind, cases[q].n, cases[q].d, 1, &k, cases[q].passes, mode);
		caught += o.passes_differing > 0;
		if (report)
		{
			CHECK(o.passes_differing == 0, "%s n=%lld d=%d k=%d: %d passes differ",
				  kind_name[cases[q].kind], (long long) cases[q].n, cases[q].d, k,
				  o.passes_differing);
			printf("%-10s n=%-5lld d=%-4d k=%-4d  full scans after pass 1: %5.1f%%\n",
				   kind_name[cases[q].kind], (long long) cases[q].n, cases[q].d, k,
				   o.pairs ? 100.0 * o.scanned / o.pairs : 0.0);
		}
	}

	/*
	 * Elbow-like sets of segments, which drop out as they settle: k = 32..43 and 32..78 keep
	 * bounds (every k >= KM_BOUNDS_MIN_K); k = 3..49 does not, and must agree all the same.
	 */
	for (int e = 0; e < 5; e++)
	{
		int			ks[47],
					nseg = e == 4 || e % 2 == 1 ? 47 : 12;
		int			kmin = e == 4 ? 3 : 32;
		enum Kind	kind = e < 2 || e == 4 ? CLUSTERED : NEAR_TIE;
		Outcome		o;

		if (max_pairs < INT64_MAX && nseg > 12)
			continue;
		for (int s = 0; s < nseg; s++)
			ks[s] = kmin + s;
		rng_state = 77 + e;
		o = RunCase(kind, 5000, nseg == 12 ? 3 : 10, nseg, ks, 12, mode);
		caught += o.passes_differing > 0;
		if (report)
		{
			CHECK(o.passes_differing == 0, "%s elbow k = %d..%d: %d passes differ",
				  kind_name[kind], kmin, kmin + nseg - 1, o.passes_differing);
			CHECK((o.pairs > 0) == (kmin >= KM_BOUNDS_MIN_K), "%s elbow k = %d..%d: %s bounds",
				  kind_name[kind], kmin, kmin + nseg - 1, o.pairs > 0 ? "kept" : "no");
			printf("%-10s elbow k = %d..%d  full scans after pass 1: %5.1f%%\n", kind_name[kind],
				   kmin, kmin + nseg - 1, o.pairs ? 100.0 * o.scanned / o.pairs : 0.0);
		}
	}
	return caught;
}

/*
 * km_argmin_small2 against km_argmin_small (the same labels and distances, bit for bit) and a
 * plain loop for the second least distance, on centers with exact duplicates (ties).
 */
static void
TestSecond(void)
{
	for (int d = 1; d <= 17; d += 2)
		for (int k = 1; k <= 40; k += 13)
		{
			int64_t		n = 300;
			float	   *x = Alloc(sizeof(float) * n * d);
			float	   *c = Alloc(sizeof(float) * k * d);
			int32_t    *l1 = Alloc(sizeof(int32_t) * n),
					   *l2 = Alloc(sizeof(int32_t) * n);
			float	   *b1 = Alloc(sizeof(float) * n),
					   *b2 = Alloc(sizeof(float) * n),
					   *sec = Alloc(sizeof(float) * n);
			int			off[2] = {0, k};
			int			bad = 0;

			rng_state = 31 * d + k;
			RandDuplicateCenters(c, k, d);
			RandFill(x, (size_t) n * d, 0.0f);
			km_argmin_small(x, n, d, c, NULL, 1, off, l1, b1);
			km_argmin_small2(x, n, d, c, 1, off, l2, b2, sec);
			for (int64_t i = 0; i < n; i++)
			{
				float		want = INFINITY;

				for (int j = 0; j < k; j++)
					if (j != l1[i])
					{
						float		v = km_dist2_seq(x + i * d, c + (size_t) j * d, d);

						want = v < want ? v : want;
					}
				bad += l1[i] != l2[i] || memcmp(&b1[i], &b2[i], sizeof(float)) != 0 ||
					memcmp(&sec[i], &want, sizeof(float)) != 0;
			}
			CHECK(bad == 0, "km_argmin_small2 d=%d k=%d: %d rows differ", d, k, bad);
			free(x);
			free(c);
			free(l1);
			free(l2);
			free(b1);
			free(b2);
			free(sec);
		}
}

/*
 * The accumulation of a pass's labels in several segments at once (an elbow's), on one thread
 * and on two, against a plain loop in row order: the same float64 sums, counts and inertia bit
 * for bit, for the d that have loops of their own (km_cpu.c, SumRows) and one that has not.
 */
static void
TestAccumulateSegments(void)
{
	static const int ds[] = {2, 3, 4, 5, 10, 16};

	for (size_t q = 0; q < sizeof(ds) / sizeof(ds[0]); q++)
		for (int threads = 1; threads <= 2; threads++)
		{
			int			d = ds[q],
						nseg = 3,
						off[4] = {0, 4, 11, 40},
						k = off[nseg];
			int64_t		n = 5000;
			float	   *x = Alloc(sizeof(float) * n * d);
			float	   *dist = Alloc(sizeof(float) * n * nseg);
			int32_t    *lab = Alloc(sizeof(int32_t) * n * nseg);
			double	   *sums = calloc((size_t) k * d, sizeof(double));
			double	   *inertia = calloc(k, sizeof(double));
			int64_t    *counts = calloc(k, sizeof(int64_t));
			KmBackend  *be;
			KmBlock    *blk;
			KmAccum		acc;

			rng_state = 500 + q;
			RandFill(x, (size_t) n * d, 3.0f);
			RandFill(dist, (size_t) n * nseg, 1.5f);
			for (int64_t i = 0; i < n; i++)
				for (int s = 0; s < nseg; s++)
				{
					int32_t		j = off[s] + RandBelow(off[s + 1] - off[s]);

					lab[i * nseg + s] = j;
					counts[j]++;
					inertia[j] += dist[i * nseg + s];
					for (int t = 0; t < d; t++)
						sums[(size_t) j * d + t] += (double) x[i * d + t];
				}
			MUST(km_cpu_backend_create(threads, d, &be, ERR));
			MUST(be->ops->block_create(be, x, NULL, n, NULL, &blk, ERR));
			MUST(be->ops->set_centers(be, x, d, nseg, off, ERR));
			AccumAlloc(&acc, k, d);
			MUST(be->steps->accumulate(be, blk, nseg, lab, dist, &acc, ERR));
			CHECK(memcmp(acc.sums, sums, sizeof(double) * k * d) == 0 &&
				  memcmp(acc.counts, counts, sizeof(int64_t) * k) == 0 &&
				  memcmp(acc.inertia, inertia, sizeof(double) * k) == 0,
				  "accumulate of %d segments, d=%d, %d threads: not the plain loop's bits", nseg,
				  d, threads);
			AccumFree(&acc);
			be->ops->block_destroy(be, blk);
			be->ops->destroy(be);
			free(x);
			free(dist);
			free(lab);
			free(sums);
			free(inertia);
			free(counts);
		}
}

int
main(void)
{
	int			margin,
				move;

	if (getenv("KM_TEST_QUICK"))
		max_pairs = 100000;
	TestSecond();
	TestAccumulateSegments();
	RunSuite(KM_PRUNE_ON, 1);
	if (max_pairs < INT64_MAX)
		return TestReport();	/* the quick run: no skipping check, no planted faults */

	/* pruning must skip work where it can: settled clustered data after a few passes */
	{
		int			k = 200;
		Outcome		o;

		rng_state = 5;
		o = RunCase(CLUSTERED, 20000, 4, 1, &k, 20, KM_PRUNE_ON);
		CHECK(o.passes_differing == 0 && o.pairs > 0 && o.scanned < o.pairs / 4,
			  "clustered 20000 x 4, k = 200: %lld of %lld pairs scanned in full",
			  (long long) o.scanned, (long long) o.pairs);
	}

	/* the planted faults: each must make some case differ */
	margin = RunSuite(KM_PRUNE_FAULT_MARGIN, 0);
	move = RunSuite(KM_PRUNE_FAULT_MOVE, 0);
	printf("planted faults caught: no margins in %d cases, no movement in %d cases\n", margin,
		   move);
	CHECK(margin > 0, "bounds without rounding margins went unnoticed");
	CHECK(move > 0, "bounds not loosened by movement went unnoticed");
	return TestReport();
}
