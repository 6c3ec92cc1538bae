/*
 * test_cuda.c -- the GPU backend against its CPU twin, operation by operation.
 *
 * Built twice: against km_cuda.cu compiled by nvcc (bin/test_cuda, where nvcc exists; it skips
 * cleanly on a machine without a usable GPU) and against the same source run on the CPU by
 * km_cuda_emu.h (bin/test_cuda_emu, everywhere), which checks the kernels' logic where no GPU
 * is at hand.
 *
 * Each case takes the same rows and centers through both backends and requires: labels that
 * differ for at most 1e-4 of the rows, distances and inertia within 1e-5 relative, sums, counts
 * and k-means++ sums that agree, and two runs of the GPU bit-identical; a block that streams
 * through the staging slots must give what a resident one gives.  The operations that keep
 * per-row state on the device (Lloyd passes, k-means++ distances) must give, bit for bit, what
 * the same steps give with that state on the host.  Data: uniform, clustered, exact ties,
 * duplicate rows, far from the origin, k = 1 and k = n; small and large d, one segment and
 * several (the elbow's).  Under the emulator, work runs only when the host waits, so a
 * missing wait shows up as wrong numbers here.
 *
 * KM_TEST_QUICK=1 runs only the cases marked quick, which between them still take every path
 * (small d and GEMM, narrow and wide rows, one segment and several, k = 1 and k = n), for
 * valgrind (make check-engine-valgrind), under which the whole is about ten times too slow.
 *
 * Prints failing cases and ends with "N passed, M failed".
 */
#include "km_dtw.h"
#include "km_kernels.h"
#include "test_util.h"
#include "test_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KM_CUDA_EMU
size_t		km_cuda_emu_live(void);	/* km_cuda_emu.h */
#endif


typedef struct Case
{
	const char *name;
	int64_t		n;
	int			d;
	int			nseg;
	int			ks[4];
	int			kind;			/* 0 uniform, 1 clustered, 2 ties, 3 duplicates, 4 far away */
	int			quick;			/* one of the KM_TEST_QUICK subset */
} Case;

static double
RelDiff(double a, double b)
{
	double		m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);

	return m == 0.0 ? 0.0 : fabs(a - b) / m;
}

/* Rows for a case, and its centers: rows drawn from the data so ties and duplicates are real. */
static void
MakeData(const Case *c, KmRng *rng, float *x, float *centers, int k)
{
	int64_t		n = c->n;
	int			d = c->d;

	for (int64_t i = 0; i < n; i++)
		for (int t = 0; t < d; t++)
		{
			float		u = (float) km_rng_uniform(rng);

			switch (c->kind)
			{
				case 0:
					x[i * d + t] = u;
					break;
				case 1:
					x[i * d + t] = (float) (i % 5) * 3.0f + 0.2f * u;
					break;
				case 2:
					/* a lattice: many rows exactly between two centers */
					x[i * d + t] = (float) ((i + t) % 3);
					break;
				case 3:
					x[i * d + t] = (float) ((i % 4) + t);
					break;
				default:
					x[i * d + t] = 10000.0f + u;
					break;
			}
		}
	for (int j = 0; j < k; j++)
		memcpy(centers + (int64_t) j * d, x + (int64_t) ((j * 7919) % n) * d, sizeof(float) * d);
	if (c->kind == 2)
		for (int j = 0; j < k; j++)
			for (int t = 0; t < d; t++)
				centers[(int64_t) j * d + t] = (float) ((j + t) % 4) * 0.5f;
}

/* Every GPU operation of one case against the CPU backend, and against itself. */
static void
RunCase(const Case *c, KmBackend *cpu, KmBackend *gpu, KmBackend *gpu_stream)
{
	int64_t		n = c->n;
	int			d = c->d;
	int			nseg = c->nseg;
	int			seg_off[5] = {0};
	int			k;
	KmRng		rng;
	float	   *x0,
			   *xc,
			   *xg,
			   *xs,
			   *centers,
			   *shift;
	int32_t    *lc,
			   *lg,
			   *lg2,
			   *ls;
	float	   *dc,
			   *dg,
			   *dg2,
			   *ds;
	KmBlock    *bc,
			   *bg,
			   *bs;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;

	for (int s = 0; s < nseg; s++)
		seg_off[s + 1] = seg_off[s] + c->ks[s];
	k = seg_off[nseg];
	km_rng_seed(&rng, (uint64_t) n * 31 + d);
	x0 = malloc(sizeof(float) * n * d);
	xc = malloc(sizeof(float) * n * d);
	xg = malloc(sizeof(float) * n * d);
	xs = malloc(sizeof(float) * n * d);
	centers = malloc(sizeof(float) * k * d);
	shift = calloc(d, sizeof(float));
	MakeData(c, &rng, x0, centers, k);
	if (c->kind == 4)
		for (int t = 0; t < d; t++)
			shift[t] = 10000.0f;
	for (int j = 0; j < k; j++)
		for (int t = 0; t < d; t++)
			centers[(int64_t) j * d + t] -= shift[t];
	memcpy(xc, x0, sizeof(float) * n * d);
	memcpy(xg, x0, sizeof(float) * n * d);
	memcpy(xs, x0, sizeof(float) * n * d);

	lc = malloc(sizeof(int32_t) * n * nseg);
	lg = malloc(sizeof(int32_t) * n * nseg);
	lg2 = malloc(sizeof(int32_t) * n * nseg);
	ls = malloc(sizeof(int32_t) * n * nseg);
	dc = malloc(sizeof(float) * n * nseg);
	dg = malloc(sizeof(float) * n * nseg);
	dg2 = malloc(sizeof(float) * n * nseg);
	ds = malloc(sizeof(float) * n * nseg);

	MUST(cpu->ops->block_create(cpu, xc, NULL, n, shift, &bc, ERR));
	MUST(gpu->ops->block_create(gpu, xg, NULL, n, shift, &bg, ERR));
	MUST(gpu_stream->ops->block_create(gpu_stream, xs, NULL, n, shift, &bs, ERR));
	CHECK(memcmp(xc, xg, sizeof(float) * n * d) == 0, "%s: rows centred differently", c->name);
	MUST(cpu->ops->set_centers(cpu, centers, d, nseg, seg_off, ERR));
	MUST(gpu->ops->set_centers(gpu, centers, d, nseg, seg_off, ERR));
	MUST(gpu_stream->ops->set_centers(gpu_stream, centers, d, nseg, seg_off, ERR));

	/* assign, expanded and exact distances */
	for (int exact = 0; exact <= 1; exact++)
	{
		int64_t		differ = 0;
		double		worst = 0.0;

		MUST(cpu->steps->assign(cpu, bc, lc, dc, exact, ERR));
		MUST(gpu->steps->assign(gpu, bg, lg, dg, exact, ERR));
		MUST(gpu->steps->assign(gpu, bg, lg2, dg2, exact, ERR));
		MUST(gpu_stream->steps->assign(gpu_stream, bs, ls, ds, exact, ERR));
		for (int64_t e = 0; e < n * nseg; e++)
		{
			if (lc[e] != lg[e])
				differ++;
			else if (RelDiff(dc[e], dg[e]) > worst)
				worst = RelDiff(dc[e], dg[e]);
		}
		CHECK(differ <= 1e-4 * n * nseg, "%s exact=%d: %lld of %lld labels differ", c->name, exact,
			  (long long) differ, (long long) (n * nseg));
		/* expanded distances of tiny values lose digits to cancellation; exact ones do not */
		if (exact || !km_use_gemm(d, k))
			CHECK(worst <= 1e-5, "%s exact=%d: distance off by %.3g relative", c->name, exact, worst);
		CHECK(memcmp(lg, lg2, sizeof(int32_t) * n * nseg) == 0 &&
			  memcmp(dg, dg2, sizeof(float) * n * nseg) == 0,
			  "%s exact=%d: two GPU runs differ", c->name, exact);
		CHECK(memcmp(lg, ls, sizeof(int32_t) * n * nseg) == 0 &&
			  memcmp(dg, ds, sizeof(float) * n * nseg) == 0,
			  "%s exact=%d: streamed block differs from resident", c->name, exact);
		if (!km_use_gemm(d, k))
			CHECK(memcmp(lc, lg, sizeof(int32_t) * n * nseg) == 0,
				  "%s: small-d labels not identical to the CPU's", c->name);
	}

	/* accumulate the CPU's labels on both; then the fused step on the GPU */
	{
		KmAccum		ac,
					ag,
					ag2,
					af;
		double		worst_sum = 0.0,
					worst_in = 0.0,
					scale = 0.0;
		int			counts_equal = 1;

		MUST(cpu->steps->assign(cpu, bc, lc, dc, 1, ERR));
		AccumAlloc(&ac, k, d);
		AccumAlloc(&ag, k, d);
		AccumAlloc(&ag2, k, d);
		AccumAlloc(&af, k, d);
		MUST(cpu->steps->accumulate(cpu, bc, nseg, lc, dc, &ac, ERR));
		MUST(gpu->steps->accumulate(gpu, bg, nseg, lc, dc, &ag, ERR));
		MUST(gpu_stream->steps->accumulate(gpu_stream, bs, nseg, lc, dc, &ag2, ERR));
		for (int64_t q = 0; q < (int64_t) k * d; q++)
			if (fabs(ac.sums[q]) > scale)
				scale = fabs(ac.sums[q]);
		for (int64_t q = 0; q < (int64_t) k * d; q++)
			if (fabs(ac.sums[q] - ag.sums[q]) / (scale > 0 ? scale : 1) > worst_sum)
				worst_sum = fabs(ac.sums[q] - ag.sums[q]) / (scale > 0 ? scale : 1);
		for (int j = 0; j < k; j++)
		{
			counts_equal &= ac.counts[j] == ag.counts[j];
			if (RelDiff(ac.inertia[j], ag.inertia[j]) > worst_in)
				worst_in = RelDiff(ac.inertia[j], ag.inertia[j]);
		}
		CHECK(counts_equal, "%s: counts differ", c->name);
		CHECK(worst_sum <= 1e-12, "%s: sums off by %.3g of the largest", c->name, worst_sum);
		CHECK(worst_in <= 1e-9, "%s: inertia off by %.3g relative", c->name, worst_in);
		CHECK(memcmp(ag.sums, ag2.sums, sizeof(double) * k * d) == 0 &&
			  memcmp(ag.inertia, ag2.inertia, sizeof(double) * k) == 0,
			  "%s: streamed accumulation differs", c->name);

		MUST(gpu->steps->assign(gpu, bg, lg, dg, 0, ERR));
		memset(ag.sums, 0, sizeof(double) * k * d);
		memset(ag.counts, 0, sizeof(int64_t) * k);
		memset(ag.inertia, 0, sizeof(double) * k);
		MUST(gpu->steps->accumulate(gpu, bg, nseg, lg, dg, &ag, ERR));
		MUST(gpu->steps->assign_accumulate(gpu, bg, lg2, dg2, 0, &af, ERR));
		CHECK(memcmp(lg, lg2, sizeof(int32_t) * n * nseg) == 0 &&
			  AccumSame(&ag, &af),
			  "%s: assign_accumulate differs from assign then accumulate", c->name);
		AccumFree(&ac);
		AccumFree(&ag);
		AccumFree(&ag2);
		AccumFree(&af);
	}

	/* k-means++ steps: mindist from +Inf, then the potentials of a few candidates */
	{
		float	   *mc = malloc(sizeof(float) * n);
		float	   *mg = malloc(sizeof(float) * n);
		double	   *sc = calloc(runs, sizeof(double));
		double	   *sg = calloc(runs, sizeof(double));
		double	   *sg2 = calloc(runs, sizeof(double));
		int			t = k < 5 ? k : 5;
		/* the candidates: centers 1 .. t-1, or center 0 when it is the only one */
		int			tc = t > 1 ? t - 1 : 1;
		const float *c2 = centers + d * (k > 1);
		double		pc[5] = {0},
					pg[5] = {0},
					pg2[5] = {0};
		double		worst = 0.0;

		for (int64_t i = 0; i < n; i++)
			mc[i] = mg[i] = INFINITY;
		MUST(cpu->steps->mindist_update(cpu, bc, centers, mc, sc, ERR));
		MUST(gpu->steps->mindist_update(gpu, bg, centers, mg, sg, ERR));
		for (int64_t i = 0; i < n; i++)
		{
			/* the CPU scores large d by the expansion: compare on the scale of the norms */
			double		tol = km_use_gemm(d, 1) ? 1e-5 * (1.0 + fabs(mc[i])) + 1e-5 : 0.0;

			if (fabs((double) mc[i] - mg[i]) > tol + 1e-6 * fabs(mc[i]))
				worst = 1.0;
		}
		CHECK(worst == 0.0, "%s: mindist differs", c->name);
		for (int64_t r = 0; r < runs; r++)
			CHECK(RelDiff(sc[r], sg[r]) <= 1e-5, "%s: run %lld sum %.9g vs %.9g", c->name,
				  (long long) r, sc[r], sg[r]);
		MUST(cpu->steps->potentials(cpu, bc, c2, tc, mc, pc, ERR));
		MUST(gpu->steps->potentials(gpu, bg, c2, tc, mg, pg, ERR));
		MUST(gpu->steps->potentials(gpu, bg, c2, tc, mg, pg2, ERR));
		for (int j = 0; j < tc; j++)
			CHECK(RelDiff(pc[j], pg[j]) <= 1e-5, "%s: potential %d: %.9g vs %.9g", c->name, j,
				  pc[j], pg[j]);
		CHECK(memcmp(pg, pg2, sizeof(pg)) == 0, "%s: two GPU potentials differ", c->name);
		/* a second center lowers some of the distances and keeps the others */
		memcpy(mg, mc, sizeof(float) * n);
		MUST(cpu->steps->mindist_update(cpu, bc, c2, mc, sc, ERR));
		MUST(gpu->steps->mindist_update(gpu, bg, c2, mg, sg2, ERR));
		for (int64_t r = 0; r < runs; r++)
			CHECK(RelDiff(sc[r], sg2[r]) <= 1e-5, "%s: second center, run %lld sum %.9g vs %.9g",
				  c->name, (long long) r, sc[r], sg2[r]);

		/*
		 * The same steps with mindist kept on the device (seed_*), resident and streamed:
		 * the same bits as the host-array operations, whose mindist mh follows along.
		 */
		{
			float	   *mh = malloc(sizeof(float) * n),
					   *mf = malloc(sizeof(float) * n);
			double	   *sh = calloc(runs, sizeof(double)),
					   *sd = calloc(runs, sizeof(double)),
					   *ss = calloc(runs, sizeof(double));
			double		ph[5] = {0},
						pd[5] = {0},
						ps[5] = {0};

			for (int64_t i = 0; i < n; i++)
				mh[i] = INFINITY;
			MUST(gpu->ops->seed_begin(gpu, n, ERR));
			MUST(gpu_stream->ops->seed_begin(gpu_stream, n, ERR));
			MUST(gpu->steps->mindist_update(gpu, bg, centers, mh, sh, ERR));
			MUST(gpu->ops->seed_update(gpu, bg, 0, centers, sd, ERR));
			MUST(gpu_stream->ops->seed_update(gpu_stream, bs, 0, centers, ss, ERR));
			MUST(gpu->ops->seed_fetch(gpu, 0, n, mf, ERR));
			CHECK(memcmp(sh, sd, sizeof(double) * runs) == 0 && memcmp(sh, ss, sizeof(double) * runs) == 0 &&
				  memcmp(mh, mf, sizeof(float) * n) == 0,
				  "%s: first k-means++ step with mindist on the device differs", c->name);
			MUST(gpu->steps->potentials(gpu, bg, c2, tc, mh, ph, ERR));
			MUST(gpu->ops->seed_potentials(gpu, bg, 0, c2, tc, pd, ERR));
			MUST(gpu_stream->ops->seed_potentials(gpu_stream, bs, 0, c2, tc, ps, ERR));
			CHECK(memcmp(ph, pd, sizeof(ph)) == 0 && memcmp(ph, ps, sizeof(ph)) == 0,
				  "%s: potentials with mindist on the device differ", c->name);
			MUST(gpu->steps->mindist_update(gpu, bg, c2, mh, sh, ERR));
			MUST(gpu->ops->seed_update(gpu, bg, 0, c2, sd, ERR));
			MUST(gpu_stream->ops->seed_update(gpu_stream, bs, 0, c2, ss, ERR));
			MUST(gpu_stream->ops->seed_fetch(gpu_stream, n / 2, n - n / 2, mf + n / 2, ERR));
			MUST(gpu_stream->ops->seed_fetch(gpu_stream, 0, n / 2, mf, ERR));
			CHECK(memcmp(sh, sd, sizeof(double) * runs) == 0 && memcmp(sh, ss, sizeof(double) * runs) == 0 &&
				  memcmp(mh, mf, sizeof(float) * n) == 0,
				  "%s: second k-means++ step with mindist on the device differs", c->name);
			free(mh);
			free(mf);
			free(sh);
			free(sd);
			free(ss);
		}
		free(mc);
		free(mg);
		free(sc);
		free(sg);
		free(sg2);
	}

	/* silhouette of every labelling over the first rows (a sample, as the elbow takes) */
	{
		int64_t		s = n < 600 ? n : 600;
		int32_t    *lab = malloc(sizeof(int32_t) * s * nseg);
		double	   *oc = malloc(sizeof(double) * s * nseg);
		double	   *og = malloc(sizeof(double) * s * nseg);
		double		worst = 0.0;
		int			nan_ok = 1;

		MUST(cpu->steps->assign(cpu, bc, lc, dc, 1, ERR));
		for (int64_t i = 0; i < s; i++)
			for (int m = 0; m < nseg; m++)
				lab[i * nseg + m] = lc[i * nseg + m] - seg_off[m];
		MUST(cpu->ops->silhouette(cpu, xc, s, lab, nseg, c->ks, 0, s, oc, ERR));
		/* the GPU in two slices, as the elbow calls it: values land at their rows */
		MUST(gpu->ops->silhouette(gpu, xc, s, lab, nseg, c->ks, 0, s / 3, og, ERR));
		MUST(gpu->ops->silhouette(gpu, xc, s, lab, nseg, c->ks, s / 3, s, og, ERR));
		for (int64_t q = 0; q < s * nseg; q++)
		{
			if (isnan(oc[q]) || isnan(og[q]))
				nan_ok &= isnan(oc[q]) && isnan(og[q]);
			else if (fabs(oc[q] - og[q]) > worst)
				worst = fabs(oc[q] - og[q]);
		}
		CHECK(nan_ok, "%s: silhouette NaN in one backend only", c->name);
		CHECK(worst <= 1e-9, "%s: silhouette off by %.3g", c->name, worst);
		/* the cosine silhouette (1 - cos as half the squared distance) on both, then back */
		MUST(cpu->ops->set_metric(cpu, KM_METRIC_COSINE, ERR));
		MUST(gpu->ops->set_metric(gpu, KM_METRIC_COSINE, ERR));
		MUST(cpu->ops->silhouette(cpu, xc, s, lab, nseg, c->ks, 0, s, oc, ERR));
		MUST(gpu->ops->silhouette(gpu, xc, s, lab, nseg, c->ks, 0, s, og, ERR));
		worst = 0.0;
		for (int64_t q = 0; q < s * nseg; q++)
			if (!isnan(oc[q]) && fabs(oc[q] - og[q]) > worst)
				worst = fabs(oc[q] - og[q]);
		CHECK(worst <= 1e-9, "%s: cosine silhouette off by %.3g", c->name, worst);
		MUST(cpu->ops->set_metric(cpu, KM_METRIC_EUCLIDEAN, ERR));
		MUST(gpu->ops->set_metric(gpu, KM_METRIC_EUCLIDEAN, ERR));
		free(lab);
		free(oc);
		free(og);
	}

	cpu->ops->block_destroy(cpu, bc);
	gpu->ops->block_destroy(gpu, bg);
	gpu_stream->ops->block_destroy(gpu_stream, bs);
	free(x0);
	free(xc);
	free(xg);
	free(xs);
	free(centers);
	free(shift);
	free(lc);
	free(lg);
	free(lg2);
	free(ls);
	free(dc);
	free(dg);
	free(dg2);
	free(ds);
}

/*
 * One pass over n rows made block by block in buf, as the reader streams a source: with
 * block_create, buf is spoilt once pass_block has returned; with batch_create (batch), as
 * soon as the block is made, since the backend must not read it after that.
 */
static void
StreamPass(KmBackend *be, int batch, const float *x0, int64_t n, int d, int64_t bsize, float *buf,
		   int nseg, const int *segs, int reset, KmAccum *acc, int64_t *changed)
{
	MUST(be->ops->pass_begin(be, n, nseg, segs, reset, 0, 1, ERR));
	for (int64_t b = 0; b * bsize < n; b++)
	{
		int64_t		m = n - b * bsize < bsize ? n - b * bsize : bsize;
		KmBlock    *blk;

		memcpy(buf, x0 + b * bsize * d, sizeof(float) * m * d);
		if (batch)
		{
			MUST(be->ops->batch_create(be, buf, NULL, m, NULL, &blk, ERR));
			for (int64_t q = 0; q < m * d; q++)
				buf[q] = -1e30f;
		}
		else
			MUST(be->ops->block_create(be, buf, NULL, m, NULL, &blk, ERR));
		MUST(be->ops->pass_block(be, blk, b * bsize, ERR));
		be->ops->block_destroy(be, blk);
		for (int64_t q = 0; q < m * d; q++)
			buf[q] = 1e30f;
	}
	MUST(be->ops->pass_end(be, acc, changed, ERR));
}

/*
 * Lloyd passes with the state on the device (pass_begin .. pass_end) against the same blocks
 * taken one at a time through assign_accumulate, with the state kept here as km_state.c keeps
 * it: the totals must be bit-identical, the changed counts equal and the fetched state the
 * same.  Two passes, the second from the means of the first, so that some labels change and
 * some do not; with several segments, only some of them installed, as a converged k of an
 * elbow drops out.  On `resident` the blocks stay on the device; on `staged` they are created
 * in one host buffer that is overwritten as soon as pass_block returns, as the reader does
 * when it streams the source, so they go through the pinned staging slots.
 */
static void
RunPasses(const Case *c, KmBackend *resident, KmBackend *staged)
{
	int64_t		n = c->n;
	int			d = c->d;
	int			nseg = c->nseg;
	int			nrun = 0;
	int			segs[4],
				off[5] = {0};
	int			k;
	int64_t		bsize = n > 2048 ? 1024 : (n > 64 ? n / 3 + 1 : n);
	int64_t		nblk = (n + bsize - 1) / bsize;
	KmRng		rng;
	float	   *x0 = malloc(sizeof(float) * n * d),
			   *xr = malloc(sizeof(float) * n * d),
			   *xs = malloc(sizeof(float) * n * d),
			   *buf = malloc(sizeof(float) * bsize * d),
			   *centers;
	KmBlock   **blocks,
			  **sblocks;
	RefState	rs;
	int32_t    *st_ref,
			   *st_got;
	float	   *sd_ref,
			   *sd_got;

	/* every other segment installed (all of them when there is one) */
	for (int s = 0; s < nseg; s++)
		if (nseg == 1 || s % 2 == 0)
		{
			segs[nrun] = s;
			off[nrun + 1] = off[nrun] + c->ks[s];
			nrun++;
		}
	k = off[nrun];
	centers = malloc(sizeof(float) * k * d);
	km_rng_seed(&rng, (uint64_t) n * 17 + d);
	{
		int			kall = 0;
		float	   *cfull;

		for (int s = 0; s < nseg; s++)
			kall += c->ks[s];
		cfull = malloc(sizeof(float) * kall * d);
		MakeData(c, &rng, x0, cfull, kall);
		/* the installed segments' centers, taken from the full set */
		for (int r = 0, src = 0, s = 0; s < nseg; src += c->ks[s], s++)
			if (r < nrun && segs[r] == s)
			{
				memcpy(centers + (int64_t) off[r] * d, cfull + (int64_t) src * d,
					   sizeof(float) * c->ks[s] * d);
				r++;
			}
		free(cfull);
	}
	memcpy(xr, x0, sizeof(float) * n * d);
	memcpy(xs, x0, sizeof(float) * n * d);
	blocks = MakeBlocks(resident, xr, n, d, bsize);
	/* kept on the host (no room on the device): more blocks than staging slots */
	sblocks = MakeBlocks(staged, xs, n, d, bsize);
	RefStateAlloc(&rs, n, nseg, bsize);
	st_ref = rs.labels;
	sd_ref = rs.dist;
	st_got = rs.got_labels;
	sd_got = rs.got_dist;

	for (int pass = 0; pass < 2; pass++)
	{
		KmAccum		ref,
					got,
					got2,
					got3;
		int64_t		ch_ref[4] = {0},
					ch_got[4] = {0},
					ch_got2[4] = {0},
					ch_got3[4] = {0};

		AccumAlloc(&ref, k, d);
		AccumAlloc(&got, k, d);
		AccumAlloc(&got2, k, d);
		AccumAlloc(&got3, k, d);
		MUST(resident->ops->set_centers(resident, centers, d, nrun, off, ERR));
		MUST(staged->ops->set_centers(staged, centers, d, nrun, off, ERR));

		/* the reference: a block at a time, the state kept here */
		ReferencePass(resident, blocks, nblk, bsize, nrun, segs, off, 0, &rs, &ref, ch_ref);

		/* resident blocks */
		MUST(resident->ops->pass_begin(resident, n, nseg, segs, pass == 0, 0, 1, ERR));
		for (int64_t b = 0; b < nblk; b++)
			MUST(resident->ops->pass_block(resident, blocks[b], b * bsize, ERR));
		MUST(resident->ops->pass_end(resident, &got, ch_got, ERR));

		/* staged: each block made in the one buffer, which is spoilt once it is handed over */
		StreamPass(staged, 0, x0, n, d, bsize, buf, nseg, segs, pass == 0, &got2, ch_got2);

		/* the same as streamed batches (batch_create) on the backend with room to spare */
		{
			KmAccum		gb;
			int64_t		ch_b[4] = {0};

			AccumAlloc(&gb, k, d);
			StreamPass(resident, 1, x0, n, d, bsize, buf, nseg, segs, pass == 0, &gb, ch_b);
			CHECK(AccumSame(&ref, &gb),
				  "%s pass %d: streamed batches differ from assign_accumulate's", c->name, pass);
			/* the resident pass just above has already brought the state up to date */
			CHECK(pass == 0 ? memcmp(ch_ref, ch_b, sizeof(ch_ref)) == 0 : ch_b[0] == 0,
				  "%s pass %d: streamed batches changed %lld", c->name, pass, (long long) ch_b[0]);
			AccumFree(&gb);
		}

		/* blocks kept on the host go through the staging slots in turn, twice over */
		for (int twice = 0; twice < 2; twice++)
		{
			memset(got3.sums, 0, sizeof(double) * k * d);
			memset(got3.counts, 0, sizeof(int64_t) * k);
			memset(got3.inertia, 0, sizeof(double) * k);
			MUST(staged->ops->pass_begin(staged, n, nseg, segs, 0, 0, 1, ERR));
			for (int64_t b = 0; b < nblk; b++)
				MUST(staged->ops->pass_block(staged, sblocks[b], b * bsize, ERR));
			MUST(staged->ops->pass_end(staged, &got3, ch_got3, ERR));
		}
		CHECK(AccumSame(&ref, &got3) && ch_got3[0] == 0,
			  "%s pass %d: host-kept blocks through the staging slots differ (changed %lld)",
			  c->name, pass, (long long) ch_got3[0]);

		CHECK(AccumSame(&ref, &got),
			  "%s pass %d: resident pass totals differ from assign_accumulate's", c->name, pass);
		CHECK(AccumSame(&ref, &got2),
			  "%s pass %d: staged pass totals differ from assign_accumulate's", c->name, pass);
		CHECK(memcmp(ch_ref, ch_got, sizeof(ch_ref)) == 0 &&
			  memcmp(ch_ref, ch_got2, sizeof(ch_ref)) == 0,
			  "%s pass %d: changed %lld/%lld/%lld, reference %lld", c->name, pass,
			  (long long) ch_got[0], (long long) ch_got2[0], (long long) ch_got[nrun - 1],
			  (long long) ch_ref[0]);
		if (pass == 0)
			for (int r = 0; r < nrun; r++)
				CHECK(ch_got[r] == n, "%s: first pass changed %lld of %lld rows", c->name,
					  (long long) ch_got[r], (long long) n);

		/* the state: installed segments as the reference left them, the others still -1 */
		MUST(resident->ops->state_fetch(resident, 0, n, st_got, sd_got, ERR));
		{
			int			same = 1;

			for (int64_t e = 0; e < n * nseg; e++)
			{
				int			installed = 0;

				for (int r = 0; r < nrun; r++)
					installed |= segs[r] == (int) (e % nseg);
				if (installed)
					same &= st_got[e] == st_ref[e] && memcmp(&sd_got[e], &sd_ref[e], sizeof(float)) == 0;
				else
					same &= st_got[e] == -1;
			}
			CHECK(same, "%s pass %d: fetched state differs", c->name, pass);
		}
		/* in two ranges of rows */
		MUST(staged->ops->state_fetch(staged, n / 2, n - n / 2, st_got + n / 2 * nseg,
									  sd_got + n / 2 * nseg, ERR));
		MUST(staged->ops->state_fetch(staged, 0, n / 2, st_got, sd_got, ERR));
		{
			int			same = 1;

			for (int r = 0; r < nrun; r++)
				for (int64_t i = 0; i < n; i++)
				{
					int64_t		e = i * nseg + segs[r];

					same &= st_got[e] == st_ref[e] && memcmp(&sd_got[e], &sd_ref[e], sizeof(float)) == 0;
				}
			CHECK(same, "%s pass %d: staged state differs", c->name, pass);
		}

		/* the next centers: the means (an empty cluster keeps its center) */
		for (int j = 0; j < k; j++)
			if (ref.counts[j] > 0)
				for (int t = 0; t < d; t++)
					centers[(int64_t) j * d + t] = (float) (ref.sums[(int64_t) j * d + t] / ref.counts[j]);
		AccumFree(&ref);
		AccumFree(&got);
		AccumFree(&got2);
		AccumFree(&got3);
	}

	/*
	 * An exact pass (the final one of a fit) on both: the totals and distances of
	 * assign_accumulate with exact distances.
	 */
	{
		KmAccum		ref,
					got,
					got2;
		int64_t		ch[4],
					ch2[4],
					ch_ref[4];
		int			same = 1;

		AccumAlloc(&ref, k, d);
		AccumAlloc(&got, k, d);
		AccumAlloc(&got2, k, d);
		MUST(resident->ops->set_centers(resident, centers, d, nrun, off, ERR));
		MUST(staged->ops->set_centers(staged, centers, d, nrun, off, ERR));
		ReferencePass(resident, blocks, nblk, bsize, nrun, segs, off, 1, &rs, &ref, ch_ref);
		MUST(resident->ops->pass_begin(resident, n, nseg, segs, 0, 1, 1, ERR));
		MUST(staged->ops->pass_begin(staged, n, nseg, segs, 0, 1, 1, ERR));
		for (int64_t b = 0; b < nblk; b++)
		{
			MUST(resident->ops->pass_block(resident, blocks[b], b * bsize, ERR));
			MUST(staged->ops->pass_block(staged, sblocks[b], b * bsize, ERR));
		}
		MUST(resident->ops->pass_end(resident, &got, ch, ERR));
		MUST(staged->ops->pass_end(staged, &got2, ch2, ERR));
		CHECK(memcmp(ref.sums, got.sums, sizeof(double) * k * d) == 0 &&
			  memcmp(ref.inertia, got.inertia, sizeof(double) * k) == 0 &&
			  memcmp(ref.sums, got2.sums, sizeof(double) * k * d) == 0 &&
			  memcmp(ref.inertia, got2.inertia, sizeof(double) * k) == 0,
			  "%s: exact pass totals differ from assign_accumulate's", c->name);
		MUST(staged->ops->state_fetch(staged, 0, n, st_got, sd_got, ERR));
		for (int r = 0; r < nrun; r++)
			for (int64_t i = 0; i < n; i++)
				same &= memcmp(&sd_got[i * nseg + segs[r]], &sd_ref[i * nseg + segs[r]],
							   sizeof(float)) == 0;
		CHECK(same, "%s: exact distances differ", c->name);
		AccumFree(&ref);
		AccumFree(&got);
		AccumFree(&got2);
	}

	/*
	 * k-means++ distances on both (seed_begin .. seed_fetch): the same bits, from the device
	 * or, where the device has no room, from host memory.  Blocks must start at multiples of
	 * KM_SUB_ROWS for the run sums.
	 */
	if (bsize % KM_SUB_ROWS == 0 || nblk == 1)
	{
		int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
		double	   *s1 = calloc(runs, sizeof(double)),
				   *s2 = calloc(runs, sizeof(double));
		float	   *m1 = malloc(sizeof(float) * n),
				   *m2 = malloc(sizeof(float) * n);
		double		p1[2] = {0},
					p2[2] = {0};

		MUST(resident->ops->seed_begin(resident, n, ERR));
		MUST(staged->ops->seed_begin(staged, n, ERR));
		for (int step = 0; step < 2; step++)
			for (int64_t b = 0; b < nblk; b++)
			{
				const float *cs = centers + (int64_t) (step * (k - 1)) * d;

				MUST(resident->ops->seed_update(resident, blocks[b], b * bsize, cs,
												s1 + b * bsize / KM_SUB_ROWS, ERR));
				MUST(staged->ops->seed_update(staged, sblocks[b], b * bsize, cs,
											  s2 + b * bsize / KM_SUB_ROWS, ERR));
			}
		for (int64_t b = 0; b < nblk; b++)
		{
			MUST(resident->ops->seed_potentials(resident, blocks[b], b * bsize, centers, 2, p1, ERR));
			MUST(staged->ops->seed_potentials(staged, sblocks[b], b * bsize, centers, 2, p2, ERR));
		}
		MUST(resident->ops->seed_fetch(resident, 0, n, m1, ERR));
		MUST(staged->ops->seed_fetch(staged, 0, n, m2, ERR));
		CHECK(memcmp(s1, s2, sizeof(double) * runs) == 0 && memcmp(m1, m2, sizeof(float) * n) == 0 &&
			  memcmp(p1, p2, sizeof(p1)) == 0, "%s: k-means++ distances differ", c->name);
		free(s1);
		free(s2);
		free(m1);
		free(m2);
	}

	/* a reset starts the labels afresh: every row counts as changed */
	{
		KmAccum		a;
		int64_t		ch[4] = {0};

		AccumAlloc(&a, k, d);
		MUST(resident->ops->set_centers(resident, centers, d, nrun, off, ERR));
		MUST(resident->ops->pass_begin(resident, n, nseg, segs, 1, 0, 1, ERR));
		for (int64_t b = 0; b < nblk; b++)
			MUST(resident->ops->pass_block(resident, blocks[b], b * bsize, ERR));
		MUST(resident->ops->pass_end(resident, &a, ch, ERR));
		CHECK(ch[0] == n, "%s: after a reset %lld of %lld rows changed", c->name, (long long) ch[0],
			  (long long) n);
		AccumFree(&a);
	}

	FreeBlocks(resident, blocks, nblk);
	FreeBlocks(staged, sblocks, nblk);
	free(x0);
	free(xr);
	free(xs);
	free(buf);
	free(centers);
	RefStateFree(&rs);
}

/*
 * A pass without keep (pass_begin's keep = 0, mini-batch's final pass) on a GPU with room,
 * where the state stays on the device, and on one whose budget a filler block has used up,
 * where the pass goes through host memory with no state: the totals of assign_accumulate
 * block by block and, fetched right after each block, its labels and distances, bit for bit
 * (400,000 rows leave no room for their state in 16 MB; 5,000 do).  A pass with keep and
 * reset afterwards starts from fresh labels on both.
 */
static void
TestStateless(int64_t n, int d, int k, size_t limit)
{
	int64_t		bsize = 1024;
	int64_t		nblk = (n + bsize - 1) / bsize;
	int			segs[1] = {0},
				off[2] = {0, k};
	int64_t		nfill = (int64_t) (limit - limit / 8) / (4 * (d + 1));
	float	   *fill = calloc((size_t) nfill * d, sizeof(float)),
			   *x = malloc(sizeof(float) * n * d),
			   *c = malloc(sizeof(float) * k * d),
			   *rd = malloc(sizeof(float) * n),
			   *dd = malloc(sizeof(float) * bsize);
	int32_t    *rl = malloc(sizeof(int32_t) * n),
			   *l = malloc(sizeof(int32_t) * bsize);
	KmBackend  *be[2];
	KmBlock    *filler;
	KmRng		rng;

	km_rng_seed(&rng, (uint64_t) n * 3 + d);
	for (int64_t q = 0; q < n * d; q++)
		x[q] = (float) ((q / d) % 5) * 2.0f + (float) km_rng_uniform(&rng);
	for (int j = 0; j < k; j++)
		memcpy(c + (int64_t) j * d, x + (int64_t) (j * 41 % n) * d, sizeof(float) * d);
	MUST(km_cuda_backend_create(0, d, 0, &be[0], ERR));
	MUST(km_cuda_backend_create(0, d, limit, &be[1], ERR));
	MUST(be[1]->ops->block_create(be[1], fill, NULL, nfill, NULL, &filler, ERR));
	for (int b = 0; b < 2; b++)
	{
		const char *name = b == 0 ? "with room" : "in 16 MB";
		KmAccum		ref,
					got,
					again;
		int64_t		ch[1];
		int			same = 1;

		AccumAlloc(&ref, k, d);
		AccumAlloc(&got, k, d);
		AccumAlloc(&again, k, d);
		MUST(be[b]->ops->set_centers(be[b], c, d, 1, off, ERR));
		/* each block made just before it is used, as a streamed source's are */
		for (int pass = 0; pass < 3; pass++)
		{
			if (pass > 0)
				MUST(be[b]->ops->pass_begin(be[b], n, 1, segs, 1, 1, pass == 2, ERR));
			for (int64_t q = 0; q < nblk; q++)
			{
				int64_t		m = n - q * bsize < bsize ? n - q * bsize : bsize;
				KmBlock    *blk;

				MUST(be[b]->ops->block_create(be[b], x + q * bsize * d, NULL, m, NULL, &blk, ERR));
				if (pass == 0)
					MUST(be[b]->steps->assign_accumulate(be[b], blk, rl + q * bsize, rd + q * bsize,
														 1, &ref, ERR));
				else
					MUST(be[b]->ops->pass_block(be[b], blk, q * bsize, ERR));
				be[b]->ops->block_destroy(be[b], blk);
				if (pass != 1)
					continue;
				MUST(be[b]->ops->state_fetch(be[b], q * bsize, m, l, dd, ERR));
				same &= memcmp(l, rl + q * bsize, sizeof(int32_t) * m) == 0 &&
					memcmp(dd, rd + q * bsize, sizeof(float) * m) == 0;
			}
			if (pass > 0)
				MUST(be[b]->ops->pass_end(be[b], pass == 1 ? &got : &again, ch, ERR));
		}
		CHECK(AccumSame(&ref, &got) && same,
			  "GPU %s: a pass without state differs from assign_accumulate's (labels %s)", name,
			  same ? "equal" : "differ");
		CHECK(AccumSame(&ref, &again) && ch[0] == n,
			  "GPU %s: a kept pass after one without: changed %lld of %lld", name,
			  (long long) ch[0], (long long) n);
		AccumFree(&ref);
		AccumFree(&got);
		AccumFree(&again);
	}
	be[1]->ops->block_destroy(be[1], filler);
	be[0]->ops->destroy(be[0]);
	be[1]->ops->destroy(be[1]);
	free(fill);
	free(x);
	free(c);
	free(rd);
	free(dd);
	free(rl);
	free(l);
}

/* The budget: an allocation over it fails with a message that gives both sizes in MB. */
static void
TestBudget(void)
{
	KmBackend  *gpu;
	KmBlock    *blk;
	KmError		err = {0};
	float		x[64] = {1, 2, 3, 4};	/* one row of the backend's d = 64 */
	int			seg_off[2] = {0, 100000};
	float	   *c = calloc((size_t) 100000 * 64, sizeof(float));
	KmStatus	st;

	MUST(km_cuda_backend_create(0, 64, 1 << 20, &gpu, ERR));
	st = gpu->ops->set_centers(gpu, c, 64, 1, seg_off, &err);
	CHECK(st == KM_ERR_DEVICE_NOMEM && strstr(err.message, "MB") != NULL,
		  "centers over the budget: status %d, \"%s\"", (int) st, err.message);
	/* the backend stays usable after the failure */
	MUST(gpu->ops->block_create(gpu, x, NULL, 1, NULL, &blk, ERR));
	gpu->ops->block_destroy(gpu, blk);
	gpu->ops->destroy(gpu);
	free(c);
}

/*
 * A case on fresh backends: a GPU with room, and one whose budget (limit) a resident filler
 * block has nearly used up, leaving limit / 8, so that the case's blocks cannot stay on the
 * device and go through the staging slots.  With all, every operation against the CPU too; else the passes alone.
 */
static void
RunOnBackends(const Case *c, int all, size_t limit)
{
	KmBackend  *cpu = NULL,
			   *gpu,
			   *gpu_stream;
	KmBlock    *filler;
	int			d = c->d;
	int64_t		nfill = (int64_t) (limit - limit / 8) / (4 * (d + 1));
	float	   *fill = calloc((size_t) nfill * d, sizeof(float));

	MUST(km_cuda_backend_create(0, d, 0, &gpu, ERR));
	MUST(km_cuda_backend_create(0, d, limit, &gpu_stream, ERR));
	MUST(gpu_stream->ops->block_create(gpu_stream, fill, NULL, nfill, NULL, &filler, ERR));
	if (all)
	{
		MUST(km_cpu_backend_create(2, d, &cpu, ERR));
		RunCase(c, cpu, gpu, gpu_stream);
		cpu->ops->destroy(cpu);
	}
	RunPasses(c, gpu, gpu_stream);
	gpu_stream->ops->block_destroy(gpu_stream, filler);
	gpu->ops->destroy(gpu);
	gpu_stream->ops->destroy(gpu_stream);
	free(fill);
}

/*
 * KM_METRIC_IOU: boxes (w, h) in two segments (k = 9 and k = 40), the GPU against the CPU:
 * labels and costs of an assignment, k-means++ distances and potentials, bit for bit (IouCost
 * and km_iou_cost do the same operations, none contracted), and the silhouette of 1 - IoU
 * within 1e-9; the metric is refused for d != 2.
 */
static void
TestIouBackends(void)
{
	int64_t		n = 5000;
	int			seg_off[3] = {0, 9, 49};
	int			k = seg_off[2];
	float	   *x = malloc(sizeof(float) * n * 2);
	float	   *xg = malloc(sizeof(float) * n * 2);
	float	   *c = malloc(sizeof(float) * k * 2);
	int32_t    *lc = malloc(sizeof(int32_t) * n * 2),
			   *lg = malloc(sizeof(int32_t) * n * 2);
	float	   *dc = malloc(sizeof(float) * n * 2),
			   *dg = malloc(sizeof(float) * n * 2),
			   *mc = malloc(sizeof(float) * n),
			   *mg = malloc(sizeof(float) * n);
	double	   *sc = malloc(sizeof(double) * (n / KM_SUB_ROWS + 1)),
			   *sg = malloc(sizeof(double) * (n / KM_SUB_ROWS + 1));
	double		pc[3] = {0},
				pg[3] = {0};
	int64_t		s = 600;
	int32_t    *lab = malloc(sizeof(int32_t) * s);
	double	   *oc = malloc(sizeof(double) * s),
			   *og = malloc(sizeof(double) * s);
	int			ks[1] = {9};
	double		worst = 0.0;
	KmBackend  *cpu,
			   *gpu;
	KmBlock    *bc,
			   *bg;
	KmError		err = {0};

	rng_state = 4242;
	for (int64_t i = 0; i < n * 2; i++)
		x[i] = 50.5f + 49.5f * RandUnit();	/* boxes of 1 .. 100 */
	for (int j = 0; j < k * 2; j++)
		c[j] = 50.5f + 49.5f * RandUnit();
	memcpy(xg, x, sizeof(float) * n * 2);
	MUST(km_cpu_backend_create(2, 2, &cpu, ERR));
	MUST(km_cuda_backend_create(0, 2, 0, &gpu, ERR));
	MUST(cpu->ops->set_metric(cpu, KM_METRIC_IOU, ERR));
	MUST(gpu->ops->set_metric(gpu, KM_METRIC_IOU, ERR));
	MUST(cpu->ops->block_create(cpu, x, NULL, n, NULL, &bc, ERR));
	MUST(gpu->ops->block_create(gpu, xg, NULL, n, NULL, &bg, ERR));
	MUST(cpu->ops->set_centers(cpu, c, 2, 2, seg_off, ERR));
	MUST(gpu->ops->set_centers(gpu, c, 2, 2, seg_off, ERR));
	MUST(cpu->steps->assign(cpu, bc, lc, dc, 1, ERR));
	MUST(gpu->steps->assign(gpu, bg, lg, dg, 1, ERR));
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
	/* KM_FMAF fuses here as the GPU's __fmaf_rn always does: the same bits */
	CHECK(memcmp(lc, lg, sizeof(int32_t) * n * 2) == 0 && memcmp(dc, dg, sizeof(float) * n * 2) == 0,
		  "iou: GPU assignment differs from the CPU's");
#else
	{
		/* a CPU build without FMA rounds the union twice: costs within rounding, labels but ties */
		int			off = 0;

		for (int64_t e = 0; e < n * 2; e++)
			if (fabsf(dc[e] - dg[e]) > 1e-6f || (lc[e] != lg[e] && fabsf(dc[e] - dg[e]) > 0.0f &&
												  fabsf(km_iou_cost(x + (e / 2) * 2, c + lc[e] * 2) -
														km_iou_cost(x + (e / 2) * 2, c + lg[e] * 2)) > 1e-6f))
				off++;
		CHECK(off == 0, "iou: %d GPU assignments differ from the CPU's beyond rounding", off);
	}
#endif
	for (int64_t i = 0; i < n; i++)
		mc[i] = mg[i] = INFINITY;
	MUST(cpu->steps->mindist_update(cpu, bc, c, mc, sc, ERR));
	MUST(gpu->steps->mindist_update(gpu, bg, c, mg, sg, ERR));
	MUST(cpu->steps->potentials(cpu, bc, c + 2, 3, mc, pc, ERR));
	MUST(gpu->steps->potentials(gpu, bg, c + 2, 3, mg, pg, ERR));
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
	CHECK(memcmp(mc, mg, sizeof(float) * n) == 0 &&
		  memcmp(sc, sg, sizeof(double) * (n / KM_SUB_ROWS + 1)) == 0 &&
		  memcmp(pc, pg, sizeof(pc)) == 0, "iou: GPU k-means++ steps differ from the CPU's");
#else
	worst = 0.0;
	for (int64_t i = 0; i < n; i++)
		worst = fmax(worst, fabs((double) mc[i] - mg[i]));
	for (int j = 0; j < 3; j++)
		worst = fmax(worst, fabs(pc[j] - pg[j]) / fmax(pc[j], 1e-30));
	CHECK(worst <= 1e-6, "iou: GPU k-means++ steps differ from the CPU's by %.3g", worst);
	worst = 0.0;
#endif
	for (int64_t i = 0; i < s; i++)
		lab[i] = lc[i * 2];
	MUST(cpu->ops->silhouette(cpu, x, s, lab, 1, ks, 0, s, oc, ERR));
	MUST(gpu->ops->silhouette(gpu, x, s, lab, 1, ks, 0, s, og, ERR));
	for (int64_t i = 0; i < s; i++)
		worst = fmax(worst, fabs(oc[i] - og[i]));
	CHECK(worst <= 1e-9, "iou: GPU silhouette off by %.3g", worst);
	cpu->ops->block_destroy(cpu, bc);
	gpu->ops->block_destroy(gpu, bg);
	cpu->ops->destroy(cpu);
	gpu->ops->destroy(gpu);
	MUST(km_cuda_backend_create(0, 3, 0, &gpu, ERR));
	CHECK(gpu->ops->set_metric(gpu, KM_METRIC_IOU, &err) == KM_ERR_UNSUPPORTED,
		  "gpu: set_metric iou for d = 3 was accepted");
	gpu->ops->destroy(gpu);
	free(x);
	free(xg);
	free(c);
	free(lc);
	free(lg);
	free(dc);
	free(dg);
	free(mc);
	free(mg);
	free(sc);
	free(sg);
	free(lab);
	free(oc);
	free(og);
}


/* ---------------------------------------------------------------------------------------------
 * DTW assignment (series_assign)
 * ------------------------------------------------------------------------------------------- */

/* n series of lmin .. lmax samples, noisy sines of random frequency and phase. */
static void
SeriesRows(KmSeries *s, int64_t n, int lmin, int lmax, float **values, int64_t **off)
{
	*off = malloc(sizeof(int64_t) * (n + 1));
	(*off)[0] = 0;
	for (int64_t i = 0; i < n; i++)
		(*off)[i + 1] = (*off)[i] + lmin + RandBelow(lmax - lmin + 1);
	*values = malloc(sizeof(float) * (*off)[n]);
	for (int64_t i = 0; i < n; i++)
	{
		float		f = 0.2f + 0.1f * RandUnit(),
					phase = 3.0f * RandUnit();

		for (int64_t t = (*off)[i]; t < (*off)[i + 1]; t++)
			(*values)[t] = sinf((float) (t - (*off)[i]) * f + phase) + 0.1f * RandUnit();
	}
	s->n = n;
	s->values = *values;
	s->off = *off;
	s->w = NULL;
}

/*
 * k centers of lc samples with all 53 bits in use, as DBA's means have them; every third
 * from the third on is a copy of an earlier one, so that rows meet exact ties.
 */
static void
SeriesCenters(double *c, int k, int lc)
{
	for (int j = 0; j < k; j++)
	{
		double		f = 0.2 + 0.1 * RandUnit(),
					phase = 3.0 * RandUnit();

		if (j % 3 == 2)
		{
			memcpy(c + (int64_t) j * lc, c + (int64_t) RandBelow(j) * lc, sizeof(double) * lc);
			continue;
		}
		for (int t = 0; t < lc; t++)
			c[(int64_t) j * lc + t] = sin(t * f + phase) + 0.1 * RandUnit() / 3.0;
	}
}

/* Rows of [r0, r1) whose label or DTW^2 bits differ. */
static int64_t
SeriesDiffer(const int32_t *la, const double *da, const int32_t *lb, const double *db, int64_t r0,
			 int64_t r1)
{
	int64_t		differ = 0;

	for (int64_t i = r0; i < r1; i++)
		differ += la[i] != lb[i] || memcmp(&da[i], &db[i], sizeof(double)) != 0;
	return differ;
}

/* Rows of [r0, r1) whose label or distance was written. */
static int64_t
SeriesTouched(const int32_t *l, const double *d, int64_t r0, int64_t r1)
{
	int64_t		touched = 0;

	for (int64_t i = r0; i < r1; i++)
		touched += l[i] != -7 || d[i] != -7.0;
	return touched;
}

static void
SeriesClear(int32_t *l, double *d, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
	{
		l[i] = -7;
		d[i] = -7.0;
	}
}

/*
 * One series case: the GPU against km_dtw_assign (unpruned, and pruned: the same bits by its
 * contract), bit for bit, for each band and k: the automatic choice on all rows, in calls cut
 * at odd rows; the pair kernel on all rows; the wave kernel on the last `wave_rows` (the
 * emulator runs its barriers slowly), leaving the others untouched.  The CPU backend's
 * series_assign is km_dtw_assign too.  Ties are counted, and must occur where k > 2.
 */
static void
SeriesCase(const char *name, int64_t n, int lmin, int lmax, int lc, const int *bands, int nbands,
		   const int *ks, int nks, int64_t wave_rows)
{
	KmSeries	s;
	float	   *values;
	int64_t    *off;
	double	   *c = malloc(sizeof(double) * 40 * lc);
	int32_t    *lr = malloc(sizeof(int32_t) * n),
			   *lp = malloc(sizeof(int32_t) * n),
			   *lg = malloc(sizeof(int32_t) * n);
	double	   *dr = malloc(sizeof(double) * n),
			   *dp = malloc(sizeof(double) * n),
			   *dg = malloc(sizeof(double) * n),
			   *work = malloc(sizeof(double) * 2 * (lc + 1));
	KmBackend  *gpu,
			   *cpu;
	int64_t		w0 = n - wave_rows;

	SeriesRows(&s, n, lmin, lmax, &values, &off);
	MUST(km_cuda_backend_create(0, 1, 0, &gpu, ERR));
	MUST(km_cpu_backend_create(3, 1, &cpu, ERR));
	for (int bi = 0; bi < nbands; bi++)
		for (int ki = 0; ki < nks; ki++)
		{
			int			k = ks[ki];
			KmDtwCenters cs = {k, lc, bands[bi], c, 0, NULL, NULL};
			int64_t		ties = 0;
			int64_t		cut[4] = {0, 1, 8 < n ? 8 : n, n};

			SeriesCenters(c, k, lc);
			MUST(km_dtw_assign(&s, 0, n, &cs, 0, NULL, 1, lr, dr, NULL, ERR));
			MUST(km_dtw_assign(&s, 0, n, &cs, 1, NULL, 2, lp, dp, NULL, ERR));
			CHECK(SeriesDiffer(lr, dr, lp, dp, 0, n) == 0, "%s band %d k %d: pruned CPU differs",
				  name, bands[bi], k);
			SeriesClear(lp, dp, n);
			MUST(cpu->ops->series_assign(cpu, &s, 0, n, &cs, lp, dp, ERR));
			CHECK(SeriesDiffer(lr, dr, lp, dp, 0, n) == 0,
				  "%s band %d k %d: the CPU backend's series_assign differs", name, bands[bi], k);

			/* the automatic choice, in calls of 1, 7 and the other rows */
			gpu->series_kernel = KM_SERIES_AUTO;
			SeriesClear(lg, dg, n);
			for (int q = 0; q < 3; q++)
				MUST(gpu->ops->series_assign(gpu, &s, cut[q], cut[q + 1], &cs, lg, dg, ERR));
			CHECK(SeriesDiffer(lr, dr, lg, dg, 0, n) == 0,
				  "%s band %d k %d: %lld GPU rows differ from km_dtw_assign", name, bands[bi], k,
				  (long long) SeriesDiffer(lr, dr, lg, dg, 0, n));
			gpu->series_kernel = KM_SERIES_PAIR;
			SeriesClear(lg, dg, n);
			MUST(gpu->ops->series_assign(gpu, &s, 0, n, &cs, lg, dg, ERR));
			CHECK(SeriesDiffer(lr, dr, lg, dg, 0, n) == 0,
				  "%s band %d k %d: %lld rows of the pair kernel differ", name, bands[bi], k,
				  (long long) SeriesDiffer(lr, dr, lg, dg, 0, n));
			gpu->series_kernel = KM_SERIES_WAVE;
			SeriesClear(lg, dg, n);
			MUST(gpu->ops->series_assign(gpu, &s, w0, n, &cs, lg, dg, ERR));
			CHECK(SeriesDiffer(lr, dr, lg, dg, w0, n) == 0 && SeriesTouched(lg, dg, 0, w0) == 0,
				  "%s band %d k %d: %lld rows of the wave kernel differ, %lld outside the call written",
				  name, bands[bi], k, (long long) SeriesDiffer(lr, dr, lg, dg, w0, n),
				  (long long) SeriesTouched(lg, dg, 0, w0));
			gpu->series_kernel = KM_SERIES_AUTO;

			/* rows at the same least DTW^2 from another center: the lowest index must win */
			for (int64_t i = 0; i < n; i++)
				for (int j = lr[i] + 1; j < k; j++)
					ties += km_dtw_sq(values + off[i], (int) (off[i + 1] - off[i]), c + (int64_t) j * lc,
									  lc, bands[bi], INFINITY, work) == dr[i];
			CHECK(k < 3 || ties > 0, "%s band %d k %d: no row meets a tie", name, bands[bi], k);
		}
	cpu->ops->destroy(cpu);
	gpu->ops->destroy(gpu);
	free(values);
	free(off);
	free(c);
	free(lr);
	free(lp);
	free(lg);
	free(dr);
	free(dp);
	free(dg);
	free(work);
}

/*
 * The planted faults, each kernel: a DTW that ignores the band, or fuses each cell's square and
 * add, must differ from km_dtw_assign on some rows (the comparison above can fail); a budget
 * that holds the data but not the scratch it would like gives the same bits with less; one
 * that cannot hold the data is refused with the sizes; bad rows are refused.
 */
static void
TestSeriesFaults(void)
{
	const int64_t n = 120;
	const int	lc = 33,
				k = 17;
	KmSeries	s;
	float	   *values;
	int64_t    *off;
	double	   *c = malloc(sizeof(double) * k * lc);
	KmDtwCenters cs = {k, lc, 2, c, 0, NULL, NULL};
	int32_t		lr[120],
				lg[120];
	double		dr[120],
				dg[120];
	KmBackend  *gpu;
	KmError		err = {0};
	KmStatus	st;

	rng_state = 777;
	SeriesRows(&s, n, 2, 40, &values, &off);
	SeriesCenters(c, k, lc);
	MUST(km_dtw_assign(&s, 0, n, &cs, 0, NULL, 1, lr, dr, NULL, ERR));
	MUST(km_cuda_backend_create(0, 1, 0, &gpu, ERR));
	for (int kern = KM_SERIES_PAIR; kern <= KM_SERIES_WAVE; kern++)
		for (int fault = KM_SERIES_FAULT_BAND; fault <= KM_SERIES_FAULT_FMA; fault++)
		{
			int64_t		r0 = kern == KM_SERIES_WAVE ? n - 30 : 0;
			int64_t		differ;

			gpu->series_kernel = (KmSeriesKernel) kern;
			gpu->series_fault = (KmSeriesFault) fault;
			MUST(gpu->ops->series_assign(gpu, &s, r0, n, &cs, lg, dg, ERR));
			differ = SeriesDiffer(lr, dr, lg, dg, r0, n);
			CHECK(differ > 0, "series: kernel %d with fault %d gives km_dtw_assign's bits: the test cannot see it",
				  kern, fault);
		}
	gpu->series_kernel = KM_SERIES_AUTO;
	gpu->series_fault = KM_SERIES_FAULT_NONE;
	gpu->ops->destroy(gpu);

	/*
	 * The data is 33 kB (the 120 x 17 DTW^2 half of it) and the pair kernel's scratch for all
	 * 2040 pairs 1.1 MB (8 blocks of 256 threads, 2 x 34 doubles each): within 2 MB it all
	 * fits; within 0.7 MB the kernel runs on 4 blocks, each thread taking more pairs.
	 */
	for (int lim = 0; lim < 2; lim++)
	{
		MUST(km_cuda_backend_create(0, 1, lim == 0 ? 2 << 20 : 700 << 10, &gpu, ERR));
		gpu->series_kernel = KM_SERIES_PAIR;
		MUST(gpu->ops->series_assign(gpu, &s, 0, n, &cs, lg, dg, ERR));
		CHECK(SeriesDiffer(lr, dr, lg, dg, 0, n) == 0, "series: %s budget changes the bits",
			  lim == 0 ? "a 2 MB" : "a 0.7 MB");
		gpu->ops->destroy(gpu);
	}
	/* 16 kB cannot hold the data */
	MUST(km_cuda_backend_create(0, 1, 16 << 10, &gpu, ERR));
	st = gpu->ops->series_assign(gpu, &s, 0, n, &cs, lg, dg, &err);
	CHECK(st == KM_ERR_DEVICE_NOMEM && strstr(err.message, "MB of GPU memory") != NULL &&
		  strstr(err.message, "MB budget") != NULL,
		  "series: over the budget: status %d, \"%s\"", (int) st, err.message);
	st = gpu->ops->series_assign(gpu, &s, 0, n + 1, &cs, lg, dg, &err);
	CHECK(st == KM_ERR_ARGUMENT, "series: rows past the end: status %d", (int) st);
	st = gpu->ops->series_assign(gpu, &s, 5, 5, &cs, lg, dg, &err);
	CHECK(st == KM_OK, "series: no rows: status %d", (int) st);
	gpu->ops->destroy(gpu);
	free(values);
	free(off);
	free(c);
}

/*
 * DTW assignment of series on the GPU: short series of mixed lengths (1 to 40 samples against
 * centers of 33: longer and shorter rows), where the pair kernel serves; long ones (60 to 150
 * against 128), where the wave kernel does, in several tiles of rows and columns; centers of
 * one sample; each with and without a band.
 */
static void
TestSeriesAssign(int quick)
{
	static const int short_bands[] = {-1, 0, 2, 7, 1000},
				short_ks[] = {1, 2, 5, 17, 40},
				long_bands[] = {-1, 5},
				long_ks[] = {1, 6, 40},
				one_bands[] = {-1, 0},
				one_ks[] = {3};

	rng_state = 2024;
	SeriesCase("short", 300, 1, 40, 33, short_bands, quick ? 2 : 5, short_ks, 5, 37);
	SeriesCase("long", 24, 60, 150, 128, long_bands, 2, long_ks, quick ? 2 : 3, 24);
	SeriesCase("center of one sample", 50, 1, 5, 1, one_bands, 2, one_ks, 1, 50);
	TestSeriesFaults();
}

int
main(void)
{
	char		desc[256];
	KmError		err = {0};
	Case		cases[] = {
		{"uniform d=4 k=7", 3000, 4, 1, {7}, 0, 0},
		{"clustered d=10 elbow 3,4,5", 2500, 10, 3, {3, 4, 5}, 1, 1},
		{"ties d=3 k=6", 1200, 3, 1, {6}, 2, 0},
		{"duplicates d=2 k=5", 1100, 2, 1, {5}, 3, 0},
		{"far away d=5 k=4", 1500, 5, 1, {4}, 4, 0},
		{"k=1 d=6", 700, 6, 1, {1}, 0, 1},
		{"k=n d=3", 40, 3, 1, {40}, 0, 1},
		{"gemm d=40 k=13", 1300, 40, 1, {13}, 0, 0},
		{"gemm clustered d=24 elbow 2,3", 1100, 24, 2, {2, 3}, 1, 0},
		{"gemm far away d=20 k=6", 900, 20, 1, {6}, 4, 0},
		{"gemm ties d=17 k=5", 600, 17, 1, {5}, 2, 0},
		{"gemm d=33 k=70", 800, 33, 1, {70}, 0, 0},
		{"gemm duplicates d=20 k=40", 500, 20, 1, {40}, 3, 0},
		{"wide clustered d=48 elbow 3,5,8", 1500, 48, 3, {3, 5, 8}, 1, 0},
		{"wide ties d=300 k=9", 400, 300, 1, {9}, 2, 1},
	};
	const char *q = getenv("KM_TEST_QUICK");
	int			quick = q != NULL && strcmp(q, "0") != 0;

	if (km_cuda_probe(0, desc, sizeof(desc), &err) != KM_OK)
	{
		printf("skipped: %s\n", err.message);
		printf("0 passed, 0 failed\n");
		return 0;
	}
	printf("device: %s%s\n", desc, quick ? "; the quick cases only (KM_TEST_QUICK)" : "");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!quick || cases[i].quick)
			RunOnBackends(&cases[i], 1, 16 << 20);
	TestBudget();
	TestStateless(400000, 4, 9, 16 << 20);
	TestStateless(5000, 40, 33, 16 << 20);
	TestIouBackends();
	TestSeriesAssign(quick);
	{
		KmBackend  *gpu;

		float		x[4] = {0, 0, 1, 1},
					w[2] = {1, 2};
		KmBlock    *blk = NULL;
		KmError		err = {0};
		KmStatus	st;

		MUST(km_cuda_backend_create(0, 2, 0, &gpu, ERR));
		TestStateMisuse("gpu", gpu);
		/* the GPU backend does not weigh rows: weighted blocks are refused, never unweighted */
		st = gpu->ops->block_create(gpu, x, w, 2, NULL, &blk, &err);
		CHECK(st == KM_ERR_UNSUPPORTED && blk == NULL, "gpu: weighted block_create: status %d", (int) st);
		st = gpu->ops->batch_create(gpu, x, w, 2, NULL, &blk, &err);
		CHECK(st == KM_ERR_UNSUPPORTED && blk == NULL, "gpu: weighted batch_create: status %d", (int) st);
		gpu->ops->destroy(gpu);
	}

	/*
	 * A fit whose state does not fit on the device: the backend whose budget the filler has
	 * nearly used up (256 kB left of 2 MB) cannot hold 100,000 rows' labels and distances
	 * (0.8 MB) nor their k-means++ distances (0.4 MB), so its passes and seeding keep them in
	 * host memory (km_state.c), with the same bits as the backend with room.  Not one of the
	 * quick cases: valgrind runs those (KM_TEST_QUICK).
	 */
	if (!quick)
	{
		Case		big = {"state in host memory d=4 k=7", 100000, 4, 1, {7}, 0, 0};

		RunOnBackends(&big, 0, 2 << 20);
	}

	/*
	 * A host that refuses to pin memory (the emulator plays one; a GPU ignores the variable):
	 * staging falls back to pageable buffers with the same results.
	 */
	setenv("KM_EMU_NO_PINNED", "1", 1);
	for (size_t i = 0; i < 2; i++)
		if (!quick || cases[i].quick)
			RunOnBackends(&cases[i], 0, 16 << 20);
	unsetenv("KM_EMU_NO_PINNED");
#ifdef KM_CUDA_EMU
	/* every backend is destroyed: its device memory, pinned buffers and events went with it */
	CHECK(km_cuda_emu_live() == 0, "%zu device allocations, pinned buffers or events left",
		  km_cuda_emu_live());
#endif
	return TestReport();
}
