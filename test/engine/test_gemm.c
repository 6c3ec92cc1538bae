/*
 * test_gemm.c -- checks km_gemm_argmin against plain reference loops.
 *
 * Each case packs a set of centers, runs km_gemm_argmin and compares it with
 *   - a float64 reference triple loop: every best score within 1e-5 of the reference scaled by
 *     |x|^2 + |c|^2, and every label's reference score within that tolerance of the reference
 *     minimum (labels may differ only where the two best scores are that close);
 *   - a float32 reference with the operations of km_argmin_ref (fused multiply-adds in
 *     coordinate order): labels and scores must be bit-identical;
 *   - itself: a second call, and calls on random splits of the rows, must be bit-identical;
 * and checks that no label is a later duplicate of an identical center in its segment (exact
 * ties keep the lowest index), that empty segments give their start and +inf, and that nothing
 * is written past the outputs.  Prints each failing case and ends with "N passed, M failed".
 *
 * Build: gcc -O3 -march=native -std=gnu11 -Wall -Wextra -Werror -Ikernels kernels/km_gemm.c
 *        test/engine/test_gemm.c -lm -o test_gemm
 */
#include "km_kernels.h"
#include "test_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-5
#define GUARD 16				/* extra output slots checked for stray writes */
#define MAX_REPORT 5			/* mismatches printed per failing case */

typedef enum DataKind
{
	DATA_RANDOM,				/* uniform in [-1, 1) */
	DATA_DUPLICATES,			/* centers drawn from a few distinct ones: exact ties */
	DATA_ROWS_ARE_CENTERS,		/* every row a copy of a center */
	DATA_OFFSET,				/* a large common offset: heavy cancellation */
	DATA_INTEGERS,				/* small integers: exact arithmetic, ties between distinct centers */
	DATA_ZERO_ROWS,				/* rows of zeros: the score is cnorm alone */
	DATA_HUGE,					/* most centers so large that |c|^2 and the score are +inf */
	DATA_NKINDS
} DataKind;

static const char *const kind_names[DATA_NKINDS] = {
	"random", "duplicates", "rows=centers", "offset", "integers", "zero-rows", "huge"
};

typedef enum SegKind
{
	SEG_ONE,					/* one segment of all k centers */
	SEG_UNEVEN,					/* random sizes, some empty */
	SEG_ELBOW					/* sizes 3, 4, 5, ... as an elbow run makes them */
} SegKind;

static const char *const seg_names[] = {"one", "uneven", "elbow"};

/* float64 score of row x against center j: cnorm[j] - 2 x.c_j with the dot in double. */
static double
Score64(const float *x, const float *c, int d, float cnorm)
{
	double		dot = 0.0;

	for (int t = 0; t < d; t++)
		dot += (double) x[t] * c[t];
	return (double) cnorm - 2.0 * dot;
}

/*
 * The references, both plain triple loops over rows, segments and centers with the lowest
 * index kept on ties and +inf and the segment start for an empty segment:
 *   - float64: score cnorm[j] - 2 x.c_j with the dot product in double (labels64, best64);
 *   - float32 with km_argmin_ref's arithmetic: dot = x0 c0, then fused multiply-adds in
 *     coordinate order, score = fl(cnorm - 2 dot) (labels32, best32).
 * One pass computes both, so that their two dependency chains overlap.
 */
static void
RefArgmin(const float *x, int64_t n, int d, const float *c, const float *cnorm,
		  int nseg, const int *seg_off, int32_t *labels64, double *best64,
		  int32_t *labels32, float *best32)
{
	for (int64_t i = 0; i < n; i++)
	{
		const float *xi = x + i * d;

		for (int s = 0; s < nseg; s++)
		{
			int			arg64 = seg_off[s];
			int			arg32 = seg_off[s];
			double		min64 = INFINITY;
			float		min32 = INFINITY;

			for (int j = seg_off[s]; j < seg_off[s + 1]; j++)
			{
				const float *cj = c + (int64_t) j * d;
				double		dot64 = (double) xi[0] * cj[0];
				float		dot32 = xi[0] * cj[0];
				double		v64;
				float		v32;

				for (int t = 1; t < d; t++)
				{
					dot64 += (double) xi[t] * cj[t];
					dot32 = KM_FMAF(xi[t], cj[t], dot32);
				}
				v64 = (double) cnorm[j] - 2.0 * dot64;
				v32 = KM_FMAF(-2.0f, dot32, cnorm[j]);
				if (v64 < min64)
				{
					min64 = v64;
					arg64 = j;
				}
				if (v32 < min32)
				{
					min32 = v32;
					arg32 = j;
				}
			}
			labels64[i * nseg + s] = arg64;
			best64[i * nseg + s] = min64;
			labels32[i * nseg + s] = arg32;
			best32[i * nseg + s] = min32;
		}
	}
}

/* Squared norm in double. */
static double
Norm2(const float *v, int d)
{
	double		s = 0.0;

	for (int t = 0; t < d; t++)
		s += (double) v[t] * v[t];
	return s;
}

/* Fills x (n x d) and c (k x d) for a data kind. */
static void
MakeData(DataKind kind, float *x, int64_t n, float *c, int k, int d)
{
	size_t		nx = (size_t) n * d;
	size_t		nc = (size_t) k * d;

	switch (kind)
	{
		case DATA_RANDOM:
		case DATA_ZERO_ROWS:
			RandFill(c, nc, 0.0f);
			for (size_t i = 0; i < nx; i++)
				x[i] = kind == DATA_RANDOM ? RandUnit() : 0.0f;
			break;
		case DATA_DUPLICATES:
			/* Later centers copy earlier ones; rows sit on or near the copies. */
			RandDuplicateCenters(c, k, d);
			for (int64_t i = 0; i < n; i++)
			{
				const float *src = c + (size_t) RandBelow(k) * d;

				for (int t = 0; t < d; t++)
					x[i * d + t] = (i % 2) ? src[t] : src[t] + 0.01f * RandUnit();
			}
			break;
		case DATA_ROWS_ARE_CENTERS:
			RandFill(c, nc, 0.0f);
			RandRowsOfCenters(x, n, c, k, d);
			break;
		case DATA_OFFSET:
			RandFill(c, nc, 1000.0f);
			RandFill(x, nx, 1000.0f);
			break;
		case DATA_INTEGERS:
			for (size_t i = 0; i < nc; i++)
				c[i] = (float) (RandBelow(3) - 1);
			for (size_t i = 0; i < nx; i++)
				x[i] = (float) (RandBelow(5) - 2);
			break;
		case DATA_HUGE:
			/* Every third center finite; a segment of only huge ones must give its start. */
			for (int j = 0; j < k; j++)
				for (int t = 0; t < d; t++)
					c[(size_t) j * d + t] = RandUnit() * (j % 3 == 2 ? 1.0f : 1e20f);
			RandFill(x, nx, 0.0f);
			break;
		case DATA_NKINDS:
			break;
	}
}

/* Segment offsets for a layout; returns the number of segments. */
static int
MakeSegments(SegKind sk, int k, int *seg_off)
{
	int			nseg = 0;

	seg_off[0] = 0;
	if (sk == SEG_ONE || k == 1)
	{
		seg_off[1] = k;
		return 1;
	}
	if (sk == SEG_ELBOW)
	{
		/* 3, 4, 5, ... and a last segment with what is left. */
		for (int size = 3; seg_off[nseg] < k; size++)
		{
			seg_off[nseg + 1] = seg_off[nseg] + (size < k - seg_off[nseg] ? size : k - seg_off[nseg]);
			nseg++;
		}
		return nseg;
	}
	/* Uneven: empty segments included, at the start, in the middle and at the end. */
	seg_off[++nseg] = 0;
	while (seg_off[nseg] < k)
	{
		/* At most k empty segments in the middle, so that 2 k + 2 offsets are enough. */
		int			size = (RandBelow(4) == 0 && nseg <= k) ? 0 : 1 + RandBelow(k / 3 + 2);

		if (size > k - seg_off[nseg])
			size = k - seg_off[nseg];
		seg_off[nseg + 1] = seg_off[nseg] + size;
		nseg++;
	}
	seg_off[nseg + 1] = k;
	nseg++;
	return nseg;
}

/* Runs km_gemm_argmin on random splits of the rows, as the threads of the backend do. */
static void
RunSplit(const float *x, int64_t n, int d, const void *packed, const float *cnorm, int nseg,
		 const int *seg_off, int32_t *labels, float *best)
{
	int64_t		i0 = 0;

	while (i0 < n)
	{
		int64_t		m = 1 + RandBelow(70);

		if (m > n - i0)
			m = n - i0;
		km_gemm_argmin(x + i0 * d, m, d, packed, cnorm, nseg, seg_off, labels + i0 * nseg,
					   best + i0 * nseg);
		i0 += m;
	}
}

/* Prints the case name before its first complaint, then up to MAX_REPORT complaints. */
static void Complain(int *failed, const char *name, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static void
Complain(int *failed, const char *name, const char *fmt,...)
{
	va_list		ap;

	if (*failed == 0)
		printf("FAIL %s\n", name);
	if (*failed < MAX_REPORT)
	{
		printf("    ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	(*failed)++;
}

/* One test case: data kind, segment layout, d, k, n. */
static void
RunCase(DataKind kind, SegKind sk, int d, int k, int64_t n)
{
	int		   *seg_off = Alloc(sizeof(int) * (2 * k + 4));
	int			nseg = MakeSegments(sk, k, seg_off);
	size_t		nout = (size_t) n * nseg;
	float	   *x = Alloc(sizeof(float) * (size_t) n * d);
	float	   *c = Alloc(sizeof(float) * (size_t) k * d);
	float	   *cnorm = Alloc(sizeof(float) * k);
	size_t		psize = km_gemm_packed_size(k, d);
	void	   *packed = aligned_alloc(64, (psize + 63) & ~(size_t) 63);
	int32_t    *labels = Alloc(sizeof(int32_t) * (nout + GUARD));
	float	   *best = Alloc(sizeof(float) * (nout + GUARD));
	int32_t    *labels2 = Alloc(sizeof(int32_t) * (nout + GUARD));
	float	   *best2 = Alloc(sizeof(float) * (nout + GUARD));
	int32_t    *rlabels = Alloc(sizeof(int32_t) * (nout + 1));
	double	   *rbest = Alloc(sizeof(double) * (nout + 1));
	int32_t    *flabels = Alloc(sizeof(int32_t) * (nout + 1));
	float	   *fbest = Alloc(sizeof(float) * (nout + 1));
	double	   *xnorm = Alloc(sizeof(double) * (n + 1));
	char		name[160];
	int			failed = 0;

	if (packed == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	snprintf(name, sizeof(name), "d=%d k=%d n=%lld data=%s seg=%s(nseg=%d)",
			 d, k, (long long) n, kind_names[kind], seg_names[sk], nseg);

	MakeData(kind, x, n, c, k, d);
	for (int j = 0; j < k; j++)
	{
		const float *cj = c + (size_t) j * d;
		float		s = cj[0] * cj[0];

		for (int t = 1; t < d; t++)
			s = KM_FMAF(cj[t], cj[t], s);
		cnorm[j] = s;
	}
	for (int64_t i = 0; i < n; i++)
		xnorm[i] = Norm2(x + i * d, d);

	km_gemm_pack(c, k, d, packed);
	for (size_t o = 0; o < nout + GUARD; o++)
	{
		labels[o] = labels2[o] = -12345;
		best[o] = best2[o] = -12345.0f;
	}
	km_gemm_argmin(x, n, d, packed, cnorm, nseg, seg_off, labels, best);
	RefArgmin(x, n, d, c, cnorm, nseg, seg_off, rlabels, rbest, flabels, fbest);

	for (int64_t i = 0; i < n; i++)
	{
		for (int s = 0; s < nseg; s++)
		{
			size_t		o = (size_t) i * nseg + s;
			int			lab = labels[o];
			int			rlab = rlabels[o];

			if (seg_off[s] == seg_off[s + 1])
			{
				if (lab != seg_off[s] || !(isinf(best[o]) && best[o] > 0))
					Complain(&failed, name, "row %lld seg %d: empty segment gave label %d, best %g",
							 (long long) i, s, lab, best[o]);
				continue;
			}
			if (lab < seg_off[s] || lab >= seg_off[s + 1])
			{
				Complain(&failed, name, "row %lld seg %d: label %d outside the segment",
						 (long long) i, s, lab);
				continue;
			}
			if (isinf(rbest[o]))
			{
				/* No finite score: the segment start and +inf. */
				if (lab != rlab || !(isinf(best[o]) && best[o] > 0))
					Complain(&failed, name, "row %lld seg %d: label %d best %g, want %d and +inf",
							 (long long) i, s, lab, best[o], rlab);
			}
			else
			{
				double		tol = REL_TOL * (xnorm[i] + Norm2(c + (size_t) rlab * d, d));
				double		mine = Score64(x + i * d, c + (size_t) lab * d, d, cnorm[lab]);

				if (!(fabs((double) best[o] - rbest[o]) <= tol))
					Complain(&failed, name, "row %lld seg %d: best %.9g of label %d, reference %.9g "
							 "of label %d", (long long) i, s, best[o], lab, rbest[o], rlab);
				else if (lab != rlab && !(fabs(mine - rbest[o]) <= tol))
					Complain(&failed, name, "row %lld seg %d: label %d (reference score %.9g), "
							 "reference label %d (%.9g)", (long long) i, s, lab, mine, rlab,
							 rbest[o]);
			}
			/* Exact ties: an identical center earlier in the segment must have won. */
			for (int j = seg_off[s]; j < lab; j++)
			{
				if (memcmp(c + (size_t) j * d, c + (size_t) lab * d, sizeof(float) * d) == 0)
				{
					Complain(&failed, name, "row %lld seg %d: label %d is a later duplicate of center %d",
							 (long long) i, s, lab, j);
					break;
				}
			}
			if (lab != flabels[o] || memcmp(&best[o], &fbest[o], sizeof(float)) != 0)
				Complain(&failed, name, "row %lld seg %d: label %d best %.9g, float32 reference "
						 "label %d best %.9g", (long long) i, s, lab, best[o], flabels[o],
						 fbest[o]);
		}
	}
	for (size_t o = nout; o < nout + GUARD; o++)
	{
		if (labels[o] != -12345 || best[o] != -12345.0f)
		{
			Complain(&failed, name, "write past the outputs at slot %zu", o);
			break;
		}
	}

	/* Determinism: the same call again, then the rows in random pieces. */
	km_gemm_argmin(x, n, d, packed, cnorm, nseg, seg_off, labels2, best2);
	if (memcmp(labels, labels2, sizeof(int32_t) * nout) != 0 ||
		memcmp(best, best2, sizeof(float) * nout) != 0)
		Complain(&failed, name, "second call differs");
	RunSplit(x, n, d, packed, cnorm, nseg, seg_off, labels2, best2);
	if (memcmp(labels, labels2, sizeof(int32_t) * nout) != 0 ||
		memcmp(best, best2, sizeof(float) * nout) != 0)
		Complain(&failed, name, "split call differs");

	if (failed)
	{
		printf("    (%d problems)\n", failed);
		nfailed++;
	}
	else
		npassed++;

	free(seg_off);
	free(x);
	free(c);
	free(cnorm);
	free(packed);
	free(labels);
	free(best);
	free(labels2);
	free(best2);
	free(rlabels);
	free(rbest);
	free(flabels);
	free(fbest);
	free(xnorm);
}

int
main(void)
{
	static const int ds[] = {1, 3, 17, 100, 128, 257};
	static const int ks[] = {1, 2, 7, 1024};
	static const int64_t ns[] = {0, 1, 5, 1000};

	rng_state = 20240611;

	for (size_t a = 0; a < sizeof(ds) / sizeof(ds[0]); a++)
		for (size_t b = 0; b < sizeof(ks) / sizeof(ks[0]); b++)
			for (size_t e = 0; e < sizeof(ns) / sizeof(ns[0]); e++)
				for (int kind = 0; kind < DATA_NKINDS; kind++)
				{
					RunCase(kind, SEG_ONE, ds[a], ks[b], ns[e]);
					if (ks[b] > 1)
						RunCase(kind, SEG_UNEVEN, ds[a], ks[b], ns[e]);
				}

	/* The elbow shape: 47 segments of 3..49 centers, 1222 in all. */
	for (int kind = 0; kind < DATA_NKINDS; kind++)
		RunCase(kind, SEG_ELBOW, 100, 1222, 300);
	RunCase(DATA_RANDOM, SEG_ELBOW, 17, 1222, 100);

	/* d beyond one pass: sliced dot products, center blocks, odd slice lengths. */
	{
		static const int bigd[] = {511, 512, 513, 1100, 2049};
		static const int bigk[] = {1, 13, 15, 300};

		for (size_t a = 0; a < sizeof(bigd) / sizeof(bigd[0]); a++)
			for (size_t b = 0; b < sizeof(bigk) / sizeof(bigk[0]); b++)
			{
				RunCase(DATA_RANDOM, SEG_ONE, bigd[a], bigk[b], 67);
				RunCase(DATA_DUPLICATES, SEG_UNEVEN, bigd[a], bigk[b], 67);
				RunCase(DATA_OFFSET, SEG_UNEVEN, bigd[a], bigk[b], 33);
			}
	}

	/* Every width of the last center panel, for any tile width up to 29, and both tile kinds. */
	for (int k = 1; k <= 30; k++)
	{
		RunCase(DATA_RANDOM, SEG_ONE, 20, k, 40);
		RunCase(DATA_DUPLICATES, SEG_UNEVEN, 24, k, 40);
		RunCase(DATA_INTEGERS, SEG_UNEVEN, 600, k, 20);
	}

	/* Row counts around the register tile. */
	for (int64_t n = 13; n <= 67; n++)
		RunCase(DATA_ROWS_ARE_CENTERS, SEG_UNEVEN, 33, 29, n);

	return TestReport();
}
