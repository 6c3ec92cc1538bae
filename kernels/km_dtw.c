/*
 * km_dtw.c -- dynamic time warping: distances, the pruning bound, warping paths and the
 * threaded passes over rows (km_dtw.h).
 *
 * The recurrence.  With C(-1, -1) = 0 and C = +inf elsewhere outside the band,
 *     C(i, j) = (x_i - c_j)^2 + min(C(i-1, j), C(i, j-1), C(i-1, j-1)),
 * DTW^2 = C(lx - 1, lc - 1).  Rows of C are computed in order of i, each over its band only,
 * in float64 with tslearn's operations in tslearn's order, so the values are tslearn's bit for
 * bit on the same float64 inputs.  Two rows of C suffice for a distance; a warping path also
 * keeps, for every cell of the band, which of its three neighbours was least (one byte), which
 * is what tslearn's walk back along the full matrix compares.
 *
 * Abandoning.  C only grows along a path and every path crosses every row i, so once the least
 * C(i, j) of a row exceeds the cutoff, DTW^2 does too, and the computation stops.
 *
 * The lower bound.  A warping path holds (0, 0) and (lx - 1, lc - 1), and for every inner
 * sample 0 < i < lx - 1 at least one more cell (i, j) with j in i's band: three disjoint sets
 * of cells.  The cost of (i, j) is at least the squared distance of x_i to [lo_i, hi_i], the
 * least and greatest center sample of the band, so
 *     LB = (x_0 - c_0)^2 + (x_last - c_last)^2 + sum_{0<i<lx-1} dist(x_i, [lo_i, hi_i])^2
 * is at most DTW^2: LB_Keogh (Keogh & Ratanamahatana 2005) with the corners exact.  Sums in
 * float64 round differently from C's, so the bound used is LB (1 - 2^-40), which keeps it below
 * DTW^2 by far more than their rounding can differ.  A center is skipped only when this bound
 * exceeds the best DTW^2 found for the row, or equals it for a higher index: the label and the
 * distance are those of computing every DTW, ties included.
 *
 * Threads.  Each pass cuts its rows into pieces that threads started for the call claim in
 * turn (the caller works too); every result is per row, and what is summed over rows
 * (km_dtw_dba_pass) is added by the calling thread in row order afterwards, so no result
 * depends on the thread count.  Threads start with every signal blocked; one that cannot start
 * leaves its work to the others.  Scratch is malloc'd per call and freed on every path.
 */
/*
 * No fused multiply-adds: every cell is (x - c)^2 rounded, then added, as tslearn (numba without
 * fastmath) computes it, and the same in the scalar and the vector code, so that which rows
 * share a vector never changes a bit.
 */
#pragma GCC optimize ("fp-contract=off")

#include "km_dtw.h"
#include "km_crew.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* The margin that keeps the float64 bound below DTW^2 (see the header). */
#define LB_SHRINK (1.0 - 1.0 / 1099511627776.0)
/* Rows a piece of a pass: enough work to amortise a claim and fill the lanes, few enough to balance. */
#define PIECE_ROWS 8

/*
 * C row by row over two buffers of lc + 1 columns (column j + 1 holds C(i, j), column 0 the
 * +inf left of the band, or C(-1, -1) = 0 in row -1).  A buffer keeps the band it held two
 * rows ago; bands only move right, so what the new row does not overwrite is columns wlo..lo,
 * cleared first.  x is xf or xd, whichever is not NULL.
 */
static inline double
DtwRows(const float *xf, const double *xd, int lx, const double *c, int lc, int band,
		double cutoff, double *work)
{
	double	   *prev = work,
			   *cur = work + lc + 1;
	int			wprev = 0,
				wcur = lc + 1;	/* first column each buffer may hold a stale value in */

	for (int j = 0; j <= lc; j++)
		prev[j] = cur[j] = INFINITY;
	prev[0] = 0.0;
	for (int i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					t;
		double		xi = xf != NULL ? (double) xf[i] : xd[i];
		double		rowmin = INFINITY;
		double	   *swap;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		for (int j = wcur; j <= lo; j++)
			cur[j] = INFINITY;
		for (int j = lo; j <= hi; j++)
		{
			double		diff = xi - c[j];
			double		m = prev[j + 1];

			if (cur[j] < m)
				m = cur[j];
			if (prev[j] < m)
				m = prev[j];
			cur[j + 1] = diff * diff + m;
			if (cur[j + 1] < rowmin)
				rowmin = cur[j + 1];
		}
		if (rowmin > cutoff)
			return INFINITY;
		swap = prev;
		prev = cur;
		cur = swap;
		t = wprev;
		wprev = lo + 1;
		wcur = t;
	}
	return prev[lc];
}

double
km_dtw_sq(const float *x, int lx, const double *c, int lc, int band, double cutoff, double *work)
{
	return DtwRows(x, NULL, lx, c, lc, band, cutoff, work);
}

double
km_dtw_sq_d(const double *x, int lx, const double *c, int lc, int band, double *work)
{
	return DtwRows(NULL, x, lx, c, lc, band, INFINITY, work);
}

/* Where a warping path came from into a cell: the first of the three least, as tslearn walks. */
enum
{
	FROM_DIAG = 0,				/* (i-1, j-1) */
	FROM_UP = 1,				/* (i-1, j) */
	FROM_LEFT = 2				/* (i, j-1) */
};

double
km_dtw_path(const float *x, int lx, const double *c, int lc, int band, double *work,
			uint8_t *from, int32_t *path, int *len)
{
	double	   *prev = work,
			   *cur = work + lc + 1;
	int			wprev = 0,
				wcur = lc + 1;
	int			i,
				j,
				n;

	/* DtwRows' recurrence, keeping for every cell of the band which neighbour was least */
	for (j = 0; j <= lc; j++)
		prev[j] = cur[j] = INFINITY;
	prev[0] = 0.0;
	for (i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					t;
		double		xi = (double) x[i];
		uint8_t    *f = from + (int64_t) i * lc;
		double	   *swap;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		for (j = wcur; j <= lo; j++)
			cur[j] = INFINITY;
		for (j = lo; j <= hi; j++)
		{
			double		diff = xi - c[j];
			double		diag = prev[j],
						up = prev[j + 1],
						left = cur[j];
			double		m;
			uint8_t		k;

			if (diag <= up && diag <= left)
			{
				m = diag;
				k = FROM_DIAG;
			}
			else if (up <= left)
			{
				m = up;
				k = FROM_UP;
			}
			else
			{
				m = left;
				k = FROM_LEFT;
			}
			cur[j + 1] = diff * diff + m;
			f[j] = k;
		}
		swap = prev;
		prev = cur;
		cur = swap;
		t = wprev;
		wprev = lo + 1;
		wcur = t;
	}

	/* back from the end, along the first edge once on it, then reversed */
	i = lx - 1;
	j = lc - 1;
	path[0] = i;
	path[1] = j;
	n = 1;
	while (i > 0 || j > 0)
	{
		int			k = i == 0 ? FROM_LEFT : j == 0 ? FROM_UP : from[(int64_t) i * lc + j];

		if (k != FROM_LEFT)
			i--;
		if (k != FROM_UP)
			j--;
		path[2 * n] = i;
		path[2 * n + 1] = j;
		n++;
	}
	for (int a = 0, b = n - 1; a < b; a++, b--)
	{
		int32_t		ti = path[2 * a],
					tj = path[2 * a + 1];

		path[2 * a] = path[2 * b];
		path[2 * a + 1] = path[2 * b + 1];
		path[2 * b] = ti;
		path[2 * b + 1] = tj;
	}
	*len = n;
	return prev[lc];
}

/*
 * Lanes of the vector recurrences: LANES independent (series, center) pairs of one series
 * length and one center length at once, as two chains of eight float64 lanes, so that each
 * chain's wait on its previous cell overlaps the other's.
 */
#define LANES 16

#if defined(__AVX512F__)
/* Two chains: A in lanes 0-7, B in lanes 8-15 of every interleaved row. */
#define LD(p) _mm512_loadu_pd(p)
#define ST(p, v) _mm512_storeu_pd(p, v)

/*
 * Without a band the matrix is computed in tiles of TILE columns, all rows of one tile before
 * the next, so that the two rows of C in use stay in the first-level cache; bound[i + 1]
 * carries C(i, j0 - 1), the column left of the tile, from one tile to the next (bound[0] is
 * C(-1, j0 - 1)).  The cells and their order of operations are those of the untiled code.
 */
#define TILE 32

/* The column left of the first tile: C(-1, -1) = 0 and C(i, -1) = inf, in every lane. */
static inline void
TilesBegin(double *bound, int lx)
{
	const __m512d inf = _mm512_set1_pd(INFINITY);

	for (int i = 0; i <= lx; i++)
	{
		ST(bound + (size_t) i * LANES, inf);
		ST(bound + (size_t) i * LANES + 8, inf);
	}
	ST(bound, _mm512_setzero_pd());
	ST(bound + 8, _mm512_setzero_pd());
}

/*
 * The row above a tile of w columns: C(-1, j) = inf, and its left cell C(-1, j0 - 1) from
 * bound[0], which then becomes C(-1, j0 + w - 1) = inf for the next tile.
 */
static inline void
TileBegin(double *prev, double *bound, int w)
{
	const __m512d inf = _mm512_set1_pd(INFINITY);

	for (int j = 0; j <= w; j++)
	{
		ST(prev + (size_t) j * LANES, inf);
		ST(prev + (size_t) j * LANES + 8, inf);
	}
	ST(prev, LD(bound));
	ST(prev + 8, LD(bound + 8));
	ST(bound, inf);
	ST(bound + 8, inf);
}

static void
PathTiled(const double *xt, int lx, const double *c, int lc, double *work, double *bound,
		  uint32_t *from, double *sq)
{
	double	   *prev = work,
			   *cur = work + (size_t) ((lc < TILE ? lc : TILE) + 1) * LANES;	/* within 2 (lc + 1) */

	TilesBegin(bound, lx);
	for (int j0 = 0; j0 < lc; j0 += TILE)
	{
		int			w = lc - j0 < TILE ? lc - j0 : TILE;

		TileBegin(prev, bound, w);
		for (int i = 0; i < lx; i++)
		{
			const __m512d xa = LD(xt + (size_t) i * LANES),
						xb = LD(xt + (size_t) i * LANES + 8);
			double	   *bi = bound + (size_t) (i + 1) * LANES;
			__m512d		la = LD(bi),
						lb = LD(bi + 8),
						da = LD(prev),
						db = LD(prev + 8);
			uint8_t    *f = (uint8_t *) (from + (int64_t) i * lc + j0);
			double	   *swap;

			for (int j = 0; j < w; j++)
			{
				const double *pj = prev + (size_t) (j + 1) * LANES;
				__m512d		cj = _mm512_set1_pd(c[j0 + j]);
				__m512d		ua = LD(pj),
							ub = LD(pj + 8);
				__m512d		ea = _mm512_sub_pd(xa, cj),
							eb = _mm512_sub_pd(xb, cj);
				__m512d		ma = _mm512_min_pd(_mm512_min_pd(da, ua), la),
							mb = _mm512_min_pd(_mm512_min_pd(db, ub), lb);
				__mmask8	mda = _mm512_cmp_pd_mask(da, ma, _CMP_EQ_OQ),
							mdb = _mm512_cmp_pd_mask(db, mb, _CMP_EQ_OQ);
				__mmask8	mua = (__mmask8) (~mda & _mm512_cmp_pd_mask(ua, ma, _CMP_EQ_OQ)),
							mub = (__mmask8) (~mdb & _mm512_cmp_pd_mask(ub, mb, _CMP_EQ_OQ));

				la = _mm512_add_pd(_mm512_mul_pd(ea, ea), ma);
				lb = _mm512_add_pd(_mm512_mul_pd(eb, eb), mb);
				ST(cur + (size_t) (j + 1) * LANES, la);
				ST(cur + (size_t) (j + 1) * LANES + 8, lb);
				f[4 * j] = (uint8_t) mda;
				f[4 * j + 1] = (uint8_t) mua;
				f[4 * j + 2] = (uint8_t) mdb;
				f[4 * j + 3] = (uint8_t) mub;
				da = ua;
				db = ub;
			}
			/* the next row's diagonal into the tile is this row's left of it */
			ST(cur, LD(bi));
			ST(cur + 8, LD(bi + 8));
			ST(bi, la);
			ST(bi + 8, lb);
			swap = prev;
			prev = cur;
			cur = swap;
		}
	}
	ST(sq, LD(bound + (size_t) lx * LANES));
	ST(sq + 8, LD(bound + (size_t) lx * LANES + 8));
}

/* DistLanes without a band or a cut, in tiles as PathTiled. */
static void
DistTiled(const double *xt, int lx, const double *ct, int lc, double *work, double *bound,
		  double *out)
{
	double	   *prev = work,
			   *cur = work + (size_t) ((lc < TILE ? lc : TILE) + 1) * LANES;	/* within 2 (lc + 1) */

	TilesBegin(bound, lx);
	for (int j0 = 0; j0 < lc; j0 += TILE)
	{
		int			w = lc - j0 < TILE ? lc - j0 : TILE;

		TileBegin(prev, bound, w);
		for (int i = 0; i < lx; i++)
		{
			const __m512d xa = LD(xt + (size_t) i * LANES),
						xb = LD(xt + (size_t) i * LANES + 8);
			double	   *bi = bound + (size_t) (i + 1) * LANES;
			__m512d		la = LD(bi),
						lb = LD(bi + 8),
						da = LD(prev),
						db = LD(prev + 8);
			double	   *swap;

			for (int j = 0; j < w; j++)
			{
				const double *pj = prev + (size_t) (j + 1) * LANES;
				const double *cj = ct + (size_t) (j0 + j) * LANES;
				__m512d		ua = LD(pj),
							ub = LD(pj + 8);
				__m512d		ea = _mm512_sub_pd(xa, LD(cj)),
							eb = _mm512_sub_pd(xb, LD(cj + 8));

				la = _mm512_add_pd(_mm512_mul_pd(ea, ea), _mm512_min_pd(_mm512_min_pd(da, ua), la));
				lb = _mm512_add_pd(_mm512_mul_pd(eb, eb), _mm512_min_pd(_mm512_min_pd(db, ub), lb));
				ST(cur + (size_t) (j + 1) * LANES, la);
				ST(cur + (size_t) (j + 1) * LANES + 8, lb);
				da = ua;
				db = ub;
			}
			ST(cur, LD(bi));
			ST(cur + 8, LD(bi + 8));
			ST(bi, la);
			ST(bi + 8, lb);
			swap = prev;
			prev = cur;
			cur = swap;
		}
	}
	ST(out, LD(bound + (size_t) lx * LANES));
	ST(out + 8, LD(bound + (size_t) lx * LANES + 8));
}

/*
 * The recurrence of km_dtw_path for LANES series of one length lx against one center c, one
 * series per lane, the same operations in the same order as the scalar code in every lane.  xt
 * holds the series interleaved (xt[i * LANES + l] is sample i of lane l), work 2 (lc + 1) LANES
 * doubles; from (lx x lc) gets, per cell, four bytes: the lanes of chain A that came from the
 * diagonal, those that came from above, and the same for chain B; the others came from the
 * left.  sq gets the lanes' DTW^2.
 */
static void
PathLanes(const double *xt, int lx, const double *c, int lc, int band, double *work,
		  double *bound, uint32_t *from, double *sq)
{
	double	   *prev = work,
			   *cur = work + (size_t) (lc + 1) * LANES;
	const __m512d inf = _mm512_set1_pd(INFINITY);
	int			wprev = 0,
				wcur = lc + 1;

	if (band < 0)
	{
		PathTiled(xt, lx, c, lc, work, bound, from, sq);
		return;
	}
	for (int j = 0; j <= lc; j++)
	{
		ST(prev + (size_t) j * LANES, inf);
		ST(prev + (size_t) j * LANES + 8, inf);
		ST(cur + (size_t) j * LANES, inf);
		ST(cur + (size_t) j * LANES + 8, inf);
	}
	ST(prev, _mm512_setzero_pd());
	ST(prev + 8, _mm512_setzero_pd());
	for (int i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					t;
		const __m512d xa = LD(xt + (size_t) i * LANES),
					xb = LD(xt + (size_t) i * LANES + 8);
		uint8_t    *f = (uint8_t *) (from + (int64_t) i * lc);
		__m512d		la,
					lb,
					da,
					db;
		double	   *swap;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		for (int j = wcur; j <= lo; j++)
		{
			ST(cur + (size_t) j * LANES, inf);
			ST(cur + (size_t) j * LANES + 8, inf);
		}
		la = LD(cur + (size_t) lo * LANES);
		lb = LD(cur + (size_t) lo * LANES + 8);
		da = LD(prev + (size_t) lo * LANES);
		db = LD(prev + (size_t) lo * LANES + 8);
		for (int j = lo; j <= hi; j++)
		{
			const double *pj = prev + (size_t) (j + 1) * LANES;
			__m512d		cj = _mm512_set1_pd(c[j]);
			__m512d		ua = LD(pj),
						ub = LD(pj + 8);
			__m512d		ea = _mm512_sub_pd(xa, cj),
						eb = _mm512_sub_pd(xb, cj);
			__m512d		ma = _mm512_min_pd(_mm512_min_pd(da, ua), la),
						mb = _mm512_min_pd(_mm512_min_pd(db, ub), lb);

			/*
			 * the least of the three is the value whichever it is, so only the minimum with
			 * the left cell and the addition wait for the previous cell; the direction is the
			 * first of diagonal, up, left equal to it, off that chain
			 */
			__mmask8	mda = _mm512_cmp_pd_mask(da, ma, _CMP_EQ_OQ),
						mdb = _mm512_cmp_pd_mask(db, mb, _CMP_EQ_OQ);
			__mmask8	mua = (__mmask8) (~mda & _mm512_cmp_pd_mask(ua, ma, _CMP_EQ_OQ)),
						mub = (__mmask8) (~mdb & _mm512_cmp_pd_mask(ub, mb, _CMP_EQ_OQ));

			la = _mm512_add_pd(_mm512_mul_pd(ea, ea), ma);
			lb = _mm512_add_pd(_mm512_mul_pd(eb, eb), mb);
			ST(cur + (size_t) (j + 1) * LANES, la);
			ST(cur + (size_t) (j + 1) * LANES + 8, lb);
			f[4 * j] = (uint8_t) mda;
			f[4 * j + 1] = (uint8_t) mua;
			f[4 * j + 2] = (uint8_t) mdb;
			f[4 * j + 3] = (uint8_t) mub;
			da = ua;
			db = ub;
		}
		swap = prev;
		prev = cur;
		cur = swap;
		t = wprev;
		wprev = lo + 1;
		wcur = t;
	}
	ST(sq, LD(prev + (size_t) lc * LANES));
	ST(sq + 8, LD(prev + (size_t) lc * LANES + 8));
}

/* Lane l's path back through from, as km_dtw_path walks it; returns its pairs. */
static int
WalkLane(const uint32_t *from, int lx, int lc, int l, int32_t *path)
{
	int			i = lx - 1,
				j = lc - 1,
				n = 1;
	int			byte = l < 8 ? 0 : 2,	/* the cell's bytes: A diagonal, A up, B diagonal, B up */
				bit = l & 7;

	path[0] = i;
	path[1] = j;
	while (i > 0 || j > 0)
	{
		int			k;

		if (i == 0)
			k = FROM_LEFT;
		else if (j == 0)
			k = FROM_UP;
		else
		{
			const uint8_t *b = (const uint8_t *) (from + (int64_t) i * lc + j);

			k = (b[byte] >> bit) & 1 ? FROM_DIAG : (b[byte + 1] >> bit) & 1 ? FROM_UP : FROM_LEFT;
		}
		if (k != FROM_LEFT)
			i--;
		if (k != FROM_UP)
			j--;
		path[2 * n] = i;
		path[2 * n + 1] = j;
		n++;
	}
	for (int a = 0, b = n - 1; a < b; a++, b--)
	{
		int32_t		ti = path[2 * a],
					tj = path[2 * a + 1];

		path[2 * a] = path[2 * b];
		path[2 * a + 1] = path[2 * b + 1];
		path[2 * b] = ti;
		path[2 * b + 1] = tj;
	}
	return n;
}

/*
 * DTW^2 of LANES pairs at once: lane l's series of lx samples (xt[i * LANES + l]) against lane
 * l's center of lc samples (ct[j * LANES + l]), with DtwRows' operations in every lane.  It
 * stops once every lane's row minimum exceeds the lane's cut[l] (INFINITY: never); every lane is
 * INFINITY then, and a lane that passed its cut earlier keeps its exact, larger value.  work
 * holds 2 (lc + 1) LANES doubles.
 */
static void
DistLanes(const double *xt, int lx, const double *ct, int lc, int band, const double *cut,
		  double *work, double *bound, double *out)
{
	double	   *prev = work,
			   *cur = work + (size_t) (lc + 1) * LANES;
	const __m512d inf = _mm512_set1_pd(INFINITY);
	const __m512d cuta = LD(cut),
				cutb = LD(cut + 8);
	int			wprev = 0,
				wcur = lc + 1;

	if (band < 0)
	{
		int			abandon = 0;

		for (int l = 0; l < LANES; l++)
			abandon |= !isinf(cut[l]);
		if (!abandon)
		{
			DistTiled(xt, lx, ct, lc, work, bound, out);
			return;
		}
	}
	for (int j = 0; j <= lc; j++)
	{
		ST(prev + (size_t) j * LANES, inf);
		ST(prev + (size_t) j * LANES + 8, inf);
		ST(cur + (size_t) j * LANES, inf);
		ST(cur + (size_t) j * LANES + 8, inf);
	}
	ST(prev, _mm512_setzero_pd());
	ST(prev + 8, _mm512_setzero_pd());
	for (int i = 0; i < lx; i++)
	{
		int			lo,
					hi,
					t;
		const __m512d xa = LD(xt + (size_t) i * LANES),
					xb = LD(xt + (size_t) i * LANES + 8);
		__m512d		la,
					lb,
					da,
					db,
					ra = inf,
					rb = inf;
		double	   *swap;

		km_dtw_band(i, lx, lc, band, &lo, &hi);
		for (int j = wcur; j <= lo; j++)
		{
			ST(cur + (size_t) j * LANES, inf);
			ST(cur + (size_t) j * LANES + 8, inf);
		}
		la = LD(cur + (size_t) lo * LANES);
		lb = LD(cur + (size_t) lo * LANES + 8);
		da = LD(prev + (size_t) lo * LANES);
		db = LD(prev + (size_t) lo * LANES + 8);
		for (int j = lo; j <= hi; j++)
		{
			const double *pj = prev + (size_t) (j + 1) * LANES;
			const double *cj = ct + (size_t) j * LANES;
			__m512d		ua = LD(pj),
						ub = LD(pj + 8);
			__m512d		ea = _mm512_sub_pd(xa, LD(cj)),
						eb = _mm512_sub_pd(xb, LD(cj + 8));
			__m512d		ma = _mm512_min_pd(da, ua),
						mb = _mm512_min_pd(db, ub);

			la = _mm512_add_pd(_mm512_mul_pd(ea, ea), _mm512_min_pd(ma, la));
			lb = _mm512_add_pd(_mm512_mul_pd(eb, eb), _mm512_min_pd(mb, lb));
			ST(cur + (size_t) (j + 1) * LANES, la);
			ST(cur + (size_t) (j + 1) * LANES + 8, lb);
			ra = _mm512_min_pd(ra, la);
			rb = _mm512_min_pd(rb, lb);
			da = ua;
			db = ub;
		}
		if (_mm512_cmp_pd_mask(ra, cuta, _CMP_GT_OQ) == 0xFF &&
			_mm512_cmp_pd_mask(rb, cutb, _CMP_GT_OQ) == 0xFF)
		{
			for (int l = 0; l < LANES; l++)
				out[l] = INFINITY;
			return;
		}
		swap = prev;
		prev = cur;
		cur = swap;
		t = wprev;
		wprev = lo + 1;
		wcur = t;
	}
	ST(out, LD(prev + (size_t) lc * LANES));
	ST(out + 8, LD(prev + (size_t) lc * LANES + 8));
}
#undef LD
#undef ST
#endif

/*
 * lo[i], hi[i]: the least and greatest of c over sample i's band, for a row of lx samples.  The
 * bands' ends only rise with i, so two monotone queues of indexes (queue: 2 * lc ints) give
 * them in O(lx + lc).
 */
void
km_dtw_envelope(const double *c, int lc, int lx, int band, double *lo, double *hi, int *queue)
{
	int		   *qmin = queue,
			   *qmax = queue + lc;
	int			fmin = 0,
				bmin = 0,
				fmax = 0,
				bmax = 0,
				next = 0;

	for (int i = 0; i < lx; i++)
	{
		int			a,
					b;

		km_dtw_band(i, lx, lc, band, &a, &b);
		for (; next <= b; next++)
		{
			while (bmin > fmin && c[qmin[bmin - 1]] >= c[next])
				bmin--;
			qmin[bmin++] = next;
			while (bmax > fmax && c[qmax[bmax - 1]] <= c[next])
				bmax--;
			qmax[bmax++] = next;
		}
		while (qmin[fmin] < a)
			fmin++;
		while (qmax[fmax] < a)
			fmax++;
		lo[i] = c[qmin[fmin]];
		hi[i] = c[qmax[fmax]];
	}
}

double
km_dtw_lower_bound(const float *x, int lx, const double *c, int lc, const double *lo,
				   const double *hi)
{
	double		d0 = (double) x[0] - c[0],
				d1 = (double) x[lx - 1] - c[lc - 1];
	double		sum = 0.0;

	if (lx == 1)
		return 0.0;				/* one sample: the corners are one cell */
	for (int i = 1; i < lx - 1; i++)
	{
		double		v = (double) x[i];
		double		e = v > hi[i] ? v - hi[i] : (v < lo[i] ? lo[i] - v : 0.0);

		sum += e * e;
	}
	return (d0 * d0 + d1 * d1 + sum) * LB_SHRINK;
}

void
km_dtw_resample(const float *x, int lx, double *out, int len)
{
	if (lx == 1 || len == 1)
	{
		for (int t = 0; t < len; t++)
			out[t] = (double) x[0];
		return;
	}
	for (int t = 0; t < len; t++)
	{
		double		pos = (double) t * (lx - 1) / (len - 1);
		int			a = (int) pos;
		double		f;

		if (a >= lx - 1)
		{
			out[t] = (double) x[lx - 1];
			continue;
		}
		f = pos - a;
		out[t] = (double) x[a] + f * ((double) x[a + 1] - (double) x[a]);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Assignment
 * ------------------------------------------------------------------------------------------- */

typedef struct AssignArg
{
	const KmSeries *s;
	int64_t		r0,
				r1;
	const KmDtwCenters *cs;
	int			prune;
	const double *cutoff;
	int32_t    *labels;
	double	   *dist;
	int			maxlen;			/* longest row of the pass */
	/* per share: DTW rows, envelope, bounds and the order they give */
	double	   *work;
	size_t		work_stride;
	int64_t    *computed;		/* per share */
} AssignArg;

typedef struct Bound
{
	double		lb;
	int			j;
} Bound;

static int
BoundCmp(const void *a, const void *b)
{
	const Bound *x = a,
			   *y = b;

	if (x->lb != y->lb)
		return x->lb < y->lb ? -1 : 1;
	return x->j - y->j;
}

/*
 * Scratch of the vector distances, in doubles: the two rows of C, the interleaved series and
 * centers, the cuts and the tiles' left column, for series of up to maxlen samples and centers
 * of lc.
 */
static size_t
LaneScratch(int maxlen, int lc)
{
	return (2 * ((size_t) lc + 1) + 2 * (size_t) maxlen + 1 + (size_t) lc) * LANES + 2 * LANES;
}

/*
 * DTW^2 of x against the nl centers grp[] of cs (vals[l]), abandoning past cut as km_dtw_sq
 * does: LANES at a time in the vector code (unused lanes repeat the first center), else one by
 * one.  work: LaneScratch(lx, lc).
 */
static void
DistGroup(const float *x, int lx, const KmDtwCenters *cs, const int *grp, int nl, double cut,
		  double *work, double *vals)
{
	int			lc = cs->lc;

#if defined(__AVX512F__)
	if (nl > 1)
	{
		double	   *xt = work + 2 * ((size_t) lc + 1) * LANES;
		double	   *ct = xt + (size_t) lx * LANES;
		double	   *cuts = ct + (size_t) lc * LANES;
		double		out[LANES];

		for (int t = 0; t < lx; t++)
			for (int l = 0; l < LANES; l++)
				xt[(size_t) t * LANES + l] = (double) x[t];
		for (int l = 0; l < LANES; l++)
		{
			const double *c = cs->c + (int64_t) grp[l < nl ? l : 0] * lc;

			for (int t = 0; t < lc; t++)
				ct[(size_t) t * LANES + l] = c[t];
			cuts[l] = cut;
		}
		DistLanes(xt, lx, ct, lc, cs->band, cuts, work, cuts + 2 * LANES, out);
		for (int l = 0; l < nl; l++)
			vals[l] = out[l];
		return;
	}
#endif
	for (int l = 0; l < nl; l++)
		vals[l] = km_dtw_sq(x, lx, cs->c + (int64_t) grp[l] * lc, lc, cs->band, cut, work);
}

/* Whether rows [lo, hi) all have one length. */
static int
OneLength(const KmSeries *s, int64_t lo, int64_t hi)
{
	for (int64_t r = lo + 1; r < hi; r++)
		if (s->off[r + 1] - s->off[r] != s->off[lo + 1] - s->off[lo])
			return 0;
	return 1;
}

/*
 * DTW^2 of every row of [lo, hi), all of one length, against every center of cs:
 * vals[(r - lo) k + j], abandoning past cutoff[r] (NULL: never) as km_dtw_sq does.  The
 * (row, center) pairs go LANES at a time in the vector code, so that a few centers still fill
 * the lanes.  work: LaneScratch(lx, lc).
 */
static void
RowsAgainstCenters(const KmSeries *s, int64_t lo, int64_t hi, const KmDtwCenters *cs,
				   const double *cutoff, double *work, double *vals)
{
	int			k = cs->k,
				lc = cs->lc,
				lx = (int) (s->off[lo + 1] - s->off[lo]);
	int64_t		npairs = (hi - lo) * k;

#if defined(__AVX512F__)
	double	   *xt = work + 2 * ((size_t) lc + 1) * LANES;
	double	   *ct = xt + (size_t) lx * LANES;
	double	   *cuts = ct + (size_t) lc * LANES;

	for (int64_t p0 = 0; p0 < npairs; p0 += LANES)
	{
		double		out[LANES];
		int			nl = npairs - p0 < LANES ? (int) (npairs - p0) : LANES;

		for (int l = 0; l < LANES; l++)
		{
			int64_t		p = p0 + (l < nl ? l : 0),
						r = lo + p / k;
			const float *x = s->values + s->off[r];
			const double *c = cs->c + (p % k) * lc;

			for (int t = 0; t < lx; t++)
				xt[(size_t) t * LANES + l] = (double) x[t];
			for (int t = 0; t < lc; t++)
				ct[(size_t) t * LANES + l] = c[t];
			cuts[l] = cutoff != NULL ? cutoff[r] : INFINITY;
		}
		DistLanes(xt, lx, ct, lc, cs->band, cuts, work, cuts + 2 * LANES, out);
		for (int l = 0; l < nl; l++)
			vals[p0 + l] = out[l];
	}
#else
	for (int64_t p = 0; p < npairs; p++)
	{
		int64_t		r = lo + p / k;

		vals[p] = km_dtw_sq(s->values + s->off[r], lx, cs->c + (p % k) * lc, lc, cs->band,
							cutoff != NULL ? cutoff[r] : INFINITY, work);
	}
#endif
}

static void
AssignRow(AssignArg *a, int64_t r, int share)
{
	const KmDtwCenters *cs = a->cs;
	const float *x = a->s->values + a->s->off[r];
	int			lx = (int) (a->s->off[r + 1] - a->s->off[r]);
	int			lc = cs->lc,
				k = cs->k;
	double	   *w = a->work + a->work_stride * share;
	double	   *rows = w;		/* LaneScratch(maxlen, lc) */
	double	   *lo = rows + LaneScratch(a->maxlen, lc);	/* maxlen */
	double	   *hi = lo + a->maxlen;
	Bound	   *order = (Bound *) (hi + a->maxlen);	/* k */
	int		   *queue = (int *) (order + k);	/* 2 lc */
	double		best = a->cutoff != NULL ? a->cutoff[r] : INFINITY;
	int			bestj = -1;

	for (int j = 0; j < k; j++)
	{
		const double *c = cs->c + (int64_t) j * lc;

		order[j].j = j;
		order[j].lb = 0.0;
		if (!a->prune)
			continue;
		if (lx == cs->env_len && cs->env_lo != NULL)
			order[j].lb = km_dtw_lower_bound(x, lx, c, lc, cs->env_lo + (int64_t) j * lx,
											 cs->env_hi + (int64_t) j * lx);
		else
		{
			km_dtw_envelope(c, lc, lx, cs->band, lo, hi, queue);
			order[j].lb = km_dtw_lower_bound(x, lx, c, lc, lo, hi);
		}
	}
	if (a->prune && k > 1)
		qsort(order, k, sizeof(Bound), BoundCmp);
	/*
	 * The centers in groups of up to LANES, by ascending bound when pruning: a center whose
	 * bound exceeds the best so far cannot win, nor one whose bound equals it at a higher index
	 * (it could only tie); every DTW computed is exact or abandoned past the best, so the label
	 * and distance are those of computing all of them, ties to the lowest index.
	 */
	for (int q = 0; q < k;)
	{
		int			grp[LANES],
					nl = 0;
		double		vals[LANES];

		for (; q < k && nl < LANES; q++)
		{
			if (a->prune && order[q].lb > best)
			{
				q = k;
				break;
			}
			if (a->prune && order[q].lb == best && (bestj < 0 || order[q].j > bestj))
				continue;
			grp[nl++] = order[q].j;
		}
		if (nl == 0)
			break;
		DistGroup(x, lx, cs, grp, nl, a->prune ? best : INFINITY, rows, vals);
		a->computed[share * 8] += nl;
		for (int l = 0; l < nl; l++)
			if (vals[l] < best || (vals[l] == best && bestj >= 0 && grp[l] < bestj))
			{
				best = vals[l];
				bestj = grp[l];
			}
	}
	if (bestj < 0 && a->cutoff == NULL)
		bestj = 0;				/* not reached: every DTW of finite series is finite */
	a->labels[r] = bestj;
	a->dist[r] = best;
}

/*
 * A piece of rows.  With at most LANES / 2 centers a row's bounds can skip nothing (its one
 * group holds every center), so rows of one length go together, their (row, center) pairs
 * filling the lanes, and take the nearest center by the same rule as AssignRow.
 */
static void
AssignPiece(void *arg, int64_t piece, int share)
{
	AssignArg  *a = arg;
	int64_t		lo = a->r0 + piece * PIECE_ROWS,
				hi = lo + PIECE_ROWS < a->r1 ? lo + PIECE_ROWS : a->r1;
	int			k = a->cs->k;

	if (k <= LANES / 2 && OneLength(a->s, lo, hi))
	{
		double		vals[PIECE_ROWS * (LANES / 2)];

		RowsAgainstCenters(a->s, lo, hi, a->cs, a->cutoff, a->work + a->work_stride * share,
						   vals);
		for (int64_t r = lo; r < hi; r++)
		{
			double		best = a->cutoff != NULL ? a->cutoff[r] : INFINITY;
			int			bestj = -1;

			for (int j = 0; j < k; j++)
			{
				double		v = vals[(r - lo) * k + j];

				if (v < best || (v == best && bestj >= 0 && j < bestj))
				{
					best = v;
					bestj = j;
				}
			}
			if (bestj < 0 && a->cutoff == NULL)
				bestj = 0;		/* not reached: every DTW of finite series is finite */
			a->labels[r] = bestj;
			a->dist[r] = best;
		}
		a->computed[share * 8] += (hi - lo) * k;
		return;
	}
	for (int64_t r = lo; r < hi; r++)
		AssignRow(a, r, share);
}

static int
LongestRow(const KmSeries *s, int64_t r0, int64_t r1)
{
	int64_t		m = 1;

	for (int64_t r = r0; r < r1; r++)
		if (s->off[r + 1] - s->off[r] > m)
			m = s->off[r + 1] - s->off[r];
	return (int) m;
}

KmStatus
km_dtw_assign(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs, int prune,
			  const double *cutoff, int nthreads, int32_t *labels, double *dist,
			  int64_t *computed, KmError *err)
{
	AssignArg	a;
	int64_t		pieces = (r1 - r0 + PIECE_ROWS - 1) / PIECE_ROWS;
	int			nt = km_crew_size(nthreads, pieces);
	size_t		stride;

	if (r1 <= r0)
		return KM_OK;
	if (cs->k < 1 || cs->lc < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "no centers to assign to");
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.r0 = r0;
	a.r1 = r1;
	a.cs = cs;
	a.prune = prune;
	a.cutoff = cutoff;
	a.labels = labels;
	a.dist = dist;
	a.maxlen = LongestRow(s, r0, r1);
	/* in doubles: the lanes' scratch, lo, hi, the bounds (2 doubles each), the queue (ints) */
	stride = LaneScratch(a.maxlen, cs->lc) + 2 * (size_t) a.maxlen + 2 * (size_t) cs->k +
		(size_t) cs->lc + 8;
	a.work_stride = stride;
	a.work = malloc(sizeof(double) * stride * nt);
	a.computed = calloc((size_t) nt * 8, sizeof(int64_t));
	if (a.work == NULL || a.computed == NULL)
	{
		free(a.work);
		free(a.computed);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DTW scratch",
					   sizeof(double) * stride * nt);
	}
	km_crew_run(nt, pieces, AssignPiece, &a);
	for (int t = 0; t < nt && computed != NULL; t++)
		*computed += a.computed[t * 8];
	free(a.work);
	free(a.computed);
	return KM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * DBA
 * ------------------------------------------------------------------------------------------- */

/* A row of a DBA slice, to be sorted into groups of one center and one length. */
typedef struct DbaRow
{
	int32_t		label;
	int32_t		len;
	int64_t		i;				/* in the slice */
} DbaRow;

static int
DbaRowCmp(const void *a, const void *b)
{
	const DbaRow *x = a,
			   *y = b;

	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

typedef struct DbaArg
{
	const KmSeries *s;
	int64_t		r0;
	const KmDtwCenters *cs;
	const DbaRow *order;		/* the slice's rows with an active label, grouped */
	const int64_t *jobs;		/* njobs + 1: each job's first entry of order */
	size_t		work_stride;	/* per share, in doubles: the rows of C (scalar or lanes) and xt */
	double	   *work;
	size_t		from_stride;	/* per share, in uint32: maxlen x lc */
	uint32_t   *from;
	int32_t    *paths;			/* per row of the slice: 2 (maxlen + lc) ints */
	size_t		path_stride;
	int		   *plen;			/* per row: pairs, 0 for a row left out */
	double	   *sq;				/* per row: DTW^2 */
} DbaArg;

/*
 * One job: up to LANES rows of one center and one length, aligned together where the vector
 * code exists (unused lanes repeat the first row and are dropped), else one by one.
 */
static void
DbaPiece(void *arg, int64_t piece, int share)
{
	DbaArg	   *a = arg;
	const KmDtwCenters *cs = a->cs;
	const DbaRow *o = a->order + a->jobs[piece];
	int			nl = (int) (a->jobs[piece + 1] - a->jobs[piece]);
	const double *c = cs->c + (int64_t) o[0].label * cs->lc;
	double	   *work = a->work + a->work_stride * share;
	uint32_t   *from = a->from + a->from_stride * share;

#if defined(__AVX512F__)
	if (nl > 1)
	{
		int			lx = o[0].len;
		double	   *xt = work + 2 * ((size_t) cs->lc + 1) * LANES;
		double		sq[LANES];

		for (int l = 0; l < LANES; l++)
		{
			int64_t		r = a->r0 + o[l < nl ? l : 0].i;
			const float *x = a->s->values + a->s->off[r];

			for (int t = 0; t < lx; t++)
				xt[(size_t) t * LANES + l] = (double) x[t];
		}
		PathLanes(xt, lx, c, cs->lc, cs->band, work, xt + (size_t) lx * LANES, from, sq);
		for (int l = 0; l < nl; l++)
		{
			int64_t		i = o[l].i;

			a->sq[i] = sq[l];
			a->plen[i] = WalkLane(from, lx, cs->lc, l, a->paths + a->path_stride * i);
		}
		return;
	}
#endif
	for (int l = 0; l < nl; l++)
	{
		int64_t		i = o[l].i,
					r = a->r0 + i;

		a->sq[i] = km_dtw_path(a->s->values + a->s->off[r], o[l].len, c, cs->lc, cs->band, work,
							   (uint8_t *) from, a->paths + a->path_stride * i, &a->plen[i]);
	}
}

/* Rows whose paths one slice of a DBA pass keeps at a time. */
#define DBA_SLICE_ROWS 1024

KmStatus
km_dtw_dba_pass(const KmSeries *s, int64_t r0, int64_t r1, const int32_t *labels,
				const KmDtwCenters *cs, const uint8_t *active, int nthreads, double *sums,
				double *counts, double *cost, KmError *err)
{
	DbaArg		a;
	int			maxlen;
	int			nt;
	int64_t		slice;
	DbaRow	   *order;
	int64_t    *jobs;
	size_t		bytes;

	if (r1 <= r0)
		return KM_OK;
	maxlen = LongestRow(s, r0, r1);
	slice = r1 - r0 < DBA_SLICE_ROWS ? r1 - r0 : DBA_SLICE_ROWS;
	nt = km_crew_size(nthreads, (slice + LANES - 1) / LANES);
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.cs = cs;
	a.work_stride = 2 * ((size_t) cs->lc + 1) * LANES + (2 * (size_t) maxlen + 1) * LANES;
	a.from_stride = (size_t) maxlen * cs->lc;
	a.path_stride = 2 * ((size_t) maxlen + cs->lc);
	bytes = (sizeof(double) * a.work_stride + sizeof(uint32_t) * a.from_stride) * nt +
		sizeof(int32_t) * a.path_stride * slice;
	a.work = malloc(sizeof(double) * a.work_stride * nt);
	a.from = malloc(sizeof(uint32_t) * a.from_stride * nt);
	a.paths = malloc(sizeof(int32_t) * a.path_stride * slice);
	a.plen = malloc(sizeof(int) * slice);
	a.sq = malloc(sizeof(double) * slice);
	order = malloc(sizeof(DbaRow) * slice);
	jobs = malloc(sizeof(int64_t) * (slice + 1));
	if (a.work == NULL || a.from == NULL || a.paths == NULL || a.plen == NULL || a.sq == NULL ||
		order == NULL || jobs == NULL)
	{
		free(a.work);
		free(a.from);
		free(a.paths);
		free(a.plen);
		free(a.sq);
		free(order);
		free(jobs);
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DBA scratch", bytes);
	}
	a.order = order;
	a.jobs = jobs;
	for (int64_t s0 = r0; s0 < r1; s0 += slice)
	{
		int64_t		m = r1 - s0 < slice ? r1 - s0 : slice,
					nrows = 0,
					njobs = 0;

		a.r0 = s0;
		/* the rows of active centers, grouped by center and length: the jobs */
		for (int64_t i = 0; i < m; i++)
		{
			int			j = labels[s0 + i];

			a.plen[i] = 0;
			if (j < 0 || j >= cs->k || !active[j])
				continue;
			order[nrows].label = j;
			order[nrows].len = (int32_t) (s->off[s0 + i + 1] - s->off[s0 + i]);
			order[nrows].i = i;
			nrows++;
		}
		qsort(order, nrows, sizeof(DbaRow), DbaRowCmp);
		for (int64_t q = 0; q < nrows; q++)
			if (q == 0 || q - jobs[njobs - 1] == LANES || order[q].label != order[q - 1].label ||
				order[q].len != order[q - 1].len)
				jobs[njobs++] = q;
		jobs[njobs] = nrows;
		km_crew_run(nt, njobs, DbaPiece, &a);
		/* in row order, then path order: independent of the threads and the grouping */
		for (int64_t i = 0; i < m; i++)
		{
			int64_t		r = s0 + i;
			int			j = labels[r];
			const float *x = s->values + s->off[r];
			double		w = s->w != NULL ? (double) s->w[r] : 1.0;
			const int32_t *p = a.paths + a.path_stride * i;
			double	   *sj,
					   *cj;

			if (a.plen[i] == 0)
				continue;
			sj = sums + (int64_t) j * cs->lc;
			cj = counts + (int64_t) j * cs->lc;
			for (int q = 0; q < a.plen[i]; q++)
			{
				sj[p[2 * q + 1]] += w * (double) x[p[2 * q]];
				cj[p[2 * q + 1]] += w;
			}
			cost[j] += w * a.sq[i];
		}
	}
	free(a.work);
	free(a.from);
	free(a.paths);
	free(a.plen);
	free(a.sq);
	free(order);
	free(jobs);
	return KM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Pairwise distances
 * ------------------------------------------------------------------------------------------- */

typedef struct PairArg
{
	const KmSeries *s;
	const int64_t *rows;
	int64_t		m;
	int64_t		a0;
	int			band;
	double	   *out;
	double	   *work;			/* per share: the DTW rows (lanes) and the centers (lanes) */
	size_t		stride;
	int			maxlen;
} PairArg;

static inline int
RowLen(const KmSeries *s, int64_t r)
{
	return (int) (s->off[r + 1] - s->off[r]);
}

/*
 * Row a against every later row b: DTW(a, b) with a as the series and b as the "center", as
 * tslearn's cdist_dtw orders them, LANES rows b of one length at a time where the vector code
 * exists.
 */
static void
PairPiece(void *arg, int64_t piece, int share)
{
	PairArg    *p = arg;
	const KmSeries *s = p->s;
	int64_t		a = p->a0 + piece;
	int64_t		ra = p->rows[a];
	const float *xa = s->values + s->off[ra];
	int			la = RowLen(s, ra);
	double	   *w = p->work + p->stride * share;
	double	   *xt = w + 2 * ((size_t) p->maxlen + 1) * LANES;
	double	   *cb = xt + (size_t) p->maxlen * LANES;
	double	   *row = p->out + a * p->m;

#if defined(__AVX512F__)
	double	   *cuts = cb + (size_t) p->maxlen * LANES;

	for (int t = 0; t < la; t++)
		for (int l = 0; l < LANES; l++)
			xt[(size_t) t * LANES + l] = (double) xa[t];
	for (int l = 0; l < LANES; l++)
		cuts[l] = INFINITY;
#endif
	for (int64_t b = a + 1; b < p->m;)
	{
		int			lb = RowLen(s, p->rows[b]);
		int			nl = 1;

#if defined(__AVX512F__)
		double		sq[LANES];

		while (nl < LANES && b + nl < p->m && RowLen(s, p->rows[b + nl]) == lb)
			nl++;
		if (nl > 1)
		{
			for (int l = 0; l < LANES; l++)
			{
				const float *xb = s->values + s->off[p->rows[b + (l < nl ? l : 0)]];

				for (int t = 0; t < lb; t++)
					cb[(size_t) t * LANES + l] = (double) xb[t];
			}
			DistLanes(xt, la, cb, lb, p->band, cuts, w, cuts + 2 * LANES, sq);
			for (int l = 0; l < nl; l++)
				row[b + l] = sqrt(sq[l]);
			b += nl;
			continue;
		}
#endif
		{
			const float *xb = s->values + s->off[p->rows[b]];

			for (int t = 0; t < lb; t++)
				cb[t] = (double) xb[t];
			row[b] = sqrt(km_dtw_sq(xa, la, cb, lb, p->band, INFINITY, w));
			b += nl;
		}
	}
}

KmStatus
km_dtw_pairwise(const KmSeries *s, const int64_t *rows, int64_t m, int64_t a0, int64_t a1,
				int band, int nthreads, double *out, KmError *err)
{
	PairArg		p;
	int			nt = km_crew_size(nthreads, a1 - a0);
	int			maxlen = 1;

	if (a1 <= a0)
		return KM_OK;
	for (int64_t i = 0; i < m; i++)
		if (RowLen(s, rows[i]) > maxlen)
			maxlen = RowLen(s, rows[i]);
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.rows = rows;
	p.m = m;
	p.a0 = a0;
	p.band = band;
	p.out = out;
	p.maxlen = maxlen;
	p.stride = LaneScratch(maxlen, maxlen) + (size_t) maxlen * LANES;
	p.work = malloc(sizeof(double) * p.stride * nt);
	if (p.work == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DTW scratch",
					   sizeof(double) * p.stride * nt);
	for (int64_t a = a0; a < a1; a++)
		out[a * m + a] = 0.0;
	km_crew_run(nt, a1 - a0, PairPiece, &p);
	free(p.work);
	return KM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Many centers against every row (k-means++ candidates)
 * ------------------------------------------------------------------------------------------- */

typedef struct CrossArg
{
	const KmSeries *s;
	int64_t		r0;
	const KmDtwCenters *cs;
	const double *cutoff;
	double	   *out;
	double	   *work;
	size_t		stride;
} CrossArg;

static void
CrossPiece(void *arg, int64_t piece, int share)
{
	CrossArg   *a = arg;
	const KmDtwCenters *cs = a->cs;
	int64_t		lo = a->r0 + piece * PIECE_ROWS,
				hi = lo + PIECE_ROWS;
	double	   *w = a->work + a->stride * share;
	double	   *o = a->out + (lo - a->r0) * cs->k;

	if (hi > a->s->n)
		hi = a->s->n;
	if (OneLength(a->s, lo, hi))
		RowsAgainstCenters(a->s, lo, hi, cs, a->cutoff, w, o);
	else
		for (int64_t r = lo; r < hi; r++)
		{
			const float *x = a->s->values + a->s->off[r];
			double		cut = a->cutoff != NULL ? a->cutoff[r] : INFINITY;

			for (int j0 = 0; j0 < cs->k; j0 += LANES)
			{
				int			grp[LANES],
							nl = cs->k - j0 < LANES ? cs->k - j0 : LANES;

				for (int l = 0; l < nl; l++)
					grp[l] = j0 + l;
				DistGroup(x, RowLen(a->s, r), cs, grp, nl, cut, w, o + (r - lo) * cs->k + j0);
			}
		}
	for (int64_t r = lo; r < hi; r++)
	{
		double		cut = a->cutoff != NULL ? a->cutoff[r] : INFINITY;

		for (int j = 0; j < cs->k; j++)
			if (!(o[(r - lo) * cs->k + j] < cut))
				o[(r - lo) * cs->k + j] = cut;
	}
}

KmStatus
km_dtw_cross(const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs,
			 const double *cutoff, int nthreads, double *out, KmError *err)
{
	CrossArg	a;
	int64_t		pieces = (r1 - r0 + PIECE_ROWS - 1) / PIECE_ROWS;
	int			nt = km_crew_size(nthreads, pieces);

	if (r1 <= r0)
		return KM_OK;
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.r0 = r0;
	a.cs = cs;
	a.cutoff = cutoff;
	a.out = out;
	a.stride = LaneScratch(LongestRow(s, r0, r1), cs->lc);
	a.work = malloc(sizeof(double) * a.stride * nt);
	if (a.work == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DTW scratch",
					   sizeof(double) * a.stride * nt);
	/* the pieces end at r1: a piece past it is cut there */
	{
		KmSeries	part = *s;

		part.n = r1;
		a.s = &part;
		km_crew_run(nt, pieces, CrossPiece, &a);
	}
	free(a.work);
	return KM_OK;
}
