/*
 * km_argmin.c -- nearest-center search for small dimensions, and its reference twin.
 *
 * For d <= KM_SMALL_D_MAX the work per (row, center) pair is a handful of multiply-adds, so the
 * cost is the argmin over the centers, not the arithmetic.  The kernel therefore keeps a block
 * of 16 rows transposed in vector registers (one register per coordinate), walks the centers
 * broadcasting one coordinate at a time, and keeps the running minimum and its index in
 * registers.
 *
 * The distance is the direct sum of (x - c)^2, not the expansion |x|^2 - 2 x.c + |c|^2: with
 * few dimensions the subtraction costs little, and it keeps full float32 accuracy when one
 * dimension's spread dwarfs the others' (the expansion cancels away everything below
 * |c|^2 * 2^-24).  Every path (AVX-512, AVX2, scalar) applies the same fused operations in the
 * same order as km_argmin_ref, so all three give bit-identical results.
 */
#include "km_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define BLOCK_ROWS 16

#define Dist2 km_dist2_seq

/* |row|^2 of every row, summed in index order in float32. */
void
km_row_norms(const float *x, int64_t n, int d, float *norms)
{
	for (int64_t i = 0; i < n; i++)
	{
		const float *r = x + i * d;
		float		s = r[0] * r[0];

		for (int t = 1; t < d; t++)
			s = KM_FMAF(r[t], r[t], s);
		norms[i] = s;
	}
}

/*
 * The reference loop over rows, segments and centers; with second, also the least distance
 * to any other center of the segment (the minimum again on a tie, +Inf for one center).
 */
static void
ArgminRef(const float *x, int64_t n, int d, const float *c, int nseg, const int *seg_off,
		  int32_t *labels, float *best, float *second)
{
	for (int64_t i = 0; i < n; i++)
	{
		for (int s = 0; s < nseg; s++)
		{
			int			arg = seg_off[s];
			float		min = INFINITY;
			float		next = INFINITY;

			for (int j = seg_off[s]; j < seg_off[s + 1]; j++)
			{
				float		v = Dist2(x + i * d, c + (int64_t) j * d, d);

				/* the larger of the old minimum and v is a candidate for the second */
				next = fminf(next, fmaxf(min, v));
				if (v < min)
				{
					min = v;
					arg = j;
				}
			}
			labels[i * nseg + s] = arg;
			best[i * nseg + s] = min;
			if (second)
				second[i * nseg + s] = next;
		}
	}
}

/* Reference: a plain loop over rows, segments and centers. */
void
km_argmin_ref(const float *x, int64_t n, int d, const float *c, const float *cnorm,
			  int nseg, const int *seg_off, int32_t *labels, float *best)
{
	(void) cnorm;
	ArgminRef(x, n, d, c, nseg, seg_off, labels, best, NULL);
}

/* True when (d, k) goes to the GEMM kernel rather than the small-d one. */
int
km_use_gemm(int d, int k)
{
	(void) k;
	return d > KM_SMALL_D_MAX;
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

/* Coordinate t of the block's rows x into tmp, one lane a row, zero past the last row. */
static inline __attribute__((always_inline)) void
BlockCoordinate(const float *x, int rows, const int D, int t, float *tmp)
{
	for (int l = 0; l < BLOCK_ROWS; l++)
		tmp[l] = l < rows ? x[l * D + t] : 0.0f;
}

#endif

#if defined(__AVX512F__)

/* v = |x - c_j|^2 for the block's rows: the subtractions and fused adds of km_dist2_seq. */
static inline __attribute__((always_inline)) __m512
DistAvx512(const __m512 *xv, const float *cj, const int D)
{
	__m512		diff = _mm512_sub_ps(xv[0], _mm512_set1_ps(cj[0]));
	__m512		v = _mm512_mul_ps(diff, diff);

	for (int t = 1; t < D; t++)
	{
		diff = _mm512_sub_ps(xv[t], _mm512_set1_ps(cj[t]));
		v = _mm512_fmadd_ps(diff, diff, v);
	}
	return v;
}

/*
 * DistAvx512 for centers c0 and c1 at once, their operations interleaved coordinate by
 * coordinate so that the two independent chains issue side by side.
 */
static inline __attribute__((always_inline)) void
DistPairAvx512(const __m512 *xv, const float *c0, const float *c1, const int D, __m512 *v0,
			   __m512 *v1)
{
	__m512		d0 = _mm512_sub_ps(xv[0], _mm512_set1_ps(c0[0]));
	__m512		d1 = _mm512_sub_ps(xv[0], _mm512_set1_ps(c1[0]));

	*v0 = _mm512_mul_ps(d0, d0);
	*v1 = _mm512_mul_ps(d1, d1);
#pragma GCC unroll 16
	for (int t = 1; t < D; t++)
	{
		d0 = _mm512_sub_ps(xv[t], _mm512_set1_ps(c0[t]));
		d1 = _mm512_sub_ps(xv[t], _mm512_set1_ps(c1[t]));
		*v0 = _mm512_fmadd_ps(d0, d0, *v0);
		*v1 = _mm512_fmadd_ps(d1, d1, *v1);
	}
}

/* Folds center j's distances v into the running minimum (and the second least). */
static inline __attribute__((always_inline)) void
FoldAvx512(__m512 v, int j, __m512 *minv, __m512i *argv, __m512 *nextv, int second)
{
	__mmask16	lt;

	if (second)
		*nextv = _mm512_min_ps(*nextv, _mm512_max_ps(*minv, v));
	lt = _mm512_cmp_ps_mask(v, *minv, _CMP_LT_OQ);
	*minv = _mm512_mask_mov_ps(*minv, lt, v);
	*argv = _mm512_mask_mov_epi32(*argv, lt, _mm512_set1_epi32(j));
}

/*
 * One block of up to 16 rows against every segment, for a compile-time D so that the
 * transposed rows live in registers.  Centers go two at a time: each distance is a chain of
 * D dependent fused adds, and two chains side by side keep the vector units busy where one
 * waits on its own latency (a fifth faster at d = 10).  They are folded in index order, so
 * the result is that of one center at a time.
 */
static inline __attribute__((always_inline)) void
BlockAvx512(const float *x, int rows, const int D, const float *c,
			int nseg, const int *seg_off, int32_t *labels, float *best, float *second)
{
	__m512		xv[KM_SMALL_D_MAX];
	float		tmp[BLOCK_ROWS] __attribute__((aligned(64)));
	int32_t		itmp[BLOCK_ROWS] __attribute__((aligned(64)));

	for (int t = 0; t < D; t++)
	{
		BlockCoordinate(x, rows, D, t, tmp);
		xv[t] = _mm512_load_ps(tmp);
	}

	for (int s = 0; s < nseg; s++)
	{
		__m512		minv = _mm512_set1_ps(INFINITY);
		__m512		nextv = minv;
		__m512i		argv = _mm512_set1_epi32(seg_off[s]);
		int			j = seg_off[s];

		for (; j + 1 < seg_off[s + 1]; j += 2)
		{
			__m512		v0,
						v1;

			DistPairAvx512(xv, c + (int64_t) j * D, c + (int64_t) (j + 1) * D, D, &v0, &v1);

			FoldAvx512(v0, j, &minv, &argv, &nextv, second != NULL);
			FoldAvx512(v1, j + 1, &minv, &argv, &nextv, second != NULL);
		}
		if (j < seg_off[s + 1])
			FoldAvx512(DistAvx512(xv, c + (int64_t) j * D, D), j, &minv, &argv, &nextv,
					   second != NULL);
		_mm512_store_ps(tmp, minv);
		_mm512_store_si512((void *) itmp, argv);
		for (int l = 0; l < rows; l++)
		{
			labels[(int64_t) l * nseg + s] = itmp[l];
			best[(int64_t) l * nseg + s] = tmp[l];
		}
		if (second)
		{
			_mm512_store_ps(tmp, nextv);
			for (int l = 0; l < rows; l++)
				second[(int64_t) l * nseg + s] = tmp[l];
		}
	}
}

#define BLOCK_KERNEL BlockAvx512

#elif defined(__AVX2__) && defined(__FMA__)

/* The AVX2 form of the block kernel: two 8-lane halves per block of 16 rows. */
static inline __attribute__((always_inline)) void
BlockAvx2(const float *x, int rows, const int D, const float *c,
		  int nseg, const int *seg_off, int32_t *labels, float *best, float *second)
{
	__m256		xa[KM_SMALL_D_MAX],
				xb[KM_SMALL_D_MAX];
	float		tmp[BLOCK_ROWS] __attribute__((aligned(32)));
	int32_t		itmp[BLOCK_ROWS] __attribute__((aligned(32)));

	for (int t = 0; t < D; t++)
	{
		BlockCoordinate(x, rows, D, t, tmp);
		xa[t] = _mm256_load_ps(tmp);
		xb[t] = _mm256_load_ps(tmp + 8);
	}

	for (int s = 0; s < nseg; s++)
	{
		__m256		mina = _mm256_set1_ps(INFINITY),
					minb = mina,
					nexta = mina,
					nextb = mina;
		__m256i		arga = _mm256_set1_epi32(seg_off[s]),
					argb = arga;

		for (int j = seg_off[s]; j < seg_off[s + 1]; j++)
		{
			const float *cj = c + (int64_t) j * D;
			__m256		b0 = _mm256_set1_ps(cj[0]);
			__m256		da = _mm256_sub_ps(xa[0], b0);
			__m256		db = _mm256_sub_ps(xb[0], b0);
			__m256i		jv = _mm256_set1_epi32(j);
			__m256		va = _mm256_mul_ps(da, da),
						vb = _mm256_mul_ps(db, db),
						lta,
						ltb;

			for (int t = 1; t < D; t++)
			{
				__m256		bt = _mm256_set1_ps(cj[t]);

				da = _mm256_sub_ps(xa[t], bt);
				db = _mm256_sub_ps(xb[t], bt);
				va = _mm256_fmadd_ps(da, da, va);
				vb = _mm256_fmadd_ps(db, db, vb);
			}
			if (second)
			{
				nexta = _mm256_min_ps(nexta, _mm256_max_ps(mina, va));
				nextb = _mm256_min_ps(nextb, _mm256_max_ps(minb, vb));
			}
			lta = _mm256_cmp_ps(va, mina, _CMP_LT_OQ);
			ltb = _mm256_cmp_ps(vb, minb, _CMP_LT_OQ);
			mina = _mm256_blendv_ps(mina, va, lta);
			minb = _mm256_blendv_ps(minb, vb, ltb);
			arga = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(arga),
														_mm256_castsi256_ps(jv), lta));
			argb = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(argb),
														_mm256_castsi256_ps(jv), ltb));
		}
		_mm256_store_ps(tmp, mina);
		_mm256_store_ps(tmp + 8, minb);
		_mm256_store_si256((__m256i *) itmp, arga);
		_mm256_store_si256((__m256i *) (itmp + 8), argb);
		for (int l = 0; l < rows; l++)
		{
			labels[(int64_t) l * nseg + s] = itmp[l];
			best[(int64_t) l * nseg + s] = tmp[l];
		}
		if (second)
		{
			_mm256_store_ps(tmp, nexta);
			_mm256_store_ps(tmp + 8, nextb);
			for (int l = 0; l < rows; l++)
				second[(int64_t) l * nseg + s] = tmp[l];
		}
	}
}

#define BLOCK_KERNEL BlockAvx2

#endif

#ifdef BLOCK_KERNEL

/* Walks the rows block by block with the register kernel specialised for D. */
static inline __attribute__((always_inline)) void
RowsSmall(const float *x, int64_t n, const int D, const float *c,
		  int nseg, const int *seg_off, int32_t *labels, float *best, float *second)
{
	for (int64_t i = 0; i < n; i += BLOCK_ROWS)
	{
		int			rows = n - i < BLOCK_ROWS ? (int) (n - i) : BLOCK_ROWS;

		BLOCK_KERNEL(x + i * D, rows, D, c, nseg, seg_off,
					 labels + i * nseg, best + i * nseg, second ? second + i * nseg : NULL);
	}
}

#define CASE_D(DV) \
	case DV: \
		RowsSmall(x, n, DV, c, nseg, seg_off, labels, best, SECOND); \
		return

/* every d the register kernel is specialised for, 1 .. KM_SMALL_D_MAX */
#define CASES_D \
	CASE_D(1); CASE_D(2); CASE_D(3); CASE_D(4); CASE_D(5); CASE_D(6); CASE_D(7); CASE_D(8); \
	CASE_D(9); CASE_D(10); CASE_D(11); CASE_D(12); CASE_D(13); CASE_D(14); CASE_D(15); \
	CASE_D(16)

/* Nearest center per segment for d <= KM_SMALL_D_MAX, register-blocked. */
void
km_argmin_small(const float *x, int64_t n, int d, const float *c, const float *cnorm,
				int nseg, const int *seg_off, int32_t *labels, float *best)
{
	(void) cnorm;
#define SECOND NULL
	switch (d)
	{
			CASES_D;
		default:
			ArgminRef(x, n, d, c, nseg, seg_off, labels, best, NULL);
	}
#undef SECOND
}

/* The same with the second least distance of each row and segment (km_bounds.c's rescans). */
void
km_argmin_small2(const float *x, int64_t n, int d, const float *c, int nseg,
				 const int *seg_off, int32_t *labels, float *best, float *second)
{
#define SECOND second
	switch (d)
	{
			CASES_D;
		default:
			ArgminRef(x, n, d, c, nseg, seg_off, labels, best, second);
	}
#undef SECOND
}

#else

/* Without vector extensions the reference loop is the kernel. */
void
km_argmin_small(const float *x, int64_t n, int d, const float *c, const float *cnorm,
				int nseg, const int *seg_off, int32_t *labels, float *best)
{
	(void) cnorm;
	ArgminRef(x, n, d, c, nseg, seg_off, labels, best, NULL);
}

void
km_argmin_small2(const float *x, int64_t n, int d, const float *c, int nseg,
				 const int *seg_off, int32_t *labels, float *best, float *second)
{
	ArgminRef(x, n, d, c, nseg, seg_off, labels, best, second);
}

#endif
