/*
 * km_gemm.c -- nearest-center search for large dimensions: an SGEMM with the argmin fused in.
 *
 * For d > KM_SMALL_D_MAX the scores cnorm[j] - 2 x_i.c_j are the entries of the product X C^T,
 * so the work is a matrix product and the argmin over each segment is a cheap fold over its
 * result.  The product is computed tile by tile by a register-blocked micro-kernel; each tile
 * is folded into a running per-row minimum as soon as its dot products are complete, so the
 * n x k score matrix is never written out.
 *
 * Orientation.  Rows go in the vector lanes and centers are broadcast: a tile is GEMM_MR rows
 * (GEMM_MR / lanes vector registers) by GEMM_NR centers, one accumulator register per (row
 * vector, center).  With rows in lanes the argmin is a vertical compare-and-blend per center,
 * with no horizontal reduction, and a segment boundary inside a tile costs nothing but a flush
 * of the running minimum; with centers in lanes every boundary would need a masked cross-lane
 * reduction, which is expensive for the elbow's many short segments.
 *
 * Data layout.  The centers are packed once by km_gemm_pack into panels of GEMM_NR centers,
 * coordinate-major inside a panel (panel[t * GEMM_NR + jj] = c[j0 + jj][t]), the last panel
 * padded with zero centers; the micro-kernel reads a panel sequentially, one broadcast per
 * center and coordinate.  Each call packs (transposes) GEMM_MR rows at a time into a stack
 * buffer, coordinate-major (apack[t * GEMM_MR + r]), so that one aligned vector load gives a
 * coordinate of GEMM_MR / lanes rows.  The row panel stays in L1/L2 while all center panels
 * stream past it from L2/L3; the next row panel is prefetched meanwhile.
 *
 * Blocking over d.  Up to KC_MAX coordinates the whole dot product is accumulated in registers
 * in one pass.  Beyond that d is cut into near-equal slices of at most KC_MAX coordinates and
 * the centers into blocks of PANEL_BLOCK panels; the partial sums of one block live in a stack
 * buffer between slices.  Slicing keeps the order of the additions, so results do not depend
 * on it.
 *
 * Folding.  A tile inside one segment is folded in registers.  A tile that crosses a segment
 * boundary, or whose panel is partly padding, goes through memory (FoldTileSlow).  Finished
 * segments are buffered and written 16 at a time per row (FoldDrain), which matters when the
 * segments are single centers, as for the k-means++ candidates.  A panel with at most
 * GEMM_NR / 2 real centers uses a half-width tile.
 *
 * Arithmetic.  Every dot product is accumulated with fused multiply-adds in coordinate order
 * starting from the first product, and the score is fl(cnorm - 2 dot): the same operations as
 * km_argmin_ref, so on FMA hardware the result is bit-identical to it, whatever the ISA path,
 * the tile kind, the tile position or the way rows are split between calls.  Ties keep the
 * lowest index because centers are folded in increasing index order with a strict compare;
 * NaN scores are never chosen; an empty segment gives its start offset and +inf, like
 * km_argmin_ref.  seg_off[0] must be 0 and the offsets non-decreasing.
 *
 * Resources.  km_gemm_argmin is single-threaded and reentrant, allocates nothing and keeps its
 * scratch on the stack: about 100 kB with AVX-512 (the packed rows, GEMM_MR * KC_MAX floats,
 * are most of it), 42 kB with AVX2, 21 kB for the portable path.
 */
#include "km_kernels.h"
#include "km_simd.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/*
 * Register tile.  AVX-512: 32 rows (2 zmm) x 14 centers = 28 accumulators, plus 2 row vectors;
 * the center values are broadcast straight from memory.  AVX2: 16 rows (2 ymm) x 6 centers = 12
 * accumulators, 2 row vectors and a broadcast register, within the 16 ymm registers.
 */
#if defined(__AVX512F__)
#define GEMM_MR 32
#define GEMM_NR 14
#define GEMM_VEC 1
#elif defined(__AVX2__) && defined(__FMA__)
#define GEMM_MR 16
#define GEMM_NR 6
#define GEMM_VEC 1
#else
#define GEMM_MR 8
#define GEMM_NR 4
#endif

/* Coordinates per pass; the packed rows (GEMM_MR * KC_MAX floats) fit in L2 with room to spare. */
#define KC_MAX 512
/* Center panels whose partial sums are kept between slices when d > KC_MAX. */
#define PANEL_BLOCK 16

/* Modes of a tile: start from saved partial sums, and fold the result (else save it). */
#define TILE_LOAD 1
#define TILE_FOLD 2

/* Finished segments buffered per row panel before they are written out row by row. */
#define OUT_BUF 16

/*
 * Running argmin of the rows of one row panel: the segment being folded, its end, and per row
 * the best score and index so far.  Finished segments are buffered column-wise (one vector
 * store each) and written out by FoldDrain, which turns them into contiguous runs per row.
 */
typedef struct GemmFold
{
	float		best[GEMM_MR] __attribute__((aligned(64)));
	int32_t		idx[GEMM_MR] __attribute__((aligned(64)));
	float		obest[OUT_BUF][GEMM_MR] __attribute__((aligned(64)));
	int32_t		oidx[OUT_BUF][GEMM_MR] __attribute__((aligned(64)));
	int			nout;			/* segments in obest/oidx */
	int			out_seg0;		/* the first of them */
	const float *cnorm;
	const int  *seg_off;
	int			nseg;
	int			seg;			/* segment of the next center folded */
	int			seg_end;		/* seg_off[seg + 1] */
	int			nrows;			/* valid rows in the panel */
	int32_t    *labels;			/* output of the panel's first row */
	float	   *out_best;
} GemmFold;

/* Bytes of the packed centers: ceil(k / GEMM_NR) panels of GEMM_NR x d floats. */
size_t
km_gemm_packed_size(int k, int d)
{
	size_t		npanels = k > 0 ? ((size_t) k + GEMM_NR - 1) / GEMM_NR : 0;

	return npanels * GEMM_NR * (size_t) (d > 0 ? d : 0) * sizeof(float);
}

/* Packs the k x d centers into coordinate-major panels of GEMM_NR, padding with zero centers. */
void
km_gemm_pack(const float *c, int k, int d, void *packed)
{
	float	   *out = packed;
	int			npanels = (k + GEMM_NR - 1) / GEMM_NR;

	if (k <= 0 || d <= 0)
		return;
	for (int p = 0; p < npanels; p++)
	{
		float	   *panel = out + (size_t) p * GEMM_NR * d;

		for (int jj = 0; jj < GEMM_NR; jj++)
		{
			int			j = p * GEMM_NR + jj;

			/* Walk each center contiguously; the panel writes are strided but stay in cache. */
			if (j < k)
			{
				const float *cj = c + (size_t) j * d;

				for (int t = 0; t < d; t++)
					panel[(size_t) t * GEMM_NR + jj] = cj[t];
			}
			else
			{
				for (int t = 0; t < d; t++)
					panel[(size_t) t * GEMM_NR + jj] = 0.0f;
			}
		}
	}
}

#if defined(__AVX512F__)

/*
 * Transposes coordinates [t0, t0 + kc) of rows x[0..nrows) into apack (coordinate-major,
 * GEMM_MR rows per coordinate); missing rows are zero so the tile arithmetic stays finite.
 * Rows are read contiguously, 16 x 16 blocks at a time, with masked loads at the tail.  When
 * pf_ahead, the same block of the next GEMM_MR rows (which must exist) is prefetched: with few
 * centers the tiles are too short to hide the memory latency of the rows otherwise.
 */
static void
PackRows(const float *x, int d, int nrows, int t0, int kc, float *apack, int pf_ahead)
{
	for (int g = 0; g < GEMM_MR; g += 16)
	{
		int			rows = nrows - g < 16 ? (nrows - g > 0 ? nrows - g : 0) : 16;

		for (int tb = 0; tb < kc; tb += 16)
		{
			int			m = kc - tb < 16 ? kc - tb : 16;
			__mmask16	mask = (__mmask16) ((1u << m) - 1);
			__m512		v[16];

			if (pf_ahead)
				for (int i = 0; i < 16; i++)
					__builtin_prefetch(x + (size_t) (GEMM_MR + g + i) * d + t0 + tb, 0, 2);
			for (int i = 0; i < 16; i++)
				v[i] = i < rows ?
					_mm512_maskz_loadu_ps(mask, x + (size_t) (g + i) * d + t0 + tb) :
					_mm512_setzero_ps();
			km_transpose16(v);
			for (int c = 0; c < m; c++)
				_mm512_store_ps(apack + (size_t) (tb + c) * GEMM_MR + g, v[c]);
		}
	}
}

#else

/*
 * Transposes coordinates [t0, t0 + kc) of rows x[0..nrows) into apack (coordinate-major,
 * GEMM_MR rows per coordinate); missing rows are zero so the tile arithmetic stays finite.
 */
static void
PackRows(const float *x, int d, int nrows, int t0, int kc, float *apack, int pf_ahead)
{
	int			r;

	(void) pf_ahead;			/* no software prefetch in the portable path */

	for (r = 0; r < nrows; r++)
	{
		const float *src = x + (size_t) r * d + t0;

		for (int t = 0; t < kc; t++)
			apack[(size_t) t * GEMM_MR + r] = src[t];
	}
	for (; r < GEMM_MR; r++)
	{
		for (int t = 0; t < kc; t++)
			apack[(size_t) t * GEMM_MR + r] = 0.0f;
	}
}

#endif

#if defined(__AVX512F__)

/*
 * Writes the buffered segments out[row * nseg + out_seg0 + s] for the panel's rows.  A 16 x 16
 * transpose turns 16 segment vectors into 16 row vectors, each one masked store; with
 * one-center segments (k-means++ candidates) scalar stores here cost more than the tiles.
 */
static void
FoldDrain(GemmFold *f)
{
	__mmask16	mask = (__mmask16) ((1u << f->nout) - 1);

	for (int g = 0; g < f->nrows; g += 16)
	{
		int			rows = f->nrows - g < 16 ? f->nrows - g : 16;
		__m512		vb[16];
		__m512		vi[16];

		for (int s = 0; s < 16; s++)
		{
			vb[s] = s < f->nout ? _mm512_load_ps(f->obest[s] + g) : _mm512_setzero_ps();
			vi[s] = s < f->nout ? _mm512_load_ps((const float *) f->oidx[s] + g) :
				_mm512_setzero_ps();
		}
		km_transpose16(vb);
		km_transpose16(vi);
		for (int r = 0; r < rows; r++)
		{
			size_t		o = (size_t) (g + r) * f->nseg + f->out_seg0;

			_mm512_mask_storeu_ps(f->out_best + o, mask, vb[r]);
			_mm512_mask_storeu_ps((float *) f->labels + o, mask, vi[r]);
		}
	}
	f->nout = 0;
}

#else

/* Writes the buffered segments out[row * nseg + out_seg0 + s] for the panel's rows. */
static void
FoldDrain(GemmFold *f)
{
	for (int r = 0; r < f->nrows; r++)
	{
		size_t		o = (size_t) r * f->nseg + f->out_seg0;

		for (int s = 0; s < f->nout; s++)
		{
			f->labels[o + s] = f->oidx[s][r];
			f->out_best[o + s] = f->obest[s][r];
		}
	}
	f->nout = 0;
}

#endif

/* Buffers the result of segment seg (consecutive with those buffered already). */
static inline void
FoldPush(GemmFold *f, int seg, const float *bst, const int32_t *idx)
{
	if (f->nout == 0)
		f->out_seg0 = seg;
	memcpy(f->obest[f->nout], bst, sizeof(f->obest[0]));
	memcpy(f->oidx[f->nout], idx, sizeof(f->oidx[0]));
	if (++f->nout == OUT_BUF)
		FoldDrain(f);
}

/*
 * Ends the current segment (buffering its minimum) when write_current, then moves to the next
 * non-empty segment (empty ones get their start offset and +inf) and resets the minimum.
 */
static void
FoldNextSegment(GemmFold *f, int write_current)
{
	int			nseg = f->nseg;
	int			seg = f->seg;

	if (write_current)
		FoldPush(f, seg++, f->best, f->idx);
	while (seg < nseg && f->seg_off[seg + 1] <= f->seg_off[seg])
	{
		float		bst[GEMM_MR];
		int32_t		idx[GEMM_MR];

		for (int r = 0; r < GEMM_MR; r++)
		{
			bst[r] = INFINITY;
			idx[r] = f->seg_off[seg];
		}
		FoldPush(f, seg++, bst, idx);
	}
	f->seg = seg;
	if (seg >= nseg)
	{
		f->seg_end = INT32_MAX;
		return;
	}
	f->seg_end = f->seg_off[seg + 1];
	for (int r = 0; r < GEMM_MR; r++)
	{
		f->best[r] = INFINITY;
		f->idx[r] = f->seg_off[seg];
	}
}

#if defined(GEMM_VEC)

/*
 * The two vector paths share the fold and the tile below.  V(op) names an intrinsic of the
 * path's width (_mm512_op or _mm256_op); a vector holds VL = GEMM_MR / 2 rows, so a tile's
 * rows are two vectors (suffixes 0 and 1).  Where the paths differ is the compare and blend:
 * AVX-512 compares into masks and blends the indices as integers, while AVX2's one blend is for
 * floats, so there the indices travel as float bit patterns (blendv does not interpret them).
 */
#if defined(__AVX512F__)
#define V(op) _mm512_##op
#define VL 16
typedef __m512 VecF;
typedef __m512i VecI;
typedef __mmask16 VecMask;
#define VLoadIdx(p) _mm512_load_si512(p)
#define VStoreIdx(p, v) _mm512_store_si512((p), (v))
#define VSetIdx(j) _mm512_set1_epi32(j)
#define VLess(s, b) _mm512_cmp_ps_mask((s), (b), _CMP_LT_OQ)
#define VBlend(mask, old, new) _mm512_mask_blend_ps((mask), (old), (new))
#define VBlendIdx(mask, old, new) _mm512_mask_blend_epi32((mask), (old), (new))
#else
#define V(op) _mm256_##op
#define VL 8
typedef __m256 VecF;
typedef __m256 VecI;
typedef __m256 VecMask;
#define VLoadIdx(p) _mm256_load_ps((const float *)(p))
#define VStoreIdx(p, v) _mm256_store_ps((float *)(p), (v))
#define VSetIdx(j) _mm256_castsi256_ps(_mm256_set1_epi32(j))
#define VLess(s, b) _mm256_cmp_ps((s), (b), _CMP_LT_OQ)
#define VBlend(mask, old, new) _mm256_blendv_ps((old), (new), (mask))
#define VBlendIdx(mask, old, new) _mm256_blendv_ps((old), (new), (mask))
#endif

/* Full unrolling over a tile's centers: every accumulator its own register. */
#define GEMM_PRAGMA(text) _Pragma(#text)
#define GEMM_UNROLL(n) GEMM_PRAGMA(GCC unroll n)
#define UNROLL_NR GEMM_UNROLL(GEMM_NR)

/* The running minimum of GemmFold (best, idx) held in registers. */
typedef struct VecMin
{
	VecF		b0,
				b1;
	VecI		i0,
				i1;
} VecMin;

static inline VecMin
MinLoad(const GemmFold *f)
{
	VecMin		m;

	m.b0 = V(load_ps)(f->best);
	m.b1 = V(load_ps)(f->best + VL);
	m.i0 = VLoadIdx(f->idx);
	m.i1 = VLoadIdx(f->idx + VL);
	return m;
}

static inline void
MinStore(GemmFold *f, VecMin m)
{
	V(store_ps)(f->best, m.b0);
	V(store_ps)(f->best + VL, m.b1);
	VStoreIdx(f->idx, m.i0);
	VStoreIdx(f->idx + VL, m.i1);
}

/*
 * Folds center j, whose dot products with the tile's rows are d0 and d1, into m: the lanes
 * whose score is strictly lower (so never a NaN) take it and j.  The score fl(cnorm[j] - 2 dot)
 * has one rounding, as in km_argmin_ref: 2 * dot is exact.
 */
static inline __attribute__((always_inline)) VecMin
MinFold(VecMin m, VecF d0, VecF d1, const GemmFold *f, int j)
{
	const VecF	two = V(set1_ps)(2.0f);
	VecF		cn = V(set1_ps)(f->cnorm[j]);
	VecI		jv = VSetIdx(j);
	VecF		s0 = V(fnmadd_ps)(d0, two, cn);
	VecF		s1 = V(fnmadd_ps)(d1, two, cn);
	VecMask		lt0 = VLess(s0, m.b0);
	VecMask		lt1 = VLess(s1, m.b1);

	m.b0 = VBlend(lt0, m.b0, s0);
	m.b1 = VBlend(lt1, m.b1, s1);
	m.i0 = VBlendIdx(lt0, m.i0, jv);
	m.i1 = VBlendIdx(lt1, m.i1, jv);
	return m;
}

/*
 * Folds a finished tile held in memory (ctile[jj * GEMM_MR + r]) for its first ncols centers,
 * flushing segments that end inside it: the tiles the register fold in TileBody cannot take.
 * The running minimum stays in registers between flushes; the compiler's own vectorization
 * of the plain loop branched on the masks and went through memory, at 10% of an elbow run.
 */
static void
FoldTileSlow(GemmFold *f, const float *ctile, int j0, int ncols)
{
	VecMin		m = MinLoad(f);

	for (int jj = 0; jj < ncols; jj++)
	{
		int			j = j0 + jj;

		if (j >= f->seg_end)
		{
			MinStore(f, m);
			FoldNextSegment(f, 1);
			m = MinLoad(f);
		}
		m = MinFold(m, V(load_ps)(ctile + jj * GEMM_MR), V(load_ps)(ctile + jj * GEMM_MR + VL),
					f, j);
	}
	MinStore(f, m);
}

#else

/*
 * Folds a finished tile held in memory (ctile[jj * GEMM_MR + r]) for its first ncols centers,
 * flushing segments that end inside it.
 */
static void
FoldTileSlow(GemmFold *f, const float *ctile, int j0, int ncols)
{
	for (int jj = 0; jj < ncols; jj++)
	{
		int			j = j0 + jj;
		float		cn = f->cnorm[j];
		const float *col = ctile + (size_t) jj * GEMM_MR;

		if (j >= f->seg_end)
			FoldNextSegment(f, 1);
		/* Same rounding as the register fold: 2 * dot is exact, one rounding of the difference. */
		for (int r = 0; r < GEMM_MR; r++)
		{
			float		s = KM_FMAF(-2.0f, col[r], cn);

			if (s < f->best[r])
			{
				f->best[r] = s;
				f->idx[r] = j;
			}
		}
	}
}

#endif

#if defined(GEMM_VEC)

/*
 * One GEMM_MR x nrv tile over kc coordinates, nrv <= GEMM_NR a compile-time constant:
 * accumulate in registers, then either save the partial sums to ctile or fold the scores into
 * f.  The register fold handles whole tiles inside one segment; the rest go through ctile and
 * FoldTileSlow.
 */
static inline __attribute__((always_inline)) void
TileBody(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
		 int ncols, const int nrv)
{
	VecF		c0[GEMM_NR],
				c1[GEMM_NR];

	if (mode & TILE_LOAD)
	{
		UNROLL_NR
		for (int jj = 0; jj < nrv; jj++)
		{
			c0[jj] = V(load_ps)(ctile + jj * GEMM_MR);
			c1[jj] = V(load_ps)(ctile + jj * GEMM_MR + VL);
		}
	}
	else
	{
		UNROLL_NR
		for (int jj = 0; jj < nrv; jj++)
		{
			c0[jj] = V(setzero_ps)();
			c1[jj] = V(setzero_ps)();
		}
	}

	/* The panel is GEMM_NR wide whatever nrv is: a narrow tile reads its first nrv centers. */
	for (int t = 0; t < kc; t++)
	{
		VecF		a0 = V(load_ps)(a);
		VecF		a1 = V(load_ps)(a + VL);

		UNROLL_NR
		for (int jj = 0; jj < nrv; jj++)
		{
			VecF		bj = V(set1_ps)(b[jj]);

			c0[jj] = V(fmadd_ps)(a0, bj, c0[jj]);
			c1[jj] = V(fmadd_ps)(a1, bj, c1[jj]);
		}
		a += GEMM_MR;
		b += GEMM_NR;
	}

	if ((mode & TILE_FOLD) && ncols == nrv && j0 + nrv <= f->seg_end)
	{
		VecMin		m = MinLoad(f);

		UNROLL_NR
		for (int jj = 0; jj < nrv; jj++)
			m = MinFold(m, c0[jj], c1[jj], f, j0 + jj);
		MinStore(f, m);
		return;
	}

	UNROLL_NR
	for (int jj = 0; jj < nrv; jj++)
	{
		V(store_ps)(ctile + jj * GEMM_MR, c0[jj]);
		V(store_ps)(ctile + jj * GEMM_MR + VL, c1[jj]);
	}
	if (mode & TILE_FOLD)
		FoldTileSlow(f, ctile, j0, ncols);
}

#endif

#if defined(__AVX512F__)

/*
 * The full-width tile.  Kept out of line, like the others, so that register allocation sees
 * only the tile: inlined into the driver, GCC spilled an accumulator of the AVX2 loop to the
 * stack and halved its speed.
 */
static __attribute__((noinline)) void
TileWide(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
		 int ncols)
{
	TileBody(a, b, kc, ctile, mode, f, j0, ncols, GEMM_NR);
}

/* Half-width tile for panels of at most GEMM_NR / 2 centers (k-means++ candidates, tails). */
static __attribute__((noinline)) void
TileNarrow(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
		   int ncols)
{
	TileBody(a, b, kc, ctile, mode, f, j0, ncols, GEMM_NR / 2);
}

/*
 * One tile of the panel starting at center j0, ncols of whose centers are real: the narrow
 * kernel when the rest is padding, which halves the work for a handful of centers.  The
 * choice depends only on the panel, so every slice of a panel takes the same one.
 */
static inline void
Tile(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
	 int ncols)
{
	if (ncols <= GEMM_NR / 2)
		TileNarrow(a, b, kc, ctile, mode, f, j0, ncols);
	else
		TileWide(a, b, kc, ctile, mode, f, j0, ncols);
}

#elif defined(GEMM_VEC)

/*
 * The one AVX2 tile, full width.  Kept out of line so that register allocation sees only the
 * tile: inlined into the driver, GCC spilled an accumulator to the stack and halved its speed.
 */
static __attribute__((noinline)) void
Tile(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
	 int ncols)
{
	TileBody(a, b, kc, ctile, mode, f, j0, ncols, GEMM_NR);
}

#else

/*
 * Portable tile: the same arithmetic in plain C (fmaf keeps it identical to the vector paths);
 * the compiler may vectorize the row loop.  Always folds through ctile.
 */
static void
Tile(const float *a, const float *b, int kc, float *ctile, int mode, GemmFold *f, int j0,
	 int ncols)
{
	float		acc[GEMM_NR][GEMM_MR];

	for (int jj = 0; jj < GEMM_NR; jj++)
		for (int r = 0; r < GEMM_MR; r++)
			acc[jj][r] = (mode & TILE_LOAD) ? ctile[jj * GEMM_MR + r] : 0.0f;
	for (int t = 0; t < kc; t++)
	{
		for (int jj = 0; jj < GEMM_NR; jj++)
			for (int r = 0; r < GEMM_MR; r++)
				acc[jj][r] = KM_FMAF(a[r], b[jj], acc[jj][r]);
		a += GEMM_MR;
		b += GEMM_NR;
	}
	memcpy(ctile, acc, sizeof(acc));
	if (mode & TILE_FOLD)
		FoldTileSlow(f, ctile, j0, ncols);
}

#endif

/*
 * Nearest center in each segment for rows x[0..n): labels[i*nseg+s] and best[i*nseg+s], from
 * the centers packed by km_gemm_pack.  Single-threaded, reentrant, no heap; see the top of the
 * file for the blocking.
 */
void
km_gemm_argmin(const float *x, int64_t n, int d, const void *packed, const float *cnorm,
			   int nseg, const int *seg_off, int32_t *labels, float *best)
{
	float		apack[GEMM_MR * KC_MAX] __attribute__((aligned(64)));
	float		cbuf[PANEL_BLOCK * GEMM_NR * GEMM_MR] __attribute__((aligned(64)));
	const float *cpack = packed;
	GemmFold	f;
	int			k;
	int			npanels;
	int			nslices;
	int			kc;
	size_t		pstride;

	if (n <= 0 || d <= 0 || nseg <= 0)
		return;
	k = seg_off[nseg];
	npanels = k > 0 ? (k + GEMM_NR - 1) / GEMM_NR : 0;
	pstride = (size_t) GEMM_NR * d;
	/*
	 * Near-equal slices, so that a d just above KC_MAX does not leave a sliver of a pass; the
	 * count is recomputed from the rounded-up length so that no slice is empty.
	 */
	nslices = (d + KC_MAX - 1) / KC_MAX;
	kc = (d + nslices - 1) / nslices;
	nslices = (d + kc - 1) / kc;

	f.cnorm = cnorm;
	f.seg_off = seg_off;
	f.nseg = nseg;

	for (int64_t i0 = 0; i0 < n; i0 += GEMM_MR)
	{
		const float *xp = x + (size_t) i0 * d;

		f.nrows = n - i0 < GEMM_MR ? (int) (n - i0) : GEMM_MR;
		f.labels = labels + (size_t) i0 * nseg;
		f.out_best = best + (size_t) i0 * nseg;
		f.seg = 0;
		f.nout = 0;
		FoldNextSegment(&f, 0);

		if (nslices == 1)
		{
			/*
			 * While the tiles run, pull the next row panel towards L2 a few lines per tile,
			 * so that packing it does not wait on memory (with many centers; with few,
			 * PackRows prefetches it).
			 */
			int64_t		next = n - i0 - f.nrows;
			const char *pf = (const char *) (xp + (size_t) f.nrows * d);
			size_t		pf_len = (size_t) (next < GEMM_MR ? next : GEMM_MR) * d * sizeof(float);
			size_t		pf_step = (pf_len / 64 + npanels) / (npanels > 0 ? npanels : 1) * 64;
			size_t		pf_off = 0;

			PackRows(xp, d, f.nrows, 0, d, apack, n - i0 >= 2 * GEMM_MR);
			for (int p = 0; p < npanels; p++)
			{
				int			j0 = p * GEMM_NR;

				for (size_t e = pf_off + pf_step; pf_off < e && pf_off < pf_len; pf_off += 64)
					__builtin_prefetch(pf + pf_off, 0, 2);
				Tile(apack, cpack + p * pstride, d, cbuf, TILE_FOLD, &f, j0,
					 k - j0 < GEMM_NR ? k - j0 : GEMM_NR);
			}
		}
		else
		{
			/*
			 * The rows are repacked once per block of centers; that costs GEMM_MR * d copies
			 * against GEMM_MR * PANEL_BLOCK * GEMM_NR * d multiply-adds.
			 */
			for (int pb = 0; pb < npanels; pb += PANEL_BLOCK)
			{
				int			pe = pb + PANEL_BLOCK < npanels ? pb + PANEL_BLOCK : npanels;

				for (int sl = 0; sl < nslices; sl++)
				{
					int			t0 = sl * kc;
					int			kcl = d - t0 < kc ? d - t0 : kc;
					int			mode = (sl > 0 ? TILE_LOAD : 0) |
						(sl == nslices - 1 ? TILE_FOLD : 0);

					PackRows(xp, d, f.nrows, t0, kcl, apack, 0);
					for (int p = pb; p < pe; p++)
					{
						int			j0 = p * GEMM_NR;

						Tile(apack, cpack + p * pstride + (size_t) t0 * GEMM_NR, kcl,
							 cbuf + (size_t) (p - pb) * GEMM_NR * GEMM_MR, mode, &f, j0,
							 k - j0 < GEMM_NR ? k - j0 : GEMM_NR);
					}
				}
			}
		}
		if (f.seg < nseg)
			FoldNextSegment(&f, 1);
		if (f.nout > 0)
			FoldDrain(&f);
	}
}
