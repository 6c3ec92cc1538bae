/*
 * km_screen.c -- nearest center for large d and many centers: a bfloat16 screen whose winner is
 * decided in float32.
 *
 * The scores cnorm[j] - 2 x.c_j of km_gemm.c are a matrix product.  With AVX512-BF16 that
 * product runs at twice the float32 rate (VDPBF16PS: two bfloat16 products per float32 lane,
 * accumulated in float32), at the price of rounding x and c to 8 significant bits.  That
 * rounding is bounded, so the bfloat16 scores can rule out every center that cannot be the
 * nearest; the few that remain are compared by their direct squared distances (km_dist2).
 *
 * The bound.  Rounding to bfloat16 (to nearest) moves a coordinate by at most u = 2^-8 of
 * itself, so a product x_t c_t moves by at most (2u + u^2) |x_t c_t| and the dot product by at
 * most (2u + u^2) |x| |c| (Cauchy-Schwarz); float32 accumulation adds at most d 2^-24 |x| |c|
 * for d <= KM_SCREEN_D_MAX.  The score moves by twice that, under 0.0158 |x| |c|.  We take
 *     b_j(x) = 2^-5 |x| |c_j| + a_j,    a_j = (d + 2) 2^-23 |c_j|^2 + 2^-100,
 * twice the proven error, where a_j covers the rounding of cnorm and of the subtraction, and
 * the subnormal inputs that VDPBF16PS reads as zero.  With s_j the screened score and
 * U = min_j (s_j + b_j), every center with s_j - b_j > U is farther from x in exact arithmetic
 * than the center that gives U, by more than half their two bounds; it is dropped.  The rest
 * (one to a few, usually) are compared by km_dist2, ties to the lowest index.
 *
 * Because of the factor two, a dropped center is farther by far more than km_dist2's own
 * rounding, so the label is the argmin of km_dist2 over all k centers (test_screen checks this
 * bit for bit), except where km_dist2 itself cannot order two centers.  The distance reported
 * is km_dist2 to the chosen center, so distances and inertia carry no cancellation error.
 *
 * One pass.  A panel of SCREEN_MR rows (in vector lanes) meets the centers in index order, as
 * in km_gemm.c.  Each row keeps a threshold T = min over the centers seen of s + 2 bmax, where
 * bmax = 2^-5 |x| cmax + amax bounds every b_j; a center is kept as a candidate when s <= T.
 * T only falls, and every center of the final set satisfies s_j <= min s + 2 bmax, so each was
 * kept when it was met.  A running minimum is broken about ln k times, so few are kept; the
 * final filter then uses each center's own bound.  A row whose list fills up is compacted
 * against its current T, and a row that still does not fit, or whose norm is too large for
 * the bound to be safe (|x|^2 >= KM_SCREEN_NORM_MAX), is compared with every center directly.
 *
 * Resources: single-threaded, reentrant, no heap; about 80 kB of stack.  Without AVX512-BF16
 * km_screen_usable is false and the engine never calls the rest.
 */
#include "km_kernels.h"
#include "km_simd.h"

#include <math.h>
#include <string.h>

/* Rows and squared norms beyond this are compared directly (no overflow in the bound). */
#define KM_SCREEN_NORM_MAX 1e30f

/* A 64-byte header in front of the packed centers. */
typedef struct ScreenHeader
{
	int			k;
	int			d;
	int			pairs;			/* ceil(d / 2): bfloat16 pairs per center */
	int			npanels;
	float		emax;			/* max_j 2^-5 |c_j| */
	float		amax;			/* max_j a_j */
	char		pad[40];
} ScreenHeader;

#if defined(__AVX512F__) && defined(__AVX512BF16__)
/* km_dist2 in one vector register: the same bits, and it stays vectorised when inlined */
#define DIST2 km_dist2_avx512
#else
#define DIST2 km_dist2
#endif

/*
 * Nearest center of row x by km_dist2 over all k centers, lowest index on ties: the screen's
 * fallback for a row, and the whole answer where the screen is not built.
 */
static void
ScanAll(const float *x, int d, const float *c, int k, int32_t *label, float *dist)
{
	int			arg = 0;
	float		best = INFINITY;

	for (int j = 0; j < k; j++)
	{
		float		v = DIST2(x, c + (size_t) j * d, d);

		if (v < best)
		{
			best = v;
			arg = j;
		}
	}
	*label = arg;
	*dist = best;
}

#if defined(__AVX512F__) && defined(__AVX512BF16__)

/* Register tile: 32 rows (2 zmm of 16 lanes) x 14 centers = 28 accumulators. */
#define SCREEN_MR 32
#define SCREEN_NR 14
/* Candidates kept per row before its list is compacted. */
#define SCREEN_CAP 32

/* Offsets of the packed parts, in bytes from the start (each 64-byte aligned). */
static size_t
WordsOffset(void)
{
	return sizeof(ScreenHeader);
}

static size_t
CnormOffset(int k, int d)
{
	size_t		npanels = ((size_t) k + SCREEN_NR - 1) / SCREEN_NR;

	return WordsOffset() +
		((npanels * SCREEN_NR * (((size_t) d + 1) / 2) * sizeof(uint32_t) + 63) & ~(size_t) 63);
}

static size_t
BoundOffset(int k, int d)
{
	size_t		npanels = ((size_t) k + SCREEN_NR - 1) / SCREEN_NR;

	return CnormOffset(k, d) + ((npanels * SCREEN_NR * sizeof(float) + 63) & ~(size_t) 63);
}

int
km_screen_usable(int d, int k, int nseg)
{
	return nseg == 1 && k >= KM_SCREEN_MIN_K && d > KM_SMALL_D_MAX && d <= KM_SCREEN_D_MAX;
}

size_t
km_screen_packed_size(int k, int d)
{
	if (k <= 0 || d <= 0)
		return sizeof(ScreenHeader);
	/* e_j and a_j: two floats per center */
	return BoundOffset(k, d) + (((size_t) 2 * k * sizeof(float) + 63) & ~(size_t) 63);
}

/* Rounds a finite float to the nearest bfloat16, ties to even (as VCVTNE2PS2BF16 does). */
static uint32_t
ToBf16(float v)
{
	uint32_t	u;

	memcpy(&u, &v, sizeof(u));
	u += 0x7fffu + ((u >> 16) & 1u);
	return u >> 16;
}

int
km_screen_pack(const float *c, int k, int d, void *packed)
{
	ScreenHeader *h = packed;
	int			pairs = (d + 1) / 2;
	int			npanels = (k + SCREEN_NR - 1) / SCREEN_NR;
	uint32_t   *words = (uint32_t *) ((char *) packed + WordsOffset());
	float	   *cnp = (float *) ((char *) packed + CnormOffset(k, d));
	float	   *bound = (float *) ((char *) packed + BoundOffset(k, d));
	float		emax = 0.0f;
	float		amax = 0.0f;

	if (k < 1 || d < 1)
		return 0;
	km_row_norms(c, k, d, cnp);
	for (int j = 0; j < k; j++)
	{
		float		cn = cnp[j];

		/* NaN or too large for the bound's arithmetic: the caller uses the float32 kernel */
		if (!(cn < KM_SCREEN_NORM_MAX))
			return 0;
		/* 1 + 2^-20 for the roundings of sqrtf and of this product */
		bound[2 * j] = ldexpf(sqrtf(cn), -5) * (1.0f + 0x1p-20f);
		bound[2 * j + 1] = (float) (d + 2) * 0x1p-23f * cn + 0x1p-100f;
		emax = fmaxf(emax, bound[2 * j]);
		amax = fmaxf(amax, bound[2 * j + 1]);
	}
	/* padding centers score +inf: never kept */
	for (int j = k; j < npanels * SCREEN_NR; j++)
		cnp[j] = INFINITY;

	for (int p = 0; p < npanels; p++)
	{
		uint32_t   *panel = words + (size_t) p * pairs * SCREEN_NR;

		for (int jj = 0; jj < SCREEN_NR; jj++)
		{
			int			j = p * SCREEN_NR + jj;

			for (int t = 0; t < pairs; t++)
			{
				uint32_t	lo = 0;
				uint32_t	hi = 0;

				if (j < k)
				{
					lo = ToBf16(c[(size_t) j * d + 2 * t]);
					hi = 2 * t + 1 < d ? ToBf16(c[(size_t) j * d + 2 * t + 1]) : 0;
				}
				panel[(size_t) t * SCREEN_NR + jj] = lo | hi << 16;
			}
		}
	}
	memset(h, 0, sizeof(*h));
	h->k = k;
	h->d = d;
	h->pairs = pairs;
	h->npanels = npanels;
	h->emax = emax;
	h->amax = amax;
	return 1;
}

/* Candidates and thresholds of one row panel. */
typedef struct ScreenFold
{
	float		thr[SCREEN_MR] __attribute__((aligned(64)));	/* T per row */
	float		twob[SCREEN_MR] __attribute__((aligned(64)));	/* 2 bmax per row */
	float		s[SCREEN_MR] __attribute__((aligned(64)));	/* scores of the center pushed */
	int			count[SCREEN_MR];	/* candidates kept; -1: the row is scanned directly */
	int32_t		cj[SCREEN_MR][SCREEN_CAP];
	float		cs[SCREEN_MR][SCREEN_CAP];
	const float *cnp;
	int			k;
	int			nrows;
} ScreenFold;

/*
 * Converts rows x[0..nrows) to bfloat16 pairs, transposed pair-major (apack[t * SCREEN_MR + r]
 * holds coordinates 2t and 2t + 1 of row r); missing rows and the odd coordinate are zero.
 */
static void
PackRows(const float *x, int d, int nrows, int pairs, uint32_t *apack)
{
	for (int g = 0; g < SCREEN_MR; g += 16)
	{
		int			rows = nrows - g < 16 ? (nrows - g > 0 ? nrows - g : 0) : 16;

		for (int pb = 0; pb < pairs; pb += 16)
		{
			int			t0 = 2 * pb;
			int			m = d - t0;
			__mmask16	mlo = m >= 16 ? 0xffff : (__mmask16) ((1u << m) - 1);
			__mmask16	mhi = m >= 32 ? 0xffff : (m > 16 ? (__mmask16) ((1u << (m - 16)) - 1) : 0);
			int			np = pairs - pb < 16 ? pairs - pb : 16;
			__m512		v[16];

			for (int i = 0; i < 16; i++)
			{
				if (i < rows)
				{
					const float *src = x + (size_t) (g + i) * d + t0;
					__m512		lo = _mm512_maskz_loadu_ps(mlo, src);
					__m512		hi = _mm512_maskz_loadu_ps(mhi, src + 16);

					/* elements 0..15 from lo, 16..31 from hi: word w = coordinates 2w, 2w+1 */
					v[i] = (__m512) _mm512_cvtne2ps_pbh(hi, lo);
				}
				else
					v[i] = _mm512_setzero_ps();
			}
			km_transpose16(v);
			for (int c = 0; c < np; c++)
				_mm512_store_ps((float *) (apack + (size_t) (pb + c) * SCREEN_MR + g), v[c]);
		}
	}
}

/* Keeps center j as a candidate for the rows in mask (rare: out of the tile's fast path). */
static __attribute__((noinline)) void
Push(ScreenFold *f, int j, uint32_t mask)
{
	if (j >= f->k)
		return;					/* padding */
	while (mask)
	{
		int			r = __builtin_ctz(mask);
		int			cnt = f->count[r];

		mask &= mask - 1;
		if (cnt < 0)
			continue;
		if (cnt == SCREEN_CAP)
		{
			/* drop what the threshold has since excluded; order is kept */
			int			w = 0;

			for (int q = 0; q < cnt; q++)
				if (f->cs[r][q] <= f->thr[r])
				{
					f->cj[r][w] = f->cj[r][q];
					f->cs[r][w] = f->cs[r][q];
					w++;
				}
			cnt = w;
			if (cnt == SCREEN_CAP)
			{
				f->count[r] = -1;
				continue;
			}
		}
		f->cj[r][cnt] = j;
		f->cs[r][cnt] = f->s[r];
		f->count[r] = cnt + 1;
	}
}

/*
 * One SCREEN_MR x SCREEN_NR tile: bfloat16 dot products over all pairs, accumulated in float32,
 * then folded center by center into the thresholds, keeping candidates.
 */
static __attribute__((noinline)) void
Tile(const uint32_t *a, const uint32_t *b, int pairs, ScreenFold *f, int j0)
{
	const __m512 two = _mm512_set1_ps(2.0f);
	__m512		c0[SCREEN_NR],
				c1[SCREEN_NR];
	__m512		t0,
				t1,
				tb0,
				tb1;

#pragma GCC unroll 14
	for (int jj = 0; jj < SCREEN_NR; jj++)
	{
		c0[jj] = _mm512_setzero_ps();
		c1[jj] = _mm512_setzero_ps();
	}
	for (int t = 0; t < pairs; t++)
	{
		__m512bh	a0 = (__m512bh) _mm512_load_si512(a);
		__m512bh	a1 = (__m512bh) _mm512_load_si512(a + 16);

#pragma GCC unroll 14
		for (int jj = 0; jj < SCREEN_NR; jj++)
		{
			__m512bh	bj = (__m512bh) _mm512_set1_epi32((int) b[jj]);

			c0[jj] = _mm512_dpbf16_ps(c0[jj], a0, bj);
			c1[jj] = _mm512_dpbf16_ps(c1[jj], a1, bj);
		}
		a += SCREEN_MR;
		b += SCREEN_NR;
	}

	t0 = _mm512_load_ps(f->thr);
	t1 = _mm512_load_ps(f->thr + 16);
	tb0 = _mm512_load_ps(f->twob);
	tb1 = _mm512_load_ps(f->twob + 16);
#pragma GCC unroll 14
	for (int jj = 0; jj < SCREEN_NR; jj++)
	{
		__m512		cn = _mm512_set1_ps(f->cnp[j0 + jj]);
		/* cn - 2 acc with one rounding: 2 acc is exact */
		__m512		s0 = _mm512_fnmadd_ps(c0[jj], two, cn);
		__m512		s1 = _mm512_fnmadd_ps(c1[jj], two, cn);
		__mmask16	m0 = _mm512_cmp_ps_mask(s0, t0, _CMP_LE_OQ);
		__mmask16	m1 = _mm512_cmp_ps_mask(s1, t1, _CMP_LE_OQ);

		t0 = _mm512_min_ps(t0, _mm512_add_ps(s0, tb0));
		t1 = _mm512_min_ps(t1, _mm512_add_ps(s1, tb1));
		if (__builtin_expect((m0 | m1) != 0, 0))
		{
			_mm512_store_ps(f->thr, t0);
			_mm512_store_ps(f->thr + 16, t1);
			_mm512_store_ps(f->s, s0);
			_mm512_store_ps(f->s + 16, s1);
			Push(f, j0 + jj, (uint32_t) m0 | (uint32_t) m1 << 16);
		}
	}
	_mm512_store_ps(f->thr, t0);
	_mm512_store_ps(f->thr + 16, t1);
}

/*
 * Nearest center of each of the panel's rows from its candidates: the per-center bounds
 * drop what they can, km_dist2 decides among the rest.  The survivors' centers are fetched
 * for all rows first, so that their cache misses overlap rather than queue one by one.
 */
static int64_t
Finish(ScreenFold *f, const float *x, const float *norms, int d, const float *c,
	   const float *bound, int32_t *labels, float *dist)
{
	int64_t		work = 0;
	size_t		lines = ((size_t) d * sizeof(float) + 63) / 64;

	if (lines > 16)
		lines = 16;				/* the hardware prefetcher follows on from there */
	for (int r = 0; r < f->nrows; r++)
	{
		int			cnt = f->count[r];
		int			keep = 0;
		float		xn;
		float		u = INFINITY;

		if (cnt <= 0)
			continue;
		xn = sqrtf(norms[r]);
		for (int q = 0; q < cnt; q++)
		{
			int			j = f->cj[r][q];
			float		hi = f->cs[r][q] + KM_FMAF(xn, bound[2 * j], bound[2 * j + 1]);

			u = hi < u ? hi : u;
		}
		for (int q = 0; q < cnt; q++)
		{
			int			j = f->cj[r][q];
			const char *cp = (const char *) (c + (size_t) j * d);

			if (f->cs[r][q] - KM_FMAF(xn, bound[2 * j], bound[2 * j + 1]) > u)
				continue;
			f->cj[r][keep++] = j;
			for (size_t l = 0; l < lines; l++)
				__builtin_prefetch(cp + 64 * l, 0, 3);
		}
		f->count[r] = keep;
	}
	for (int r = 0; r < f->nrows; r++)
	{
		const float *xr = x + (size_t) r * d;
		int			cnt = f->count[r];
		float		best = INFINITY;
		int			arg = -1;

		if (cnt <= 0)
		{
			ScanAll(xr, d, c, f->k, labels + r, dist + r);
			work += f->k;
			continue;
		}
		for (int q = 0; q < cnt; q++)
		{
			int			j = f->cj[r][q];
			float		v = DIST2(xr, c + (size_t) j * d, d);

			if (arg < 0 || v < best)
			{
				best = v;
				arg = j;
			}
		}
		work += cnt;
		labels[r] = arg;
		dist[r] = best;
	}
	return work;
}

int64_t
km_screen_argmin_capped(const float *x, const float *norms, int64_t n, int d, const void *packed,
						const float *c, int32_t *labels, float *dist, int64_t max_work)
{
	const ScreenHeader *h = packed;
	int64_t		work = 0;
	int			k = h->k;
	int			pairs = h->pairs;
	int			npanels = h->npanels;
	const uint32_t *words = (const uint32_t *) ((const char *) packed + WordsOffset());
	const float *bound = (const float *) ((const char *) packed + BoundOffset(k, d));
	uint32_t	apack[SCREEN_MR * (KM_SCREEN_D_MAX / 2)] __attribute__((aligned(64)));
	ScreenFold	f;

	if (n <= 0 || d != h->d)
		return 0;
	f.cnp = (const float *) ((const char *) packed + CnormOffset(k, d));
	f.k = k;
	for (int64_t i0 = 0; i0 < n; i0 += SCREEN_MR)
	{
		const float *xp = x + (size_t) i0 * d;
		int64_t		next = n - i0 - SCREEN_MR;
		const char *pf = (const char *) (xp + (size_t) SCREEN_MR * d);
		size_t		pf_len = (size_t) (next > 0 ? (next < SCREEN_MR ? next : SCREEN_MR) : 0) * d *
			sizeof(float);
		size_t		pf_step = (pf_len / 64 + npanels) / npanels * 64;
		size_t		pf_off = 0;

		f.nrows = n - i0 < SCREEN_MR ? (int) (n - i0) : SCREEN_MR;
		for (int r = 0; r < SCREEN_MR; r++)
		{
			f.count[r] = 0;
			if (r < f.nrows && norms[i0 + r] < KM_SCREEN_NORM_MAX)
			{
				float		xn = sqrtf(norms[i0 + r]) * (1.0f + 0x1p-20f);

				f.thr[r] = INFINITY;
				f.twob[r] = 2.0f * KM_FMAF(xn, h->emax, h->amax);
			}
			else
			{
				/* nothing is kept: the row (if any) is scanned directly */
				f.thr[r] = -INFINITY;
				f.twob[r] = -INFINITY;
			}
		}
		PackRows(xp, d, f.nrows, pairs, apack);
		for (int p = 0; p < npanels; p++)
		{
			/* pull the next row panel towards the cache while the tiles run */
			for (size_t e = pf_off + pf_step; pf_off < e && pf_off < pf_len; pf_off += 64)
				__builtin_prefetch(pf + pf_off, 0, 2);
			Tile(apack, words + (size_t) p * pairs * SCREEN_NR, pairs, &f, p * SCREEN_NR);
		}
		work += Finish(&f, xp, norms + i0, d, c, bound, labels + i0, dist + i0);
		if (work > max_work)
			break;
	}
	return work;
}

#else							/* no AVX512-BF16: the engine keeps to km_gemm.c */

int
km_screen_usable(int d, int k, int nseg)
{
	(void) d;
	(void) k;
	(void) nseg;
	return 0;
}

size_t
km_screen_packed_size(int k, int d)
{
	(void) k;
	(void) d;
	return sizeof(ScreenHeader);
}

int
km_screen_pack(const float *c, int k, int d, void *packed)
{
	ScreenHeader *h = packed;

	(void) c;
	memset(h, 0, sizeof(*h));
	h->k = k;
	h->d = d;
	return 0;
}

/* Never called while km_screen_usable is false; answers correctly all the same. */
int64_t
km_screen_argmin_capped(const float *x, const float *norms, int64_t n, int d, const void *packed,
						const float *c, int32_t *labels, float *dist, int64_t max_work)
{
	const ScreenHeader *h = packed;
	int64_t		work = 0;

	(void) norms;
	for (int64_t i = 0; i < n && work <= max_work; i++)
	{
		ScanAll(x + (size_t) i * d, d, c, h->k, labels + i, dist + i);
		work += h->k;
	}
	return work;
}

#endif

/* The search without a cap on the work. */
int64_t
km_screen_argmin(const float *x, const float *norms, int64_t n, int d, const void *packed,
				 const float *c, int32_t *labels, float *dist)
{
	return km_screen_argmin_capped(x, norms, n, d, packed, c, labels, dist, INT64_MAX);
}
