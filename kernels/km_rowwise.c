/*
 * km_rowwise.c -- the nearest center of one row at a time, for the aggregate forms.
 *
 * An aggregate's transition function sees one row per call, so the block kernels' trick of
 * keeping many rows in registers does not apply.  Here the centers are the ones laid out for
 * the vector unit instead: in groups of KM_ROW_LANES, coordinate-major within a group, so that
 * one row is compared with a whole group at once, one coordinate at a time.  Each lane applies
 * the same operations in the same order as km_argmin_ref's distance (the first square, then
 * fused multiply-adds in index order), so a row gets the same label and distance here as from
 * the block kernels on the same (uncentred) values.  A group's unused lanes repeat the last
 * center, whose own lane comes first and wins the tie.
 */
#include "km_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

size_t
km_row_packed_floats(int k, int d)
{
	size_t		groups = ((size_t) k + KM_ROW_LANES - 1) / KM_ROW_LANES;

	return groups * KM_ROW_LANES * (size_t) d;
}

void
km_row_pack(const float *c, int k, int d, float *packed)
{
	int			groups = (k + KM_ROW_LANES - 1) / KM_ROW_LANES;

	for (int g = 0; g < groups; g++)
		for (int t = 0; t < d; t++)
			for (int l = 0; l < KM_ROW_LANES; l++)
			{
				int			j = g * KM_ROW_LANES + l;

				if (j >= k)
					j = k - 1;
				packed[((size_t) g * d + t) * KM_ROW_LANES + l] = c[(size_t) j * d + t];
			}
}

#if defined(__AVX512F__)

/*
 * Group g's sixteen distances a against the best so far: the group's minimum, and its lowest
 * lane holding it, replace the best only when strictly smaller (so ties go to the lowest
 * index).  The distances stay in a register: no array of them is stored.
 */
static inline void
TakeGroup(__m512 a, int g, float *best, int32_t *arg)
{
	float		gmin = _mm512_reduce_min_ps(a);

	if (gmin < *best)
	{
		__mmask16	at = _mm512_cmp_ps_mask(a, _mm512_set1_ps(gmin), _CMP_EQ_OQ);

		*best = gmin;
		*arg = g * KM_ROW_LANES + __builtin_ctz((unsigned) at);
	}
}

/* One group's distances, with the same operations per lane as the portable path below. */
static inline __m512
GroupVector(const float *x, int d, const float *p)
{
	__m512		a = _mm512_sub_ps(_mm512_set1_ps(x[0]), _mm512_loadu_ps(p));

	a = _mm512_mul_ps(a, a);
	for (int t = 1; t < d; t++)
	{
		__m512		diff = _mm512_sub_ps(_mm512_set1_ps(x[t]),
										 _mm512_loadu_ps(p + (size_t) t * KM_ROW_LANES));

		a = _mm512_fmadd_ps(diff, diff, a);
	}
	return a;
}

/*
 * Four groups at a time: four independent chains of multiply-adds, so that each waits less on
 * the latency of the one before (one chain per group is bound by it).
 */
int32_t
km_row_nearest(const float *x, int d, const float *packed, int k, float *dist)
{
	int			groups = (k + KM_ROW_LANES - 1) / KM_ROW_LANES;
	size_t		gs = (size_t) d * KM_ROW_LANES;
	float		best = INFINITY;
	int32_t		arg = 0;
	int			g = 0;

	for (; g + 4 <= groups; g += 4)
	{
		const float *p = packed + (size_t) g * gs;
		__m512		x0 = _mm512_set1_ps(x[0]);
		__m512		a0 = _mm512_sub_ps(x0, _mm512_loadu_ps(p));
		__m512		a1 = _mm512_sub_ps(x0, _mm512_loadu_ps(p + gs));
		__m512		a2 = _mm512_sub_ps(x0, _mm512_loadu_ps(p + 2 * gs));
		__m512		a3 = _mm512_sub_ps(x0, _mm512_loadu_ps(p + 3 * gs));

		a0 = _mm512_mul_ps(a0, a0);
		a1 = _mm512_mul_ps(a1, a1);
		a2 = _mm512_mul_ps(a2, a2);
		a3 = _mm512_mul_ps(a3, a3);
		for (int t = 1; t < d; t++)
		{
			const float *pt = p + (size_t) t * KM_ROW_LANES;
			__m512		xt = _mm512_set1_ps(x[t]);
			__m512		d0 = _mm512_sub_ps(xt, _mm512_loadu_ps(pt));
			__m512		d1 = _mm512_sub_ps(xt, _mm512_loadu_ps(pt + gs));
			__m512		d2 = _mm512_sub_ps(xt, _mm512_loadu_ps(pt + 2 * gs));
			__m512		d3 = _mm512_sub_ps(xt, _mm512_loadu_ps(pt + 3 * gs));

			a0 = _mm512_fmadd_ps(d0, d0, a0);
			a1 = _mm512_fmadd_ps(d1, d1, a1);
			a2 = _mm512_fmadd_ps(d2, d2, a2);
			a3 = _mm512_fmadd_ps(d3, d3, a3);
		}
		TakeGroup(a0, g, &best, &arg);
		TakeGroup(a1, g + 1, &best, &arg);
		TakeGroup(a2, g + 2, &best, &arg);
		TakeGroup(a3, g + 3, &best, &arg);
	}
	for (; g < groups; g++)
		TakeGroup(GroupVector(x, d, packed + (size_t) g * gs), g, &best, &arg);
	*dist = best;
	return arg;
}

#else

/* The squared distances of x to the KM_ROW_LANES centers of one packed group, into acc. */
static inline void
GroupDistances(const float *x, int d, const float *p, float *acc)
{
#if defined(__AVX2__) && defined(__FMA__)
	__m256		a0 = _mm256_sub_ps(_mm256_set1_ps(x[0]), _mm256_loadu_ps(p));
	__m256		a1 = _mm256_sub_ps(_mm256_set1_ps(x[0]), _mm256_loadu_ps(p + 8));

	a0 = _mm256_mul_ps(a0, a0);
	a1 = _mm256_mul_ps(a1, a1);
	for (int t = 1; t < d; t++)
	{
		__m256		xt = _mm256_set1_ps(x[t]);
		__m256		d0 = _mm256_sub_ps(xt, _mm256_loadu_ps(p + (size_t) t * KM_ROW_LANES));
		__m256		d1 = _mm256_sub_ps(xt, _mm256_loadu_ps(p + (size_t) t * KM_ROW_LANES + 8));

		a0 = _mm256_fmadd_ps(d0, d0, a0);
		a1 = _mm256_fmadd_ps(d1, d1, a1);
	}
	_mm256_storeu_ps(acc, a0);
	_mm256_storeu_ps(acc + 8, a1);
#else
	for (int l = 0; l < KM_ROW_LANES; l++)
	{
		float		diff = x[0] - p[l];

		acc[l] = diff * diff;
	}
	for (int t = 1; t < d; t++)
		for (int l = 0; l < KM_ROW_LANES; l++)
		{
			float		diff = x[t] - p[(size_t) t * KM_ROW_LANES + l];

			acc[l] = KM_FMAF(diff, diff, acc[l]);
		}
#endif
}

int32_t
km_row_nearest(const float *x, int d, const float *packed, int k, float *dist)
{
	int			groups = (k + KM_ROW_LANES - 1) / KM_ROW_LANES;
	float		best = INFINITY;
	int32_t		arg = 0;

	for (int g = 0; g < groups; g++)
	{
		float		acc[KM_ROW_LANES];

		GroupDistances(x, d, packed + (size_t) g * d * KM_ROW_LANES, acc);
		for (int l = 0; l < KM_ROW_LANES; l++)
			if (acc[l] < best)
			{
				best = acc[l];
				arg = g * KM_ROW_LANES + l;
			}
	}
	*dist = best;
	return arg;
}

#endif
