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
 * (km_dtw_dba_pass) is added in row order afterwards, each column of the sums by one thread,
 * so no result depends on the thread count.  Threads start with every signal blocked; one that cannot start
 * leaves its work to the others.  Scratch is allocated per call, the lanes' on cache-line
 * boundaries, and freed on every path.
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
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The margin that keeps the float64 bound below DTW^2 (see the header). */
#define LB_SHRINK (1.0 - 1.0 / 1099511627776.0)
/* Rows a piece of a pass: enough work to amortise a claim and fill the lanes, few enough to balance. */
#define PIECE_ROWS 8

/* Doubles rounded up to whole cache lines: a share's scratch then starts on a line too. */
static inline size_t
Lines(size_t n)
{
	return (n + 7) & ~(size_t) 7;
}

/*
 * n doubles of scratch from a cache-line boundary, so that the lanes' 64-byte loads and stores
 * never straddle two lines (free() releases it).
 */
static inline double *
AllocLines(size_t n)
{
	return aligned_alloc(64, sizeof(double) * Lines(n));
}

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
 * One cell of a warping path's recurrence in eight lanes: (x - c)^2 + min(d, u, l) from the
 * diagonal, up and left cells, and the way it came as the lanes of two bytes: *left those
 * whose left cell is below both others, *diag among the rest those whose diagonal is at most
 * the cell above; the others came from above.  That is the first least of diagonal, up, left,
 * as tslearn's walk back picks it, and only the minimum with l and the addition wait on the
 * previous cell.
 */
static inline __m512d
PathCell(__m512d x, __m512d c, __m512d d, __m512d u, __m512d l, uint8_t *left, uint8_t *diag)
{
	const __m512d du = _mm512_min_pd(d, u),
				e = _mm512_sub_pd(x, c);

	*left = (uint8_t) _mm512_cmp_pd_mask(l, du, _CMP_LT_OQ);
	*diag = (uint8_t) _mm512_cmp_pd_mask(d, u, _CMP_LE_OQ);
	return _mm512_add_pd(_mm512_mul_pd(e, e), _mm512_min_pd(du, l));
}

/* The same without the way: a cell of a distance. */
static inline __m512d
DistCell(__m512d x, __m512d c, __m512d d, __m512d u, __m512d l)
{
	const __m512d e = _mm512_sub_pd(x, c);

	return _mm512_add_pd(_mm512_mul_pd(e, e), _mm512_min_pd(_mm512_min_pd(d, u), l));
}

/*
 * Without a band the matrix is computed in tiles of TILE columns, all rows of one tile before
 * the next, so that the row of C in use stays in the first-level cache; bound[i + 1] carries
 * C(i, j0 - 1), the column left of the tile, from one tile to the next (bound[0] is
 * C(-1, j0 - 1)).  Within a tile rows go two at a time: row i + 1 takes row i's cells from
 * registers as they are made, so that four chains (two rows, two halves of the lanes) wait on
 * their previous cells at once, and only row i + 1 is stored, over row i - 1 in the one row
 * of the tile kept.  The cells and their order of operations are those of the untiled code.
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
TileBegin(double *row, double *bound, int w)
{
	const __m512d inf = _mm512_set1_pd(INFINITY);

	for (int j = 0; j <= w; j++)
	{
		ST(row + (size_t) j * LANES, inf);
		ST(row + (size_t) j * LANES + 8, inf);
	}
	ST(row, LD(bound));
	ST(row + 8, LD(bound + 8));
	ST(bound, inf);
	ST(bound + 8, inf);
}

/*
 * PathLanes without a band, in tiles, in lanes 0 .. 8 chains - 1 (chains 1 or 2: eight series
 * or fewer take half the work).  row (TILE + 1 cells of LANES) holds C(i - 1, j0 - 1) and the
 * tile's cells of row i - 1 before rows i and i + 1, and row i + 1's after them.
 */
static inline __attribute__((always_inline)) void
PathTiled(const double *xt, int lx, const double *ct, int lc, double *row, double *bound,
		  uint32_t *from, double *sq, int chains)
{
	TilesBegin(bound, lx);
	for (int j0 = 0; j0 < lc; j0 += TILE)
	{
		int			w = lc - j0 < TILE ? lc - j0 : TILE;
		int			i;

		TileBegin(row, bound, w);
		for (i = 0; i + 1 < lx; i += 2)
		{
			const double *x1 = xt + (size_t) i * LANES;
			const __m512d x1a = LD(x1),
						x1b = LD(x1 + 8),
						x2a = LD(x1 + LANES),
						x2b = LD(x1 + LANES + 8);
			double	   *b1 = bound + (size_t) (i + 1) * LANES,
					   *b2 = b1 + LANES;
			__m512d		l1a = LD(b1),
						l1b = LD(b1 + 8),
						l2a = LD(b2),
						l2b = LD(b2 + 8),
						d1a = LD(row),
						d1b = LD(row + 8),
						d2a = l1a,
						d2b = l1b;
			uint8_t    *f1 = (uint8_t *) (from + (int64_t) i * lc + j0),
					   *f2 = f1 + (size_t) lc * sizeof(uint32_t);

			/* the next pair's diagonal into the tile is row i + 1's left of it */
			ST(row, l2a);
			ST(row + 8, l2b);
			for (int j = 0; j < w; j++)
			{
				double	   *pj = row + (size_t) (j + 1) * LANES;
				const double *cj = ct + (size_t) (j0 + j) * LANES;
				const __m512d ua = LD(pj),
							ca = LD(cj);

				l1a = PathCell(x1a, ca, d1a, ua, l1a, &f1[4 * j], &f1[4 * j + 1]);
				l2a = PathCell(x2a, ca, d2a, l1a, l2a, &f2[4 * j], &f2[4 * j + 1]);
				ST(pj, l2a);
				d1a = ua;
				d2a = l1a;
				if (chains == 2)
				{
					const __m512d ub = LD(pj + 8),
								cb = LD(cj + 8);

					l1b = PathCell(x1b, cb, d1b, ub, l1b, &f1[4 * j + 2], &f1[4 * j + 3]);
					l2b = PathCell(x2b, cb, d2b, l1b, l2b, &f2[4 * j + 2], &f2[4 * j + 3]);
					ST(pj + 8, l2b);
					d1b = ub;
					d2b = l1b;
				}
			}
			ST(b1, l1a);
			ST(b1 + 8, l1b);
			ST(b2, l2a);
			ST(b2 + 8, l2b);
		}
		if (i < lx)
		{
			const __m512d xa = LD(xt + (size_t) i * LANES),
						xb = LD(xt + (size_t) i * LANES + 8);
			double	   *bi = bound + (size_t) (i + 1) * LANES;
			__m512d		la = LD(bi),
						lb = LD(bi + 8),
						da = LD(row),
						db = LD(row + 8);
			uint8_t    *f = (uint8_t *) (from + (int64_t) i * lc + j0);

			for (int j = 0; j < w; j++)
			{
				double	   *pj = row + (size_t) (j + 1) * LANES;
				const double *cj = ct + (size_t) (j0 + j) * LANES;
				const __m512d ua = LD(pj);

				la = PathCell(xa, LD(cj), da, ua, la, &f[4 * j], &f[4 * j + 1]);
				da = ua;
				if (chains == 2)
				{
					const __m512d ub = LD(pj + 8);

					lb = PathCell(xb, LD(cj + 8), db, ub, lb, &f[4 * j + 2], &f[4 * j + 3]);
					db = ub;
				}
			}
			ST(bi, la);
			ST(bi + 8, lb);
		}
	}
	ST(sq, LD(bound + (size_t) lx * LANES));
	ST(sq + 8, LD(bound + (size_t) lx * LANES + 8));
}

/* DistLanes without a band or a cut, in tiles as PathTiled, in lanes 0 .. 8 chains - 1. */
static inline __attribute__((always_inline)) void
DistTiled(const double *xt, int lx, const double *ct, int lc, double *row, double *bound,
		  double *out, int chains)
{
	TilesBegin(bound, lx);
	for (int j0 = 0; j0 < lc; j0 += TILE)
	{
		int			w = lc - j0 < TILE ? lc - j0 : TILE;
		int			i;

		TileBegin(row, bound, w);
		for (i = 0; i + 1 < lx; i += 2)
		{
			const double *x1 = xt + (size_t) i * LANES;
			const __m512d x1a = LD(x1),
						x1b = LD(x1 + 8),
						x2a = LD(x1 + LANES),
						x2b = LD(x1 + LANES + 8);
			double	   *b1 = bound + (size_t) (i + 1) * LANES,
					   *b2 = b1 + LANES;
			__m512d		l1a = LD(b1),
						l1b = LD(b1 + 8),
						l2a = LD(b2),
						l2b = LD(b2 + 8),
						d1a = LD(row),
						d1b = LD(row + 8),
						d2a = l1a,
						d2b = l1b;

			ST(row, l2a);
			ST(row + 8, l2b);
			for (int j = 0; j < w; j++)
			{
				double	   *pj = row + (size_t) (j + 1) * LANES;
				const double *cj = ct + (size_t) (j0 + j) * LANES;
				const __m512d ua = LD(pj),
							ca = LD(cj);

				l1a = DistCell(x1a, ca, d1a, ua, l1a);
				l2a = DistCell(x2a, ca, d2a, l1a, l2a);
				ST(pj, l2a);
				d1a = ua;
				d2a = l1a;
				if (chains == 2)
				{
					const __m512d ub = LD(pj + 8),
								cb = LD(cj + 8);

					l1b = DistCell(x1b, cb, d1b, ub, l1b);
					l2b = DistCell(x2b, cb, d2b, l1b, l2b);
					ST(pj + 8, l2b);
					d1b = ub;
					d2b = l1b;
				}
			}
			ST(b1, l1a);
			ST(b1 + 8, l1b);
			ST(b2, l2a);
			ST(b2 + 8, l2b);
		}
		if (i < lx)
		{
			const __m512d xa = LD(xt + (size_t) i * LANES),
						xb = LD(xt + (size_t) i * LANES + 8);
			double	   *bi = bound + (size_t) (i + 1) * LANES;
			__m512d		la = LD(bi),
						lb = LD(bi + 8),
						da = LD(row),
						db = LD(row + 8);

			for (int j = 0; j < w; j++)
			{
				double	   *pj = row + (size_t) (j + 1) * LANES;
				const double *cj = ct + (size_t) (j0 + j) * LANES;
				const __m512d ua = LD(pj);

				la = DistCell(xa, LD(cj), da, ua, la);
				da = ua;
				if (chains == 2)
				{
					const __m512d ub = LD(pj + 8);

					lb = DistCell(xb, LD(cj + 8), db, ub, lb);
					db = ub;
				}
			}
			ST(bi, la);
			ST(bi + 8, lb);
		}
	}
	ST(out, LD(bound + (size_t) lx * LANES));
	ST(out + 8, LD(bound + (size_t) lx * LANES + 8));
}

/*
 * The recurrence of km_dtw_path for the series of lanes 0 .. nl - 1, all of one length lx,
 * each against its own center of lc samples, the same operations in the same order as the
 * scalar code in every lane.  xt holds the series interleaved (xt[i * LANES + l] is sample i
 * of lane l), ct the centers so (ct[j * LANES + l]), work 2 (lc + 1) LANES doubles; from
 * (lx x lc) gets, per cell, four bytes (PathCell): the lanes of chain A that came from the
 * left, those of the rest that came from the diagonal, and the same for chain B; the others
 * came from above.  sq gets the lanes' DTW^2.  Lanes nl .. LANES - 1 are undefined.
 */
static void
PathLanes(const double *xt, int lx, const double *ct, int lc, int band, int nl, double *work,
		  double *bound, uint32_t *from, double *sq)
{
	double	   *prev = work,
			   *cur = work + (size_t) (lc + 1) * LANES;
	const __m512d inf = _mm512_set1_pd(INFINITY);
	int			wprev = 0,
				wcur = lc + 1;

	if (band < 0)
	{
		if (nl <= 8)
			PathTiled(xt, lx, ct, lc, work, bound, from, sq, 1);
		else
			PathTiled(xt, lx, ct, lc, work, bound, from, sq, 2);
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
			const double *cj = ct + (size_t) j * LANES;
			const __m512d ua = LD(pj),
						ub = LD(pj + 8);

			la = PathCell(xa, LD(cj), da, ua, la, &f[4 * j], &f[4 * j + 1]);
			lb = PathCell(xb, LD(cj + 8), db, ub, lb, &f[4 * j + 2], &f[4 * j + 3]);
			ST(cur + (size_t) (j + 1) * LANES, la);
			ST(cur + (size_t) (j + 1) * LANES + 8, lb);
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

/*
 * The paths of lanes 0 .. nl - 1 back through from, as km_dtw_path walks them, as runs: a
 * path meets every column j of the center in one run of rows, ia[j] .. ib[j], and lane l's
 * ia goes to runs[l * rs + j], its ib to runs[l * rs + lc + j] (rs >= 2 lc).  All lanes step
 * together, each cell's word gathered at once; walking back, ia is written at every step (the
 * last row written is the column's first) and ib on entering a column.
 */
static void
WalkLanes(const uint32_t *from, int lx, int lc, int nl, int32_t *runs, int rs)
{
	const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i one = _mm512_set1_epi32(1),
				zero = _mm512_setzero_si512();
	/* lane l's bits in its cell's word (PathCell's bytes): left at l (l + 8 in chain B), diagonal 8 up */
	const __m512i shl = _mm512_mask_add_epi32(lane, 0xFF00, lane, _mm512_set1_epi32(8)),
				shd = _mm512_add_epi32(shl, _mm512_set1_epi32(8));
	const __m512i ia = _mm512_mullo_epi32(lane, _mm512_set1_epi32(rs)),
				ib = _mm512_add_epi32(ia, _mm512_set1_epi32(lc));
	/* the cell's index in from, in 64 bits, for lanes 0-7 and 8-15 */
	__m512i		klo = _mm512_set1_epi64((int64_t) (lx - 1) * lc + lc - 1),
				khi = klo;
	__m512i		i = _mm512_set1_epi32(lx - 1),
				j = _mm512_set1_epi32(lc - 1);
	__mmask16	walking = (__mmask16) ((1u << nl) - 1);

	_mm512_mask_i32scatter_epi32(runs, walking, _mm512_add_epi32(ia, j), i, 4);
	_mm512_mask_i32scatter_epi32(runs, walking, _mm512_add_epi32(ib, j), i, 4);
	walking &= _mm512_cmpgt_epi32_mask(_mm512_add_epi32(i, j), zero);
	while (walking != 0)
	{
		__mmask16	ipos = _mm512_cmpgt_epi32_mask(i, zero),
					jpos = _mm512_cmpgt_epi32_mask(j, zero),
					inner = walking & ipos & jpos,	/* on an edge the way is known */
					left,
					diag,
					di,
					dj;
		__m512i		w = _mm512_castsi256_si512(_mm512_mask_i64gather_epi32(_mm256_setzero_si256(),
																		   (__mmask8) inner, klo,
																		   from, 4));

		w = _mm512_inserti64x4(w, _mm512_mask_i64gather_epi32(_mm256_setzero_si256(),
															  (__mmask8) (inner >> 8), khi,
															  from, 4), 1);
		left = _mm512_test_epi32_mask(_mm512_srlv_epi32(w, shl), one);
		diag = _mm512_test_epi32_mask(_mm512_srlv_epi32(w, shd), one);
		/* on the first row only left, on the first column only up */
		di = walking & ipos & (__mmask16) ~(jpos & left);
		dj = walking & jpos & (__mmask16) (~ipos | left | diag);
		i = _mm512_mask_sub_epi32(i, di, i, one);
		j = _mm512_mask_sub_epi32(j, dj, j, one);
		klo = _mm512_mask_sub_epi64(klo, (__mmask8) di, klo, _mm512_set1_epi64(lc));
		khi = _mm512_mask_sub_epi64(khi, (__mmask8) (di >> 8), khi, _mm512_set1_epi64(lc));
		klo = _mm512_mask_sub_epi64(klo, (__mmask8) dj, klo, _mm512_set1_epi64(1));
		khi = _mm512_mask_sub_epi64(khi, (__mmask8) (dj >> 8), khi, _mm512_set1_epi64(1));
		_mm512_mask_i32scatter_epi32(runs, walking, _mm512_add_epi32(ia, j), i, 4);
		_mm512_mask_i32scatter_epi32(runs, dj, _mm512_add_epi32(ib, j), i, 4);
		walking &= _mm512_cmpgt_epi32_mask(_mm512_add_epi32(i, j), zero);
	}
}

/*
 * DTW^2 of the pairs of lanes 0 .. nl - 1 at once: lane l's series of lx samples
 * (xt[i * LANES + l]) against lane l's center of lc samples (ct[j * LANES + l]), with DtwRows'
 * operations in every lane.  It stops once every lane's row minimum exceeds the lane's cut[l]
 * (INFINITY: never); every lane is INFINITY then, and a lane that passed its cut earlier keeps
 * its exact, larger value.  Every lane's inputs are set; lanes nl .. LANES - 1 of out may be
 * left undefined.  work holds 2 (lc + 1) LANES doubles.
 */
static void
DistLanes(const double *xt, int lx, const double *ct, int lc, int band, int nl, const double *cut,
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
			if (nl <= 8)
				DistTiled(xt, lx, ct, lc, work, bound, out, 1);
			else
				DistTiled(xt, lx, ct, lc, work, bound, out, 2);
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
	int			piece_rows;		/* rows a piece (AssignPieceRows) */
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
		DistLanes(xt, lx, ct, lc, cs->band, nl, cuts, work, cuts + 2 * LANES, out);
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
		DistLanes(xt, lx, ct, lc, cs->band, nl, cuts, work, cuts + 2 * LANES, out);
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
 * Rows an assignment piece takes: with k <= LANES / 2 centers, the fewest whose (row, center)
 * pairs fill whole vectors (LANES / gcd(LANES, k), at most LANES), so that no lane idles but
 * in the last piece and the pieces share out evenly; else PIECE_ROWS.
 */
static int
AssignPieceRows(int k)
{
	int			g = LANES;

	if (k > LANES / 2)
		return PIECE_ROWS;
	while (k % g != 0)
		g /= 2;
	return LANES / g;
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
	int64_t		lo = a->r0 + piece * a->piece_rows,
				hi = lo + a->piece_rows < a->r1 ? lo + a->piece_rows : a->r1;
	int			k = a->cs->k;

	if (k <= LANES / 2 && OneLength(a->s, lo, hi))
	{
		double		vals[LANES * (LANES / 2)];

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
	int			rows = AssignPieceRows(cs->k);
	int64_t		pieces = (r1 - r0 + rows - 1) / rows;
	int			nt = km_crew_size(nthreads, pieces);
	size_t		stride;

	if (r1 <= r0)
		return KM_OK;
	if (cs->k < 1 || cs->lc < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "no centers to assign to");
	memset(&a, 0, sizeof(a));
	a.piece_rows = rows;
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
	stride = Lines(stride);
	a.work_stride = stride;
	a.work = AllocLines(stride * nt);
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

/* A row of a DBA slice, to be sorted into groups of one length. */
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

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

typedef struct DbaArg
{
	const KmSeries *s;
	int64_t		r0;				/* the slice's first row */
	int64_t		m;				/* and its rows */
	const int32_t *labels;		/* global */
	const KmDtwCenters *cs;
	const DbaRow *order;		/* the slice's rows with an active label, grouped */
	const int64_t *jobs;		/* njobs + 1: each job's first entry of order */
	int64_t		njobs;
	int			nadd;			/* pieces after the jobs that add the paths (DbaAdd) */
	atomic_int_fast64_t done;	/* jobs finished */
	size_t		work_stride;	/* per share, in doubles: the rows of C (scalar or lanes), xt, ct */
	double	   *work;
	size_t		from_stride;	/* per share, in uint32: maxlen x lc */
	uint32_t   *from;
	int32_t    *runs;			/* per row of the slice: its path's ia[lc], ib[lc] (WalkLanes) */
	size_t		runs_stride;
	uint8_t    *has;			/* per row: 1 when it has a path, 0 when left out */
	double	   *sq;				/* per row: DTW^2 */
	double	   *sums;			/* the caller's */
	double	   *counts;
	double	   *cost;
} DbaArg;

/*
 * One job: up to LANES rows of one length, each aligned with its own center, together where
 * the vector code exists (unused lanes repeat the first row and are dropped), else one by one.
 */
static void
DbaJob(DbaArg *a, int64_t job, int share)
{
	const KmDtwCenters *cs = a->cs;
	const DbaRow *o = a->order + a->jobs[job];
	int			nl = (int) (a->jobs[job + 1] - a->jobs[job]);
	int			lc = cs->lc;
	double	   *work = a->work + a->work_stride * share;
	uint32_t   *from = a->from + a->from_stride * share;

#if defined(__AVX512F__)
	if (nl > 1)
	{
		int			lx = o[0].len;
		double	   *xt = work + 2 * ((size_t) lc + 1) * LANES,
				   *bound = xt + (size_t) lx * LANES,
				   *ct = bound + ((size_t) lx + 1) * LANES;
		const float *x[LANES];
		const double *c[LANES];
		double		sq[LANES];
		int32_t    *runs = (int32_t *) work;	/* once the rows of C are done with */

		for (int l = 0; l < LANES; l++)
		{
			const DbaRow *row = &o[l < nl ? l : 0];

			x[l] = a->s->values + a->s->off[a->r0 + row->i];
			c[l] = cs->c + (int64_t) row->label * lc;
		}
		/* interleaved a line at a time */
		for (int t = 0; t < lx; t++)
			for (int l = 0; l < LANES; l++)
				xt[(size_t) t * LANES + l] = (double) x[l][t];
		for (int t = 0; t < lc; t++)
			for (int l = 0; l < LANES; l++)
				ct[(size_t) t * LANES + l] = c[l][t];
		PathLanes(xt, lx, ct, lc, cs->band, nl, work, bound, from, sq);
		WalkLanes(from, lx, lc, nl, runs, 2 * lc);
		for (int l = 0; l < nl; l++)
		{
			memcpy(a->runs + a->runs_stride * o[l].i, runs + (size_t) 2 * lc * l,
				   sizeof(int32_t) * 2 * lc);
			a->sq[o[l].i] = sq[l];
			a->has[o[l].i] = 1;
		}
		return;
	}
#endif
	for (int l = 0; l < nl; l++)
	{
		int64_t		i = o[l].i,
					r = a->r0 + i;
		int32_t    *pairs = (int32_t *) (work + 2 * ((size_t) lc + 1)),
				   *ia = a->runs + a->runs_stride * i,
				   *ib = ia + lc;
		int			n;

		a->sq[i] = km_dtw_path(a->s->values + a->s->off[r], o[l].len,
							   cs->c + (int64_t) o[l].label * lc, lc, cs->band, work,
							   (uint8_t *) from, pairs, &n);
		for (int q = 0; q < n; q++)
		{
			if (q == 0 || pairs[2 * q + 1] != pairs[2 * q - 1])
				ia[pairs[2 * q + 1]] = pairs[2 * q];
			ib[pairs[2 * q + 1]] = pairs[2 * q];
		}
		a->has[i] = 1;
	}
}

/*
 * The slice's paths added into their centers' sums and counts at columns [t0, t1): row after
 * row, and down each column's run of the path, so that every column gets the additions of the
 * serial order whatever the split of the columns.  Columns do not meet within a row, so the
 * vector code takes 16 at a time, a lane per column, stepping down their runs together (a lane
 * whose run has ended adds nothing).  With t0 = 0, the costs too.
 */
static void
DbaAdd(DbaArg *a, int t0, int t1)
{
	const KmSeries *s = a->s;
	int			lc = a->cs->lc;

	for (int64_t i = 0; i < a->m; i++)
	{
		int64_t		r = a->r0 + i;
		int			j = a->labels[r];
		const float *x = s->values + s->off[r];
		double		w = s->w != NULL ? (double) s->w[r] : 1.0;
		const int32_t *ia = a->runs + a->runs_stride * i,
				   *ib = ia + lc;
		double	   *sj = a->sums + (int64_t) j * lc,
				   *cj = a->counts + (int64_t) j * lc;
		int			t = t0;

		if (!a->has[i])
			continue;
		if (t0 == 0)
			a->cost[j] += w * a->sq[i];
#if defined(__AVX512F__)
		{
			const __m512d wv = _mm512_set1_pd(w);

			for (; t < t1; t += 16)
			{
				__mmask16	m = t1 - t >= 16 ? 0xFFFF : (__mmask16) ((1u << (t1 - t)) - 1);
				__mmask8	mlo = (__mmask8) m,
							mhi = (__mmask8) (m >> 8);
				__m512i		row = _mm512_maskz_loadu_epi32(m, ia + t),
							end = _mm512_maskz_loadu_epi32(m, ib + t);
				__m512d		slo = _mm512_maskz_loadu_pd(mlo, sj + t),
							shi = _mm512_maskz_loadu_pd(mhi, sj + t + 8),
							clo = _mm512_maskz_loadu_pd(mlo, cj + t),
							chi = _mm512_maskz_loadu_pd(mhi, cj + t + 8);
				__mmask16	go = _mm512_mask_cmple_epi32_mask(m, row, end);

				while (go != 0)
				{
					__m512	xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), go, row, x, 4);
					__m512d		xlo = _mm512_mul_pd(wv, _mm512_cvtps_pd(_mm512_castps512_ps256(xv))),
								xhi = _mm512_mul_pd(wv, _mm512_cvtps_pd(_mm256_castpd_ps(
										_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))));

					slo = _mm512_mask_add_pd(slo, (__mmask8) go, slo, xlo);
					shi = _mm512_mask_add_pd(shi, (__mmask8) (go >> 8), shi, xhi);
					clo = _mm512_mask_add_pd(clo, (__mmask8) go, clo, wv);
					chi = _mm512_mask_add_pd(chi, (__mmask8) (go >> 8), chi, wv);
					row = _mm512_add_epi32(row, _mm512_set1_epi32(1));
					go = _mm512_mask_cmple_epi32_mask(go, row, end);
				}
				_mm512_mask_storeu_pd(sj + t, mlo, slo);
				_mm512_mask_storeu_pd(sj + t + 8, mhi, shi);
				_mm512_mask_storeu_pd(cj + t, mlo, clo);
				_mm512_mask_storeu_pd(cj + t + 8, mhi, chi);
			}
		}
#endif
		for (; t < t1; t++)
		{
			double		sv = sj[t],
						cv = cj[t];

			for (int q = ia[t]; q <= ib[t]; q++)
			{
				sv += w * (double) x[q];
				cv += w;
			}
			sj[t] = sv;
			cj[t] = cv;
		}
	}
}

/*
 * A piece of a DBA slice: a job, or after the jobs a share of the columns to add (DbaAdd),
 * which waits for every job to be done, yielding the core meanwhile.  Pieces are claimed in
 * order, so by then every job is being worked on and the wait ends.
 */
static void
DbaPiece(void *arg, int64_t piece, int share)
{
	DbaArg	   *a = arg;
	int			lc = a->cs->lc;

	if (piece < a->njobs)
	{
		DbaJob(a, piece, share);
		atomic_fetch_add_explicit(&a->done, 1, memory_order_release);
		return;
	}
	piece -= a->njobs;
	while (atomic_load_explicit(&a->done, memory_order_acquire) < a->njobs)
		sched_yield();
	DbaAdd(a, (int) ((int64_t) lc * piece / a->nadd), (int) ((int64_t) lc * (piece + 1) / a->nadd));
}

/*
 * Cuts rows [q, e) of the order, all of one length, into jobs (their first rows into
 * jobs[njobs ..]) and returns the jobs' count so far.  A job takes LANES rows, but the last
 * LANES (nt - 1) + 8 rows or fewer go eight at a time, half a job's work in the vector code, so
 * that nt threads claiming them in turn finish nearly together.
 */
static int64_t
DbaJobs(int64_t q, int64_t e, int nt, int64_t *jobs, int64_t njobs)
{
	while (q < e)
	{
		jobs[njobs++] = q;
		q += e - q > (int64_t) LANES * (nt - 1) + 8 ? LANES : 8;
	}
	return njobs;
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
	void	   *block;

	if (r1 <= r0)
		return KM_OK;
	maxlen = LongestRow(s, r0, r1);
	slice = r1 - r0 < DBA_SLICE_ROWS ? r1 - r0 : DBA_SLICE_ROWS;
	nt = km_crew_size(nthreads, (slice + LANES - 1) / LANES);
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.labels = labels;
	a.cs = cs;
	a.sums = sums;
	a.counts = counts;
	a.cost = cost;
	/* a few column shares a thread, so that the adding splits evenly too */
	a.nadd = nt > 1 ? (cs->lc < 4 * nt ? cs->lc : 4 * nt) : 1;
	a.work_stride = Lines((2 * ((size_t) cs->lc + 1) + 2 * (size_t) maxlen + 1 + cs->lc) * LANES);
	a.from_stride = (size_t) maxlen * cs->lc;
	a.runs_stride = 2 * (size_t) cs->lc;
	/*
	 * One block for all of it, each part on a cache line: allocations of one size call after
	 * call then reuse the same memory rather than map fresh pages each time.
	 */
	{
		size_t		parts[] = {sizeof(double) * a.work_stride * nt,
			sizeof(uint32_t) * a.from_stride * nt, sizeof(int32_t) * a.runs_stride * slice,
			sizeof(double) * slice, sizeof(DbaRow) * slice, sizeof(int64_t) * (slice + 1),
		(size_t) slice};
		char	   *p;

		bytes = 0;
		for (int q = 0; q < (int) (sizeof(parts) / sizeof(parts[0])); q++)
			bytes += (parts[q] + 63) & ~(size_t) 63;
		block = aligned_alloc(64, bytes);
		if (block == NULL)
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu bytes of DBA scratch",
						   bytes);
		p = block;
		a.work = (double *) p;
		p += (parts[0] + 63) & ~(size_t) 63;
		a.from = (uint32_t *) p;
		p += (parts[1] + 63) & ~(size_t) 63;
		a.runs = (int32_t *) p;
		p += (parts[2] + 63) & ~(size_t) 63;
		a.sq = (double *) p;
		p += (parts[3] + 63) & ~(size_t) 63;
		order = (DbaRow *) p;
		p += (parts[4] + 63) & ~(size_t) 63;
		jobs = (int64_t *) p;
		p += (parts[5] + 63) & ~(size_t) 63;
		a.has = (uint8_t *) p;
	}
	a.order = order;
	a.jobs = jobs;
	for (int64_t s0 = r0; s0 < r1; s0 += slice)
	{
		int64_t		nrows = 0,
					njobs = 0;

		a.r0 = s0;
		a.m = r1 - s0 < slice ? r1 - s0 : slice;
		/* the rows of active centers, grouped by length: the jobs */
		for (int64_t i = 0; i < a.m; i++)
		{
			int			j = labels[s0 + i];

			a.has[i] = 0;
			if (j < 0 || j >= cs->k || !active[j])
				continue;
			order[nrows].label = j;
			order[nrows].len = (int32_t) (s->off[s0 + i + 1] - s->off[s0 + i]);
			order[nrows].i = i;
			nrows++;
		}
		if (nrows == 0)
			continue;
		qsort(order, nrows, sizeof(DbaRow), DbaRowCmp);
		for (int64_t q = 0, e; q < nrows; q = e)
		{
			for (e = q; e < nrows && order[e].len == order[q].len; e++)
				;
			njobs = DbaJobs(q, e, nt, jobs, njobs);
		}
		jobs[njobs] = nrows;
		a.njobs = njobs;
		atomic_init(&a.done, 0);
		/* the paths, then their sums in row order: independent of the threads and the grouping */
		km_crew_run(nt, njobs + a.nadd, DbaPiece, &a);
	}
	free(block);
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
			DistLanes(xt, la, cb, lb, p->band, nl, cuts, w, cuts + 2 * LANES, sq);
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
	p.stride = Lines(LaneScratch(maxlen, maxlen) + (size_t) maxlen * LANES);
	p.work = AllocLines(p.stride * nt);
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
	a.stride = Lines(LaneScratch(LongestRow(s, r0, r1), cs->lc));
	a.work = AllocLines(a.stride * nt);
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
