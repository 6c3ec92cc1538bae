/*
 * test_elbow.c -- the CPU backend on the elbow's shapes (many segments of few centers, small d)
 * against plain loops written here: the register kernel's labels and distances, a pass's
 * totals, changes and state, and the k-means++ run sums, bit for bit, on 1, 2 and 5 threads.
 *
 * The references are the definitions, not the backend's code: km_dist2_seq per (row, center)
 * with the lowest index on ties; float64 sums, counts and inertia added row by row in row
 * order; the k-means++ sums of each run of KM_SUB_ROWS rows in sixteen float64 lanes (row i in
 * lane i mod 16) added by the fixed tree the backend documents.  Each comparison is shown to
 * notice a reference that is wrong in the way a fast path could be (planted faults: rows
 * added in another order, ties to the higher index, one lane tree for another), so an equal
 * result means the same bits, not only close ones.
 *
 * Five threads on this machine's two cores also stress the pool's protocol (km_cpu.c, Pool):
 * workers that wake after the caller closed a step must leave it alone.
 */
#include "km_kernels.h"
#include "test_util.h"
#include "test_backend.h"

#include <math.h>
#include <string.h>

/* The planted faults of the references, each a way to get the bits wrong. */
typedef enum Fault
{
	FAULT_NONE,
	FAULT_ROW_ORDER,			/* sums and inertia added last row first */
	FAULT_TIE_HIGH,				/* ties to the higher index */
	FAULT_LANE_TREE				/* the sixteen lanes added in index order */
} Fault;

static int	faults_caught;
static int	faults_planted;

/* The segments of an elbow: ks[s] = kmin + s centers each, offsets into off[0..nseg]. */
static void
ElbowSegments(int kmin, int nseg, int *off)
{
	off[0] = 0;
	for (int s = 0; s < nseg; s++)
		off[s + 1] = off[s] + kmin + s;
}

/* Nearest center of each row in each segment by km_dist2_seq, lowest index on ties. */
static void
RefNearest(const float *x, int64_t n, int d, const float *c, int nseg, const int *off,
		   Fault fault, int32_t *labels, float *dist)
{
	for (int64_t i = 0; i < n; i++)
		for (int s = 0; s < nseg; s++)
		{
			int			best = off[s];
			float		bd = INFINITY;

			for (int j = off[s]; j < off[s + 1]; j++)
			{
				float		v = km_dist2_seq(x + i * d, c + (int64_t) j * d, d);

				if (v < bd || (fault == FAULT_TIE_HIGH && v == bd))
				{
					bd = v;
					best = j;
				}
			}
			labels[i * nseg + s] = best;
			dist[i * nseg + s] = bd;
		}
}

/* Sums (w x), counts, inertia (w dist) and mass (w) per center, rows in order. */
static void
RefAccumulate(const float *x, const float *w, int64_t n, int d, int nseg, const int32_t *labels,
			  const float *dist, Fault fault, KmAccum *acc)
{
	for (int64_t q = 0; q < n; q++)
	{
		int64_t		i = fault == FAULT_ROW_ORDER ? n - 1 - q : q;
		double		wi = w ? w[i] : 1.0;

		for (int s = 0; s < nseg; s++)
		{
			int32_t		j = labels[i * nseg + s];

			for (int t = 0; t < d; t++)
				acc->sums[(int64_t) j * d + t] += w ? wi * x[i * d + t] : (double) x[i * d + t];
			acc->counts[j]++;
			acc->inertia[j] += w ? wi * dist[i * nseg + s] : (double) dist[i * nseg + s];
			if (w)
				acc->mass[j] += wi;
		}
	}
}

/* True when a (with mass where both have it) holds b's bits. */
static int
SameTotals(const KmAccum *a, const KmAccum *b)
{
	return AccumSame(a, b) &&
		(a->mass == NULL || b->mass == NULL ||
		 memcmp(a->mass, b->mass, sizeof(double) * a->k) == 0);
}

static void
AccumWeighted(KmAccum *a, int k, int d, int weighted)
{
	AccumAlloc(a, k, d);
	a->mass = weighted ? calloc(k, sizeof(double)) : NULL;
}

static void
AccumRelease(KmAccum *a)
{
	free(a->mass);
	AccumFree(a);
}

/*
 * Three passes (the last exact) of an elbow of nseg segments from k = kmin, of which every
 * third is left out after the first pass (as converged ones drop out), over n rows of
 * dimension d in blocks of bsize, on each thread count: totals, changed labels and the
 * fetched state against the references.  With weighted, every row carries a weight.
 */
static void
TestPasses(const char *name, int64_t n, int d, int kmin, int nseg, int64_t bsize, int weighted)
{
	int			threads[] = {1, 2, 5};
	int		   *off = malloc(sizeof(int) * (nseg + 1));
	int		   *run_off = malloc(sizeof(int) * (nseg + 1));
	int		   *segs = malloc(sizeof(int) * nseg);
	int			k;
	float	   *x0 = malloc(sizeof(float) * n * d);
	float	   *w = weighted ? malloc(sizeof(float) * n) : NULL;

	ElbowSegments(kmin, nseg, off);
	k = off[nseg];
	rng_state = (uint64_t) n * 131 + d * 7 + nseg;
	/*
	 * Values of very different sizes (powers of two from 2^-16 to 2^16), so that float64 sums
	 * round and the order of the additions shows in their bits; one coordinate offset, as
	 * uncentred data are.
	 */
	for (int64_t q = 0; q < n * d; q++)
		x0[q] = RandUnit() * ldexpf(1.0f, RandBelow(33) - 16) + (q % d == 0 ? 20.0f : 0.0f);
	for (int64_t i = 0; i < n && w; i++)
		w[i] = (float) (1 + RandBelow(4)) * 0.25f;

	for (size_t th = 0; th < sizeof(threads) / sizeof(threads[0]); th++)
	{
		KmBackend  *be;
		float	   *x = malloc(sizeof(float) * n * d);
		float	   *c = malloc(sizeof(float) * k * d);
		float	   *cr = malloc(sizeof(float) * k * d);
		int64_t		nblk = (n + bsize - 1) / bsize;
		KmBlock   **blk = calloc(nblk, sizeof(KmBlock *));
		int32_t    *state_l = malloc(sizeof(int32_t) * n * nseg);
		float	   *state_d = malloc(sizeof(float) * n * nseg);
		int32_t    *got_l = malloc(sizeof(int32_t) * n * nseg);
		float	   *got_d = malloc(sizeof(float) * n * nseg);
		int32_t    *lab = malloc(sizeof(int32_t) * n * nseg);
		float	   *dist = malloc(sizeof(float) * n * nseg);

		memcpy(x, x0, sizeof(float) * n * d);
		for (int j = 0; j < k; j++)
			memcpy(c + (int64_t) j * d, x + (int64_t) ((j * 7919) % n) * d, sizeof(float) * d);
		memset(state_l, 0xff, sizeof(int32_t) * n * nseg);
		MUST(km_cpu_backend_create(threads[th], d, &be, ERR));
		for (int64_t b = 0; b < nblk; b++)
		{
			int64_t		m = n - b * bsize < bsize ? n - b * bsize : bsize;

			MUST(be->ops->block_create(be, x + b * bsize * d, w ? w + b * bsize : NULL, m, NULL,
									   &blk[b], ERR));
		}

		for (int pass = 0; pass < 3; pass++)
		{
			int			nrun = 0;
			int			exact = pass == 2;
			int64_t    *ch_ref = calloc(nseg, sizeof(int64_t));
			int64_t    *ch_got = calloc(nseg, sizeof(int64_t));
			KmAccum		ref,
						got,
						bad;
			int			same = 1;

			/* installed: every segment first, then (of three or more) those not divisible by three */
			run_off[0] = 0;
			for (int s = 0; s < nseg; s++)
				if (pass == 0 || nseg < 3 || s % 3 != 0)
				{
					int			ks = off[s + 1] - off[s];

					memcpy(cr + (int64_t) run_off[nrun] * d, c + (int64_t) off[s] * d,
						   sizeof(float) * ks * d);
					segs[nrun] = s;
					run_off[nrun + 1] = run_off[nrun] + ks;
					nrun++;
				}
			AccumWeighted(&ref, run_off[nrun], d, weighted);
			AccumWeighted(&got, run_off[nrun], d, weighted);
			AccumWeighted(&bad, run_off[nrun], d, weighted);

			RefNearest(x, n, d, cr, nrun, run_off, FAULT_NONE, lab, dist);
			RefAccumulate(x, w, n, d, nrun, lab, dist, FAULT_NONE, &ref);
			for (int64_t i = 0; i < n; i++)
				for (int r = 0; r < nrun; r++)
				{
					int64_t		at = i * nseg + segs[r];
					int32_t		l = lab[i * nrun + r] - run_off[r];

					ch_ref[r] += state_l[at] != l;
					state_l[at] = l;
					state_d[at] = dist[i * nrun + r];
				}

			MUST(be->ops->set_centers(be, cr, d, nrun, run_off, ERR));
			MUST(be->ops->pass_begin(be, n, nseg, segs, pass == 0, exact, 1, ERR));
			for (int64_t b = 0; b < nblk; b++)
				MUST(be->ops->pass_block(be, blk[b], b * bsize, ERR));
			MUST(be->ops->pass_end(be, &got, ch_got, ERR));
			MUST(be->ops->state_fetch(be, 0, n, got_l, got_d, ERR));

			CHECK(SameTotals(&ref, &got), "%s, %d threads, pass %d: totals differ", name,
				  threads[th], pass);
			for (int r = 0; r < nrun; r++)
				same &= ch_ref[r] == ch_got[r];
			CHECK(same, "%s, %d threads, pass %d: changed labels differ", name, threads[th],
				  pass);
			same = 1;
			for (int64_t e = 0; e < n * nseg; e++)
				same &= got_l[e] == state_l[e] &&
					(state_l[e] < 0 || memcmp(&got_d[e], &state_d[e], sizeof(float)) == 0);
			CHECK(same, "%s, %d threads, pass %d: the state differs", name, threads[th], pass);

			/* planted: the rows added last first; on the first thread count only */
			if (th == 0 && pass == 1)
			{
				RefAccumulate(x, w, n, d, nrun, lab, dist, FAULT_ROW_ORDER, &bad);
				faults_planted++;
				if (!SameTotals(&bad, &got))
					faults_caught++;
				else
					printf("note: %s: adding the rows backwards gave the same bits\n", name);
			}

			/* the next centers, the means (an empty cluster keeps its center) */
			for (int r = 0; r < nrun; r++)
				for (int j = run_off[r]; j < run_off[r + 1]; j++)
				{
					double		cnt = weighted ? ref.mass[j] : (double) ref.counts[j];

					if (cnt > 0)
						for (int t = 0; t < d; t++)
							c[(int64_t) (off[segs[r]] + j - run_off[r]) * d + t] =
								(float) (ref.sums[(int64_t) j * d + t] / cnt);
				}
			AccumRelease(&ref);
			AccumRelease(&got);
			AccumRelease(&bad);
			free(ch_ref);
			free(ch_got);
		}
		for (int64_t b = 0; b < nblk; b++)
			be->ops->block_destroy(be, blk[b]);
		be->ops->destroy(be);
		free(blk);
		free(x);
		free(c);
		free(cr);
		free(state_l);
		free(state_d);
		free(got_l);
		free(got_d);
		free(lab);
		free(dist);
	}
	free(off);
	free(run_off);
	free(segs);
	free(x0);
	free(w);
}

/*
 * The register kernel's centers go two at a time: exact ties inside a pair and across pairs,
 * in segments of odd and even length, must still go to the lowest index, with the second
 * least distance (km_argmin_small2) the same value again.
 */
static void
TestPairTies(void)
{
	for (int d = 1; d <= KM_SMALL_D_MAX; d++)
	{
		int			nseg = 9;
		int			off[10];
		int64_t		n = 37;
		int			k;
		float	   *x,
				   *c,
				   *dr,
				   *dg,
				   *sg;
		int32_t    *lr,
				   *lg,
				   *lh;
		int			same = 1,
					ties = 0;

		ElbowSegments(1, nseg, off);
		k = off[nseg];
		x = malloc(sizeof(float) * n * d);
		c = malloc(sizeof(float) * k * d);
		dr = malloc(sizeof(float) * n * nseg);
		dg = malloc(sizeof(float) * n * nseg);
		sg = malloc(sizeof(float) * n * nseg);
		lr = malloc(sizeof(int32_t) * n * nseg);
		lg = malloc(sizeof(int32_t) * n * nseg);
		lh = malloc(sizeof(int32_t) * n * nseg);
		rng_state = 77 + d;
		/* small integers: many exact ties; each center a copy of its neighbour half the time */
		for (int64_t q = 0; q < n * d; q++)
			x[q] = (float) RandBelow(3);
		for (int j = 0; j < k; j++)
			for (int t = 0; t < d; t++)
				c[(int64_t) j * d + t] = j > 0 && RandBelow(2) ? c[(int64_t) (j - 1) * d + t] :
					(float) RandBelow(3);
		RefNearest(x, n, d, c, nseg, off, FAULT_NONE, lr, dr);
		km_argmin_small2(x, n, d, c, nseg, off, lg, dg, sg);
		for (int64_t e = 0; e < n * nseg; e++)
		{
			int			s = (int) (e % nseg);

			same &= lr[e] == lg[e] && memcmp(&dr[e], &dg[e], sizeof(float)) == 0;
			/* a tie: the second least equals the least */
			if (off[s + 1] - off[s] > 1 && sg[e] == dg[e])
				ties++;
		}
		CHECK(same && ties > 0, "d=%d: pairs of centers against the reference: %s, %d ties",
			  d, same ? "same" : "different", ties);
		km_argmin_small(x, n, d, c, NULL, nseg, off, lg, dg);
		same = memcmp(lr, lg, sizeof(int32_t) * n * nseg) == 0 &&
			memcmp(dr, dg, sizeof(float) * n * nseg) == 0;
		CHECK(same, "d=%d: km_argmin_small differs from the reference", d);

		/* planted: ties to the higher index */
		RefNearest(x, n, d, c, nseg, off, FAULT_TIE_HIGH, lh, dr);
		faults_planted++;
		if (memcmp(lh, lg, sizeof(int32_t) * n * nseg) != 0)
			faults_caught++;
		free(x);
		free(c);
		free(dr);
		free(dg);
		free(sg);
		free(lr);
		free(lg);
		free(lh);
	}
}

/*
 * The k-means++ sum of one run of m rows as the backend defines it: v_i = min(mindist_i,
 * w_i |x_i - cand|^2) in sixteen float64 lanes, row i in lane i mod 16, then lanes l and l + 8
 * added, then the tree over 4, 2, 1.
 */
static double
RefRunSum(const float *x, const float *w, int64_t m, int d, const float *cand,
		  const float *mindist, float *out, Fault fault)
{
	double		lane[16] = {0};

	for (int64_t i = 0; i < m; i++)
	{
		float		v = km_dist2_seq(x + i * d, cand, d);

		if (w)
			v *= w[i];
		v = v < mindist[i] ? v : mindist[i];
		if (out)
			out[i] = v;
		lane[i % 16] += v;
	}
	if (fault == FAULT_LANE_TREE)
	{
		double		sum = 0.0;

		for (int l = 0; l < 16; l++)
			sum += lane[l];
		return sum;
	}
	for (int l = 0; l < 8; l++)
		lane[l] += lane[l + 8];
	for (int h = 4; h > 0; h /= 2)
		for (int l = 0; l < h; l++)
			lane[l] += lane[l + h];
	return lane[0];
}

/*
 * k-means++ steps on every d the fused path takes: mindist_update from +Inf, then potentials
 * of t candidates and a second update, against RefRunSum run by run, on each thread count.
 */
static void
TestSeedSums(int64_t n, int weighted)
{
	int			threads[] = {1, 2, 5};

	for (int d = 1; d <= KM_SMALL_D_MAX; d++)
		for (size_t th = 0; th < sizeof(threads) / sizeof(threads[0]); th++)
		{
			int			t = 5;
			int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
			float	   *x = malloc(sizeof(float) * n * d);
			float	   *w = weighted ? malloc(sizeof(float) * n) : NULL;
			float	   *cand = malloc(sizeof(float) * (t + 1) * d);
			float	   *md = malloc(sizeof(float) * n);
			float	   *mr = malloc(sizeof(float) * n);
			double	   *sums = malloc(sizeof(double) * runs);
			double		pot[8] = {0},
						pref[8] = {0},
						pbad[8] = {0};
			KmBackend  *be;
			KmBlock    *blk;
			int			same = 1,
						lane_fault = 0;

			rng_state = 1000 + d * 3 + weighted;
			/*
			 * rows of sizes far apart, so that the float64 sums round and the order of the
			 * lanes shows in their bits: every sixteenth row (lane 0's) about 2^20, the others
			 * powers of two from 2^-8 to 2^8
			 */
			for (int64_t i = 0; i < n; i++)
			{
				float		scale = ldexpf(1.0f, i % 16 == 0 ? 20 : RandBelow(17) - 8);

				for (int q = 0; q < d; q++)
					x[i * d + q] = RandUnit() * scale;
			}
			for (int64_t i = 0; i < n && w; i++)
				w[i] = 0.5f + (float) RandBelow(3);
			/* candidates near the origin: the small rows' distances stay small */
			for (int64_t q = 0; q < (int64_t) (t + 1) * d; q++)
				cand[q] = RandUnit();
			for (int64_t i = 0; i < n; i++)
				md[i] = mr[i] = INFINITY;
			MUST(km_cpu_backend_create(threads[th], d, &be, ERR));
			MUST(be->ops->block_create(be, x, w, n, NULL, &blk, ERR));

			MUST(be->steps->mindist_update(be, blk, cand, md, sums, ERR));
			for (int64_t r = 0; r < runs; r++)
			{
				int64_t		lo = r * KM_SUB_ROWS,
							m = n - lo < KM_SUB_ROWS ? n - lo : KM_SUB_ROWS;
				double		v = RefRunSum(x + lo * d, w ? w + lo : NULL, m, d, cand, mr + lo,
										  NULL, FAULT_LANE_TREE);

				lane_fault |= memcmp(&v, &sums[r], sizeof(double)) != 0;
				v = RefRunSum(x + lo * d, w ? w + lo : NULL, m, d, cand, mr + lo, mr + lo,
							  FAULT_NONE);
				same &= memcmp(&v, &sums[r], sizeof(double)) == 0;
			}
			same &= memcmp(md, mr, sizeof(float) * n) == 0;
			MUST(be->steps->potentials(be, blk, cand + d, t, md, pot, ERR));
			for (int64_t r = 0; r < runs; r++)
			{
				int64_t		lo = r * KM_SUB_ROWS,
							m = n - lo < KM_SUB_ROWS ? n - lo : KM_SUB_ROWS;

				for (int j = 0; j < t; j++)
					pref[j] += RefRunSum(x + lo * d, w ? w + lo : NULL, m, d, cand + (j + 1) * d,
										 mr + lo, NULL, FAULT_NONE);
				for (int j = 0; j < t; j++)
					pbad[j] += RefRunSum(x + lo * d, w ? w + lo : NULL, m, d, cand + (j + 1) * d,
										 mr + lo, NULL, FAULT_LANE_TREE);
			}
			same &= memcmp(pot, pref, sizeof(double) * t) == 0;
			CHECK(same, "k-means++ sums d=%d n=%lld, %d threads%s differ from the lanes'", d,
				  (long long) n, threads[th], weighted ? ", weighted" : "");
			if (th == 0)
			{
				faults_planted++;
				if (lane_fault || memcmp(pbad, pot, sizeof(double) * t) != 0)
					faults_caught++;
			}
			be->ops->block_destroy(be, blk);
			be->ops->destroy(be);
			free(x);
			free(w);
			free(cand);
			free(md);
			free(mr);
			free(sums);
		}
}

/*
 * Many short steps on more threads than cores, where workers often wake after the caller has
 * closed a step: the same potentials every time, the same as on one thread.
 */
static void
TestShortSteps(void)
{
	int64_t		n = 300;
	int			d = 3;
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *md = malloc(sizeof(float) * n);
	double		one[3] = {0},
				many[3];
	double		sums[1];
	KmBackend  *b1,
			   *b8;
	KmBlock    *k1,
			   *k8;
	int			same = 1;

	rng_state = 4242;
	for (int64_t q = 0; q < n * d; q++)
		x[q] = RandUnit();
	for (int64_t i = 0; i < n; i++)
		md[i] = INFINITY;
	MUST(km_cpu_backend_create(1, d, &b1, ERR));
	MUST(km_cpu_backend_create(8, d, &b8, ERR));
	MUST(b1->ops->block_create(b1, x, NULL, n, NULL, &k1, ERR));
	MUST(b8->ops->block_create(b8, x, NULL, n, NULL, &k8, ERR));
	MUST(b1->steps->mindist_update(b1, k1, x, md, sums, ERR));
	MUST(b1->steps->potentials(b1, k1, x + 3 * d, 3, md, one, ERR));
	for (int rep = 0; rep < 3000; rep++)
	{
		memset(many, 0, sizeof(many));
		MUST(b8->steps->potentials(b8, k8, x + 3 * d, 3, md, many, ERR));
		same &= memcmp(one, many, sizeof(one)) == 0;
	}
	CHECK(same, "3000 short steps on 8 threads: potentials differ from one thread's");
	b1->ops->block_destroy(b1, k1);
	b8->ops->block_destroy(b8, k8);
	b1->ops->destroy(b1);
	b8->ops->destroy(b8);
	free(x);
	free(md);
}

int
main(void)
{
	/* the seed elbow's shape (k = 3..49), smaller; uneven blocks as streamed batches come */
	TestPasses("elbow d=10", 3000, 10, 3, 47, 3000, 0);
	TestPasses("elbow d=10 in blocks", 2500, 10, 3, 47, KM_SUB_ROWS, 0);
	TestPasses("elbow d=4", 2100, 4, 2, 30, 2100, 0);
	TestPasses("elbow d=16 weighted", 1500, 16, 3, 20, 1500, 1);
	TestPasses("elbow d=16", 1500, 16, 3, 20, 1500, 0);
	TestPasses("elbow d=8", 1200, 8, 2, 16, 1200, 0);
	TestPasses("elbow d=2", 1100, 2, 2, 24, 1100, 0);
	TestPasses("elbow d=7 weighted", 1800, 7, 1, 12, KM_SUB_ROWS, 1);
	/* few segments: sums and counts in separate pieces */
	TestPasses("two segments d=10", 2000, 10, 20, 2, 2000, 0);
	TestPasses("one segment d=3 weighted", 2000, 3, 40, 1, 2000, 1);
	TestPairTies();
	TestSeedSums(3 * KM_SUB_ROWS + 37, 0);
	TestSeedSums(KM_SUB_ROWS + 5, 1);
	TestShortSteps();
	CHECK(faults_caught == faults_planted, "planted faults caught: %d of %d", faults_caught,
		  faults_planted);
	printf("planted faults caught: %d of %d\n", faults_caught, faults_planted);
	return TestReport();
}
