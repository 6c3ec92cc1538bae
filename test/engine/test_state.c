/*
 * test_state.c -- the CPU backend's passes and seeding (km_state.c over its steps) against the
 * steps themselves with the state kept by the test: totals and fetched state bit-identical,
 * changes counted as the engine counts them, exact distances where asked, misuse refused.
 * The GPU backend's host-memory state is the same code; test_cuda.c compares it with the
 * device's.
 */
#include "km_kernels.h"
#include "test_util.h"
#include "test_backend.h"

#include <math.h>
#include <string.h>

/*
 * Three segments of ks[] centers, segments 0 and 2 installed (a converged k dropped out), n
 * rows in blocks of bsize: two passes and an exact one through the pass operations, each
 * against assign_accumulate block by block with the state kept here.
 */
static void
TestPasses(const char *name, int64_t n, int d, const int ks[3], int64_t bsize)
{
	int			nseg = 3;
	int			segs[2] = {0, 2};
	int			off[3] = {0, ks[0], ks[0] + ks[2]};
	int			k = off[2];
	int64_t		nblk = (n + bsize - 1) / bsize;
	float	   *x = malloc(sizeof(float) * n * d),
			   *c = malloc(sizeof(float) * k * d);
	KmBlock   **blk;
	KmBackend  *be;
	RefState	rs;

	rng_state = (uint64_t) n * 31 + d;
	for (int64_t q = 0; q < n * d; q++)
		x[q] = RandUnit() * 5.0f;
	for (int j = 0; j < k; j++)
		memcpy(c + (int64_t) j * d, x + (int64_t) (j * 37 % n) * d, sizeof(float) * d);
	MUST(km_cpu_backend_create(2, d, &be, ERR));
	blk = MakeBlocks(be, x, n, d, bsize);
	RefStateAlloc(&rs, n, nseg, bsize);

	for (int pass = 0; pass < 3; pass++)
	{
		int			exact = pass == 2;
		KmAccum		ref,
					got;
		int64_t		ch_ref[2],
					ch_got[2] = {-1, -1};
		int			same = 1;

		AccumAlloc(&ref, k, d);
		AccumAlloc(&got, k, d);
		MUST(be->ops->set_centers(be, c, d, 2, off, ERR));
		ReferencePass(be, blk, nblk, bsize, 2, segs, off, exact, &rs, &ref, ch_ref);
		MUST(be->ops->pass_begin(be, n, nseg, segs, pass == 0, exact, 1, ERR));
		for (int64_t b = 0; b < nblk; b++)
			MUST(be->ops->pass_block(be, blk[b], b * bsize, ERR));
		MUST(be->ops->pass_end(be, &got, ch_got, ERR));
		CHECK(AccumSame(&ref, &got), "%s pass %d: totals differ from assign_accumulate's", name,
			  pass);
		CHECK(ch_got[0] == ch_ref[0] && ch_got[1] == ch_ref[1],
			  "%s pass %d: changed %lld, %lld; the reference %lld, %lld", name, pass,
			  (long long) ch_got[0], (long long) ch_got[1], (long long) ch_ref[0],
			  (long long) ch_ref[1]);
		if (pass == 0)
			CHECK(ch_got[0] == n && ch_got[1] == n, "%s: the first pass changed %lld of %lld",
				  name, (long long) ch_got[0], (long long) n);

		/* fetched in two ranges; the segment that was never installed stays at -1 */
		MUST(be->ops->state_fetch(be, 0, n / 3, rs.got_labels, rs.got_dist, ERR));
		MUST(be->ops->state_fetch(be, n / 3, n - n / 3, rs.got_labels + n / 3 * nseg,
								  rs.got_dist + n / 3 * nseg, ERR));
		for (int64_t e = 0; e < n * nseg; e++)
			if (e % nseg == 1)
				same &= rs.got_labels[e] == -1;
			else
				same &= rs.got_labels[e] == rs.labels[e] &&
					memcmp(&rs.got_dist[e], &rs.dist[e], sizeof(float)) == 0;
		CHECK(same, "%s pass %d: the fetched state differs", name, pass);

		/* exact: each distance is km_dist2 of the row and its center */
		if (exact)
		{
			int			direct = 1;

			for (int64_t i = 0; i < n; i++)
				for (int r = 0; r < 2; r++)
				{
					int64_t		e = i * nseg + segs[r];
					const float *cj = c + (int64_t) (off[r] + rs.got_labels[e]) * d;

					direct &= rs.got_dist[e] == km_dist2(x + i * d, cj, d);
				}
			CHECK(direct, "%s: exact distances are not the direct sums", name);
		}

		/* the next centers: the means (an empty cluster keeps its center) */
		for (int j = 0; j < k; j++)
			if (ref.counts[j] > 0)
				for (int t = 0; t < d; t++)
					c[(int64_t) j * d + t] = (float) (ref.sums[(int64_t) j * d + t] / ref.counts[j]);
		AccumFree(&ref);
		AccumFree(&got);
	}

	/* a reset starts the labels afresh */
	{
		KmAccum		a;
		int64_t		ch[2] = {0};

		AccumAlloc(&a, k, d);
		MUST(be->ops->pass_begin(be, n, nseg, segs, 1, 0, 1, ERR));
		for (int64_t b = 0; b < nblk; b++)
			MUST(be->ops->pass_block(be, blk[b], b * bsize, ERR));
		MUST(be->ops->pass_end(be, &a, ch, ERR));
		CHECK(ch[0] == n && ch[1] == n, "%s: after a reset %lld of %lld rows changed", name,
			  (long long) ch[0], (long long) n);
		AccumFree(&a);
	}

	FreeBlocks(be, blk, nblk);
	be->ops->destroy(be);
	RefStateFree(&rs);
	free(x);
	free(c);
}

/*
 * k-means++ through seed_begin .. seed_fetch against mindist_update and potentials with the
 * distances kept here: the same bits, blocks starting at multiples of KM_SUB_ROWS.
 */
static void
TestSeeding(const char *name, int64_t n, int d)
{
	int64_t		bsize = 2 * KM_SUB_ROWS;
	int64_t		nblk = (n + bsize - 1) / bsize;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	float	   *x = malloc(sizeof(float) * n * d),
			   *mh = malloc(sizeof(float) * n),
			   *mf = malloc(sizeof(float) * n);
	double	   *sh = calloc(runs, sizeof(double)),
			   *sd = calloc(runs, sizeof(double));
	KmBlock   **blk;
	KmBackend  *be;
	int			same = 1;

	rng_state = (uint64_t) n * 7 + d;
	for (int64_t q = 0; q < n * d; q++)
		x[q] = RandUnit();
	MUST(km_cpu_backend_create(2, d, &be, ERR));
	blk = MakeBlocks(be, x, n, d, bsize);
	for (int64_t i = 0; i < n; i++)
		mh[i] = INFINITY;
	MUST(be->ops->seed_begin(be, n, ERR));
	MUST(be->ops->seed_fetch(be, 0, n, mf, ERR));
	for (int64_t i = 0; i < n; i++)
		same &= isinf(mf[i]) && mf[i] > 0;
	CHECK(same, "%s: seed_begin does not start at +Inf", name);

	/* two centers (rows 0 and n - 1), then the potentials of three candidates */
	for (int step = 0; step < 2; step++)
	{
		const float *c = x + (step == 0 ? 0 : (n - 1) * d);

		for (int64_t b = 0; b < nblk; b++)
		{
			MUST(be->steps->mindist_update(be, blk[b], c, mh + b * bsize, sh + b * bsize / KM_SUB_ROWS,
										   ERR));
			MUST(be->ops->seed_update(be, blk[b], b * bsize, c, sd + b * bsize / KM_SUB_ROWS, ERR));
		}
		MUST(be->ops->seed_fetch(be, n / 2, n - n / 2, mf + n / 2, ERR));
		MUST(be->ops->seed_fetch(be, 0, n / 2, mf, ERR));
		CHECK(memcmp(sh, sd, sizeof(double) * runs) == 0 && memcmp(mh, mf, sizeof(float) * n) == 0,
			  "%s: k-means++ step %d differs from mindist_update's", name, step);
	}
	{
		double		ph[3] = {0},
					pd[3] = {0};
		const float *cand = x + (n / 2) * d;

		for (int64_t b = 0; b < nblk; b++)
		{
			MUST(be->steps->potentials(be, blk[b], cand, 3, mh + b * bsize, ph, ERR));
			MUST(be->ops->seed_potentials(be, blk[b], b * bsize, cand, 3, pd, ERR));
		}
		CHECK(memcmp(ph, pd, sizeof(ph)) == 0, "%s: potentials differ: %.17g vs %.17g", name,
			  ph[0], pd[0]);
	}
	FreeBlocks(be, blk, nblk);
	be->ops->destroy(be);
	free(x);
	free(mh);
	free(mf);
	free(sh);
	free(sd);
}

/*
 * A pass without keep (mini-batch's final pass, KmeansKeepsRowState) against the same pass with
 * the state kept, on its own backend with the same history: the same totals and, fetched right
 * after each block, the same labels and distances, bit for bit.  Rows outside the last block,
 * a fetch once the pass is over and some segments installed are refused; a pass with keep
 * afterwards starts its labels afresh.  Each pass follows a first one over the same centers,
 * so that where the CPU backend keeps bounds (d <= 16, one segment of 64) the kept pass is a
 * pruned one and the other is not.
 */
static void
TestStateless(const char *name, int64_t n, int d, int nseg, const int *ks, int64_t bsize,
			  int exact)
{
	int			segs[2] = {0, 1};
	int			off[3] = {0, ks[0], ks[0] + (nseg > 1 ? ks[1] : 0)};
	int			k = off[nseg];
	int64_t		nblk = (n + bsize - 1) / bsize;
	float	   *x = malloc(sizeof(float) * n * d),
			   *c = malloc(sizeof(float) * k * d),
			   *dk = malloc(sizeof(float) * n * nseg),
			   *dn = malloc(sizeof(float) * n * nseg);
	int32_t    *lk = malloc(sizeof(int32_t) * n * nseg),
			   *ln = malloc(sizeof(int32_t) * n * nseg);
	KmBackend  *kept,
			   *none;
	KmBlock   **bk,
			  **bn;
	KmAccum		ak,
				an;
	int64_t		ch[2];
	KmError		err = {0};
	KmStatus	st;

	rng_state = (uint64_t) n * 13 + d + nseg;
	for (int64_t q = 0; q < n * d; q++)
		x[q] = RandUnit() * 4.0f + (float) ((q / d) % 7);
	for (int j = 0; j < k; j++)
		memcpy(c + (int64_t) j * d, x + (int64_t) (j * 53 % n) * d, sizeof(float) * d);
	MUST(km_cpu_backend_create(2, d, &kept, ERR));
	MUST(km_cpu_backend_create(2, d, &none, ERR));
	bk = MakeBlocks(kept, x, n, d, bsize);
	bn = MakeBlocks(none, x, n, d, bsize);
	for (int pass = 0; pass < 2; pass++)
	{
		KmBackend  *be[2] = {kept, none};
		KmBlock   **blk[2] = {bk, bn};

		/* the first pass keeps the state on both; the second keeps it on one */
		for (int b = 0; b < 2; b++)
		{
			int			keep = pass == 0 || b == 0;
			KmAccum    *acc = b == 0 ? &ak : &an;

			AccumAlloc(acc, k, d);
			MUST(be[b]->ops->set_centers(be[b], c, d, nseg, off, ERR));
			MUST(be[b]->ops->pass_begin(be[b], n, nseg, segs, pass == 0, exact, keep, ERR));
			for (int64_t q = 0; q < nblk; q++)
			{
				int64_t		m = n - q * bsize < bsize ? n - q * bsize : bsize;

				MUST(be[b]->ops->pass_block(be[b], blk[b][q], q * bsize, ERR));
				if (keep)
					continue;
				MUST(be[b]->ops->state_fetch(be[b], q * bsize, m, ln + q * bsize * nseg,
											 dn + q * bsize * nseg, ERR));
				if (q > 0)
				{
					st = be[b]->ops->state_fetch(be[b], q * bsize - 1, 1, lk, dk, &err);
					CHECK(st == KM_ERR_ARGUMENT, "%s: a row before the last block was served", name);
				}
			}
			MUST(be[b]->ops->pass_end(be[b], acc, ch, ERR));
		}
		if (pass == 0)
		{
			AccumFree(&ak);
			AccumFree(&an);
			continue;
		}
		MUST(kept->ops->state_fetch(kept, 0, n, lk, dk, ERR));
		CHECK(AccumSame(&ak, &an), "%s: the totals without state differ", name);
		CHECK(memcmp(lk, ln, sizeof(int32_t) * n * nseg) == 0 &&
			  memcmp(dk, dn, sizeof(float) * n * nseg) == 0,
			  "%s: the labels or distances without state differ", name);
		AccumFree(&ak);
		AccumFree(&an);
	}

	/* after the pass nothing is kept; a partial pass cannot keep nothing */
	st = none->ops->state_fetch(none, 0, 1, ln, dn, &err);
	CHECK(st == KM_ERR_ARGUMENT && strstr(err.message, "keeps the state") != NULL,
		  "%s: state_fetch after a pass without state: status %d, \"%s\"", name, (int) st,
		  err.message);
	if (nseg > 1)
	{
		st = none->ops->pass_begin(none, n, nseg, segs, 0, exact, 0, &err);
		CHECK(st == KM_OK, "%s: pass_begin without state: %s", name, err.message);
		st = none->ops->pass_begin(none, n, nseg + 1, segs, 0, exact, 0, &err);
		CHECK(st == KM_ERR_ARGUMENT && strstr(err.message, "without state") != NULL,
			  "%s: a pass without state for %d of %d segments: status %d", name, nseg, nseg + 1,
			  (int) st);
	}
	/* the labels start afresh: every row changes */
	AccumAlloc(&an, k, d);
	MUST(none->ops->pass_begin(none, n, nseg, segs, 0, exact, 1, ERR));
	for (int64_t q = 0; q < nblk; q++)
		MUST(none->ops->pass_block(none, bn[q], q * bsize, ERR));
	MUST(none->ops->pass_end(none, &an, ch, ERR));
	CHECK(ch[0] == n && (nseg == 1 || ch[1] == n), "%s: a kept pass after one without changed %lld of %lld",
		  name, (long long) ch[0], (long long) n);
	AccumFree(&an);

	FreeBlocks(kept, bk, nblk);
	FreeBlocks(none, bn, nblk);
	kept->ops->destroy(kept);
	none->ops->destroy(none);
	free(x);
	free(c);
	free(lk);
	free(ln);
	free(dk);
	free(dn);
}

int
main(void)
{
	int			small[3] = {5, 3, 7};
	int			wide[3] = {9, 4, 70};

	/* the small-d kernel, and the GEMM one with its exact recomputation */
	TestPasses("d=3", 5000, 3, small, 1024);
	TestPasses("d=3 uneven blocks", 3333, 3, small, 3 * KM_SUB_ROWS);
	TestPasses("d=40", 2500, 40, wide, 2 * KM_SUB_ROWS);
	{
		int			two[2] = {6, 11};
		int			one[1] = {64};

		TestStateless("stateless d=3", 5000, 3, 2, two, 1024, 1);
		TestStateless("stateless d=3 pruned", 6000, 3, 1, one, 3 * KM_SUB_ROWS, 1);
		TestStateless("stateless d=3 pruned, not exact", 6000, 3, 1, one, 1024, 0);
		TestStateless("stateless d=40", 2500, 40, 2, two, 2 * KM_SUB_ROWS, 1);
		TestStateless("stateless d=40, not exact", 2500, 40, 1, one, KM_SUB_ROWS, 0);
	}
	TestSeeding("d=4", 10000, 4);
	TestSeeding("d=40", 3000, 40);
	{
		KmBackend  *be;

		MUST(km_cpu_backend_create(1, 2, &be, ERR));
		TestStateMisuse("cpu", be);
		be->ops->destroy(be);
	}
	return TestReport();
}
