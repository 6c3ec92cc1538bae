/*
 * test_screen.c -- checks the bfloat16 screen (km_screen_argmin) against a direct scan.
 *
 * The screen's contract is that its label is the argmin of km_dist2 over every center (lowest
 * index on ties) and its distance that km_dist2.  Each case compares it bit for bit with a
 * plain loop that calls km_dist2 for every (row, center), and also checks, in float64, that
 * the label's exact distance is within 1e-5 (relative to |x|^2 + |c|^2) of the exact minimum.
 * Calls on random splits of the rows must give the same bits, nothing may be written past the
 * outputs, and centers too large for the bound must be refused by km_screen_pack.
 *
 * The data kinds are chosen to break a wrong bound: near-duplicate centers whose differences
 * lie below bfloat16's resolution (about 2^-8 of a coordinate), so that the screened scores
 * cannot order them and every one of them must survive to the float32 comparison; exact
 * duplicates and rows equal to centers (exact ties); clustered blobs as in the benchmark; a
 * large common offset (huge norms, so the bound keeps almost everything); integers; zero rows;
 * and rows too large for the bound, which are scanned directly.
 *
 * Skips (exit 0, saying so) where the CPU or the build has no AVX512-BF16.
 */
#include "km_kernels.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 16
#define MAX_REPORT 5

typedef enum DataKind
{
	DATA_RANDOM,				/* uniform in [-1, 1) */
	DATA_BLOBS,					/* rows around a few centers, many centers per blob */
	DATA_SEPARATED,				/* one center per blob, as a converging fit has them */
	DATA_NEAR,					/* centers within bfloat16's resolution of each other */
	DATA_DUPLICATES,			/* centers drawn from a few distinct ones: exact ties */
	DATA_ROWS_ARE_CENTERS,		/* every row a copy of a center */
	DATA_OFFSET,				/* a large common offset: huge norms */
	DATA_INTEGERS,				/* small integers: ties between distinct centers */
	DATA_ZERO_ROWS,				/* rows of zeros */
	DATA_HUGE_ROWS,				/* some rows with |x|^2 over the bound's limit */
	DATA_ROUNDING,				/* the worst case of bfloat16 rounding: a wrong bound flips labels */
	DATA_RECORDS,				/* each center nearer than the last: full lists, compaction */
	DATA_NKINDS
} DataKind;

static const char *const kind_names[DATA_NKINDS] = {
	"random", "blobs", "separated", "near", "duplicates", "rows=centers", "offset", "integers", "zero-rows",
	"huge-rows", "rounding", "records"
};

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
		case DATA_HUGE_ROWS:
			RandFill(c, nc, 0.0f);
			for (size_t i = 0; i < nx; i++)
				x[i] = kind == DATA_ZERO_ROWS ? 0.0f : RandUnit();
			if (kind == DATA_HUGE_ROWS)
				for (int64_t i = 0; i < n; i += 3)
					x[(size_t) i * d] = 2e15f;
			break;
		case DATA_BLOBS:
		case DATA_SEPARATED:
			{
				int			nb = kind == DATA_BLOBS ? 8 : k;
				float	   *base = Alloc(sizeof(float) * nb * d);

				for (int b = 0; b < nb * d; b++)
					base[b] = 3.0f * RandUnit();
				for (int j = 0; j < k; j++)
					for (int t = 0; t < d; t++)
						c[(size_t) j * d + t] = base[(j % nb) * d + t] +
							(kind == DATA_BLOBS ? 0.5f : 0.1f) * RandUnit();
				for (int64_t i = 0; i < n; i++)
				{
					int			b = RandBelow(nb);

					for (int t = 0; t < d; t++)
						x[(size_t) i * d + t] = base[b * d + t] + 0.35f * RandUnit();
				}
				free(base);
			}
			break;
		case DATA_NEAR:
			{
				/* 4 bases; centers and rows differ from them by 2^-12 .. 2^-7 per coordinate */
				int			nb = 4;
				float	   *base = Alloc(sizeof(float) * nb * d);

				for (int b = 0; b < nb * d; b++)
					base[b] = RandUnit() + (RandUnit() > 0 ? 1.5f : -1.5f);
				for (int j = 0; j < k; j++)
				{
					float		eps = ldexpf(1.0f, -7 - RandBelow(6));

					for (int t = 0; t < d; t++)
						c[(size_t) j * d + t] = base[(j % nb) * d + t] * (1.0f + eps * RandUnit());
				}
				for (int64_t i = 0; i < n; i++)
				{
					int			b = RandBelow(nb);
					float		eps = ldexpf(1.0f, -7 - RandBelow(6));

					for (int t = 0; t < d; t++)
						x[(size_t) i * d + t] = base[b * d + t] * (1.0f + eps * RandUnit());
				}
				free(base);
			}
			break;
		case DATA_DUPLICATES:
			RandDuplicateCenters(c, k, d);
			RandFill(x, nx, 0.0f);
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
				c[i] = (float) RandBelow(3);
			for (size_t i = 0; i < nx; i++)
				x[i] = (float) RandBelow(3);
			break;
		case DATA_ROUNDING:
			{
				/*
				 * Rows are sign patterns (exact in bfloat16).  Center 2q + 1 is pattern q times
				 * v = 1 + 2^-8, which bfloat16 rounds down to 1 (a tie, to even); center 2q is
				 * pattern q times w = 1 + 3 2^-8, which it rounds up to 1 + 2^-6.  In exact
				 * arithmetic 2q + 1 is nearer to a row of pattern q (d 2^-16 against 9 d 2^-16),
				 * but the rounding makes 2q look nearer by about d 2^-6, the most two scores can
				 * be moved apart this way.  A bound a quarter of ours just holds; an eighth
				 * drops 2q + 1.
				 */
				int			npat = k / 2;
				const float v = 1.0f + 0x1p-8f;
				const float w = 1.0f + 0x3p-8f;

				for (int j = 0; j < k; j++)
				{
					uint64_t	bits = 0x9E3779B97F4A7C15ULL * (uint64_t) ((j / 2) % npat + 1);

					for (int t = 0; t < d; t++)
					{
						float		sign = (bits >> (t % 61)) & 1 ? -1.0f : 1.0f;

						c[(size_t) j * d + t] = sign * (j % 2 ? v : w);
					}
				}
				for (int64_t i = 0; i < n; i++)
				{
					uint64_t	bits = 0x9E3779B97F4A7C15ULL * (uint64_t) (RandBelow(npat) + 1);

					for (int t = 0; t < d; t++)
						x[(size_t) i * d + t] = (bits >> (t % 61)) & 1 ? -1.0f : 1.0f;
				}
			}
			break;
		case DATA_RECORDS:
			/* along the first axis, each center nearer to the rows (near 0) than the one before */
			for (int j = 0; j < k; j++)
				for (int t = 0; t < d; t++)
					c[(size_t) j * d + t] = (t == 0 ? 0.5f * (float) (k - j) : 0.0f) +
						0.01f * RandUnit();
			for (size_t i = 0; i < nx; i++)
				x[i] = 0.01f * RandUnit();
			break;
		case DATA_NKINDS:
			break;
	}
}

static void
Fail(const char *what, DataKind kind, int d, int k, int64_t n, int64_t row, const char *detail)
{
	if (row >= 0)
		printf("FAIL %s: %s d=%d k=%d n=%lld row %lld: %s\n", what, kind_names[kind], d, k,
			   (long long) n, (long long) row, detail);
	else
		printf("FAIL %s: %s d=%d k=%d n=%lld: %s\n", what, kind_names[kind], d, k, (long long) n,
			   detail);
}

/* One case: the screen against the direct scan and against float64, and split invariance. */
static void
RunCase(DataKind kind, int d, int k, int64_t n)
{
	float	   *x = Alloc(sizeof(float) * ((size_t) n * d + 1));
	float	   *c = Alloc(sizeof(float) * (size_t) k * d);
	float	   *norms = Alloc(sizeof(float) * (n + 1));
	void	   *packed = Alloc(km_screen_packed_size(k, d));
	int32_t    *lab = Alloc(sizeof(int32_t) * (n + GUARD));
	float	   *dist = Alloc(sizeof(float) * (n + GUARD));
	int32_t    *lab2 = Alloc(sizeof(int32_t) * (n + GUARD));
	float	   *dist2 = Alloc(sizeof(float) * (n + GUARD));
	int			bad = 0;
	char		msg[256];

	MakeData(kind, x, n, c, k, d);
	km_row_norms(x, n, d, norms);
	if (!km_screen_pack(c, k, d, packed))
	{
		Fail("pack", kind, d, k, n, -1, "refused ordinary centers");
		nfailed++;
		goto done;
	}
	for (int g = 0; g < GUARD; g++)
	{
		lab[n + g] = -7;
		dist[n + g] = -7.0f;
	}
	km_screen_argmin(x, norms, n, d, packed, c, lab, dist);

	for (int64_t i = 0; i < n && bad < MAX_REPORT; i++)
	{
		const float *xi = x + (size_t) i * d;
		int			arg = 0;
		float		best = INFINITY;
		double		min64 = INFINITY;
		double		lab64;
		double		scale;

		for (int j = 0; j < k; j++)
		{
			float		v = km_dist2(xi, c + (size_t) j * d, d);
			double		v64 = 0.0;

			if (v < best)
			{
				best = v;
				arg = j;
			}
			for (int t = 0; t < d; t++)
			{
				double		diff = (double) xi[t] - c[(size_t) j * d + t];

				v64 += diff * diff;
			}
			min64 = v64 < min64 ? v64 : min64;
		}
		if (lab[i] != arg || memcmp(&dist[i], &best, sizeof(float)) != 0)
		{
			snprintf(msg, sizeof(msg), "label %d dist %.9g, direct scan %d %.9g", lab[i],
					 (double) dist[i], arg, (double) best);
			Fail("scan", kind, d, k, n, i, msg);
			bad++;
			continue;
		}
		lab64 = 0.0;
		scale = 0.0;
		for (int t = 0; t < d; t++)
		{
			double		diff = (double) xi[t] - c[(size_t) lab[i] * d + t];

			lab64 += diff * diff;
			scale += (double) xi[t] * xi[t] + (double) c[(size_t) lab[i] * d + t] * c[(size_t) lab[i] * d + t];
		}
		if (lab64 - min64 > 1e-5 * scale)
		{
			snprintf(msg, sizeof(msg), "label %d at %.9g, exact minimum %.9g", lab[i], lab64,
					 min64);
			Fail("float64", kind, d, k, n, i, msg);
			bad++;
		}
	}
	for (int g = 0; g < GUARD; g++)
		if (lab[n + g] != -7 || dist[n + g] != -7.0f)
		{
			Fail("guard", kind, d, k, n, -1, "written past the outputs");
			bad++;
			break;
		}

	/* random splits: the same bits */
	if (n > 1 && bad == 0)
	{
		int64_t		at = 0;

		while (at < n)
		{
			int64_t		len = 1 + RandBelow((int) (n - at < 70 ? n - at : 70));

			km_screen_argmin(x + (size_t) at * d, norms + at, len, d, packed, c, lab2 + at,
							 dist2 + at);
			at += len;
		}
		if (memcmp(lab, lab2, sizeof(int32_t) * n) != 0 ||
			memcmp(dist, dist2, sizeof(float) * n) != 0)
		{
			Fail("split", kind, d, k, n, -1, "differs from the whole call");
			bad++;
		}
	}
	if (bad)
		nfailed++;
	else
		npassed++;
done:
	free(x);
	free(c);
	free(norms);
	free(packed);
	free(lab);
	free(dist);
	free(lab2);
	free(dist2);
}

/* Centers with a norm beyond the bound's limit are refused, and ordinary ones accepted. */
static void
CheckPackLimits(void)
{
	int			k = KM_SCREEN_MIN_K,
				d = 40;
	float	   *c = Alloc(sizeof(float) * k * d);
	void	   *packed = Alloc(km_screen_packed_size(k, d));

	for (int i = 0; i < k * d; i++)
		c[i] = RandUnit();
	if (km_screen_pack(c, k, d, packed))
		npassed++;
	else
	{
		Fail("pack", DATA_RANDOM, d, k, 0, -1, "refused ordinary centers");
		nfailed++;
	}
	c[5 * d + 3] = 3e15f;
	if (km_screen_pack(c, k, d, packed))
	{
		Fail("pack", DATA_RANDOM, d, k, 0, -1, "accepted a center with |c|^2 = 9e30");
		nfailed++;
	}
	else
		npassed++;
	free(c);
	free(packed);
}

/*
 * Through the CPU backend: an assignment takes the screen or, where its first piece of rows
 * shows that too many centers survive, the float32 kernel.  Either way each label must be a
 * nearest center (float64, 1e-5 of |x|^2 + |c|^2), the distance its km_dist2 when screened,
 * and one thread and two must give the same bits.  Blobs with one center each are screened;
 * uniform rows with 1,024 random centers at d = 768 are not (about 96 survivors a row, against
 * the 64 that the backend allows).  Which path ran shows in the distances: without exact the
 * float32 kernel's come from the expansion, the screen's are always km_dist2.
 */
static void
CheckBackend(DataKind kind, int d, int k, int64_t n, int expect_screen)
{
	float	   *x = Alloc(sizeof(float) * (size_t) n * d);
	float	   *x2 = Alloc(sizeof(float) * (size_t) n * d);
	float	   *c = Alloc(sizeof(float) * (size_t) k * d);
	int32_t    *lab[2];
	float	   *dist[2];
	int			seg_off[2] = {0, k};
	int			bad = 0;
	int			screened = 1;
	KmError		err = {0};

	MakeData(kind, x, n, c, k, d);
	memcpy(x2, x, sizeof(float) * (size_t) n * d);
	for (int th = 0; th < 2; th++)
	{
		KmBackend  *be = NULL;
		KmBlock    *blk = NULL;

		lab[th] = Alloc(sizeof(int32_t) * n);
		dist[th] = Alloc(sizeof(float) * n);
		if (km_cpu_backend_create(th + 1, d, &be, &err) != KM_OK ||
			be->ops->block_create(be, th ? x2 : x, NULL, n, NULL, &blk, &err) != KM_OK ||
			be->ops->set_centers(be, c, d, 1, seg_off, &err) != KM_OK ||
			be->steps->assign(be, blk, lab[th], dist[th], 0, &err) != KM_OK)
		{
			printf("FAIL backend: %s\n", err.message);
			nfailed++;
			return;
		}
		be->ops->block_destroy(be, blk);
		be->ops->destroy(be);
	}
	if (memcmp(lab[0], lab[1], sizeof(int32_t) * n) != 0 ||
		memcmp(dist[0], dist[1], sizeof(float) * n) != 0)
	{
		Fail("threads", kind, d, k, n, -1, "one thread and two differ");
		bad++;
	}
	for (int64_t i = 0; i < n && bad < MAX_REPORT; i++)
	{
		const float *xi = x + (size_t) i * d;
		double		min64 = INFINITY;
		double		lab64 = 0.0;
		double		scale = 0.0;

		for (int j = 0; j < k; j++)
		{
			double		v64 = 0.0;

			for (int t = 0; t < d; t++)
			{
				double		diff = (double) xi[t] - c[(size_t) j * d + t];

				v64 += diff * diff;
			}
			min64 = v64 < min64 ? v64 : min64;
			if (j == lab[0][i])
			{
				lab64 = v64;
				for (int t = 0; t < d; t++)
					scale += (double) xi[t] * xi[t] + (double) c[(size_t) j * d + t] * c[(size_t) j * d + t];
			}
		}
		if (lab64 - min64 > 1e-5 * scale)
		{
			char		msg[128];

			snprintf(msg, sizeof(msg), "label %d at %.9g, exact minimum %.9g", lab[0][i], lab64,
					 min64);
			Fail("backend", kind, d, k, n, i, msg);
			bad++;
		}
		if (km_dist2(xi, c + (size_t) lab[0][i] * d, d) != dist[0][i])
			screened = 0;
	}
	if (screened != expect_screen)
	{
		Fail("backend", kind, d, k, n, -1, expect_screen ? "not screened" : "screened");
		bad++;
	}
	if (bad)
		nfailed++;
	else
		npassed++;
	for (int th = 0; th < 2; th++)
	{
		free(lab[th]);
		free(dist[th]);
	}
	free(x);
	free(x2);
	free(c);
}

int
main(void)
{
	static const int ds[] = {17, 32, 33, 100, 128, 255, 1024};
	static const int ks[] = {64, 65, 211, 1024};
	static const int64_t ns[] = {1, 31, 33, 200};

	if (!km_screen_usable(128, 1024, 1))
	{
		printf("skipped: no AVX512-BF16 in this build or CPU\n");
		return 0;
	}
	if (km_screen_usable(16, 1024, 1) || km_screen_usable(128, KM_SCREEN_MIN_K - 1, 1) ||
		km_screen_usable(128, 1024, 2) || km_screen_usable(KM_SCREEN_D_MAX + 1, 1024, 1))
	{
		printf("FAIL usable: outside its range\n");
		nfailed++;
	}
	rng_state = 20261122;
	CheckPackLimits();
	for (size_t a = 0; a < sizeof(ds) / sizeof(ds[0]); a++)
		for (size_t b = 0; b < sizeof(ks) / sizeof(ks[0]); b++)
			for (size_t e = 0; e < sizeof(ns) / sizeof(ns[0]); e++)
				for (int kind = 0; kind < DATA_NKINDS; kind++)
					RunCase(kind, ds[a], ks[b], ns[e]);
	/* many rows, for the list compaction and the prefetch across panels */
	RunCase(DATA_NEAR, 128, 1024, 3000);
	RunCase(DATA_BLOBS, 128, 1024, 3000);
	RunCase(DATA_RANDOM, 64, 300, 5000);

	/* several pieces of rows, so that the two threads share them */
	CheckBackend(DATA_SEPARATED, 128, 256, 5000, 1);
	CheckBackend(DATA_RANDOM, 768, 1024, 1500, 0);
	return TestReport();
}
