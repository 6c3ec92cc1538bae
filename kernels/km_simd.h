/*
 * km_simd.h -- vector helpers shared by the CPU kernels (km_gemm.c, km_screen.c).
 */
#ifndef KM_SIMD_H
#define KM_SIMD_H

#include "km_kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

/*
 * Transposes a 16 x 16 block of 32-bit values held as 16 row vectors into 16 column vectors,
 * in place: interleave 32-bit then 64-bit elements inside 128-bit lanes, then two rounds of
 * 128-bit lane shuffles.  64 shuffles for 256 values, against one store per value for a
 * scalar copy.
 */
static inline void
km_transpose16(__m512 v[16])
{
	__m512		t[16];
	__m512		u[16];

	for (int j = 0; j < 8; j++)
	{
		t[2 * j] = _mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]);
		t[2 * j + 1] = _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]);
	}
	/* u[4q + c] holds, in 128-bit lane L, element 4L + c of rows 4q .. 4q + 3. */
	for (int q = 0; q < 4; q++)
	{
		__m512d		a = _mm512_castps_pd(t[4 * q]);
		__m512d		b = _mm512_castps_pd(t[4 * q + 1]);
		__m512d		e = _mm512_castps_pd(t[4 * q + 2]);
		__m512d		h = _mm512_castps_pd(t[4 * q + 3]);

		u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, e));
		u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, e));
		u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, h));
		u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, h));
	}
	/* A 4 x 4 transpose of 128-bit lanes across u[c], u[4 + c], u[8 + c], u[12 + c]. */
	for (int c = 0; c < 4; c++)
	{
		__m512		w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
		__m512		w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
		__m512		w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
		__m512		w3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);

		v[c] = _mm512_shuffle_f32x4(w0, w2, 0x88);
		v[4 + c] = _mm512_shuffle_f32x4(w1, w3, 0x88);
		v[8 + c] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
		v[12 + c] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
	}
}

/*
 * km_dist2 (km_kernels.h) with one vector register for its sixteen lanes: the same operations
 * in the same order, so the same bits.  Compilers keep km_dist2's lane array in memory when it
 * is inlined into a large function; this form cannot be.
 */
static inline float
km_dist2_avx512(const float *x, const float *c, int d)
{
	__m512		acc = _mm512_setzero_ps();
	__m256		h8;
	__m128		h4;
	__m128		h2;
	float		sum = 0.0f;
	int			t = 0;

	for (; t + 16 <= d; t += 16)
	{
		__m512		diff = _mm512_sub_ps(_mm512_loadu_ps(x + t), _mm512_loadu_ps(c + t));

		acc = _mm512_fmadd_ps(diff, diff, acc);
	}
	for (; t < d; t++)
	{
		float		diff = x[t] - c[t];

		sum = KM_FMAF(diff, diff, sum);
	}
	/* lane l += lane l + w for w = 8, 4, 2, 1 */
	h8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
	h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
	h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
	h2 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
	return sum + _mm_cvtss_f32(h2);
}

#endif							/* __AVX512F__ */

#endif							/* KM_SIMD_H */
