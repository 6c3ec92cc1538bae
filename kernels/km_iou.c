/*
 * km_iou.c -- the nearest anchor box of each box by 1 - IoU (km_kernels.h, KM_METRIC_IOU).
 *
 * Boxes are (w, h) placed at a common corner, as anchor boxes are chosen for a detector: the
 * intersection is min(w) x min(h), the union the two areas less it.  Two values a row leave no
 * matrix product to find, so the centers are walked in index order, the first minimum winning,
 * with IOU_LANES rows at a time in the lanes of a vector: each lane does km_iou_cost's
 * operations in its order, so the costs, and the labels, are the scalar function's bit for bit
 * (the GPU's IouCost is the same arithmetic; test_cuda compares them).  Its reference is the
 * float64 definition in test/engine/test_kernels.c.
 */
#include "km_kernels.h"

/* Rows per group: one AVX-512 register of floats, two AVX2 ones. */
#define IOU_LANES 16

/* Nearest center of segment [lo, hi) for m <= IOU_LANES rows (w[l], h[l]), costs into best. */
static inline void
IouGroup(const float *restrict w, const float *restrict h, int m, const float *c, int lo, int hi,
		 int32_t *arg, float *best)
{
	float		b[IOU_LANES];
	int32_t		a[IOU_LANES];

	for (int l = 0; l < IOU_LANES; l++)
	{
		b[l] = INFINITY;
		a[l] = lo;
	}
	for (int j = lo; j < hi; j++)
	{
		float		cw = c[2 * j],
					ch = c[2 * j + 1];

#pragma GCC ivdep
		for (int l = 0; l < IOU_LANES; l++)
		{
			float		iw = w[l] < cw ? w[l] : cw;
			float		ih = h[l] < ch ? h[l] : ch;
			float		inter = iw * ih;
			float		uni = KM_FMAF(w[l], h[l], KM_FMAF(cw, ch, -inter));
			float		v = 1.0f - inter / uni;

			a[l] = v < b[l] ? j : a[l];
			b[l] = v < b[l] ? v : b[l];
		}
	}
	for (int l = 0; l < m; l++)
	{
		arg[l] = a[l];
		best[l] = b[l];
	}
}

void
km_argmin_iou(const float *x, int64_t n, const float *c, int nseg, const int *seg_off,
			  int32_t *labels, float *best)
{
	for (int64_t i0 = 0; i0 < n; i0 += IOU_LANES)
	{
		int			m = n - i0 < IOU_LANES ? (int) (n - i0) : IOU_LANES;
		float		w[IOU_LANES],
					h[IOU_LANES];
		int32_t		arg[IOU_LANES];
		float		b[IOU_LANES];

		/* padding lanes repeat the first row; their results are dropped */
		for (int l = 0; l < IOU_LANES; l++)
		{
			int64_t		i = i0 + (l < m ? l : 0);

			w[l] = x[2 * i];
			h[l] = x[2 * i + 1];
		}
		for (int s = 0; s < nseg; s++)
		{
			IouGroup(w, h, m, c, seg_off[s], seg_off[s + 1], arg, b);
			for (int l = 0; l < m; l++)
			{
				labels[(i0 + l) * nseg + s] = arg[l];
				best[(i0 + l) * nseg + s] = b[l];
			}
		}
	}
}
