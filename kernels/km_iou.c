/*
 * km_iou.c -- the nearest anchor box of each box by 1 - IoU (km_kernels.h, KM_METRIC_IOU).
 *
 * Boxes are (w, h) placed at a common corner, as anchor boxes are chosen for a detector: the
 * intersection is min(w) x min(h), the union the two areas less it.  Two values a row leave no
 * matrix product to find, so this is a plain loop over the centers in index order, the first
 * minimum winning; its reference is the float64 definition in test/engine/test_kernels.c.
 */
#include "km_kernels.h"

void
km_argmin_iou(const float *x, int64_t n, const float *c, int nseg, const int *seg_off,
			  int32_t *labels, float *best)
{
	for (int64_t i = 0; i < n; i++)
		for (int s = 0; s < nseg; s++)
		{
			int			arg = seg_off[s];
			float		b = km_iou_cost(x + i * 2, c + (int64_t) arg * 2);

			for (int j = seg_off[s] + 1; j < seg_off[s + 1]; j++)
			{
				float		v = km_iou_cost(x + i * 2, c + (int64_t) j * 2);

				if (v < b)
				{
					b = v;
					arg = j;
				}
			}
			labels[i * nseg + s] = arg;
			best[i * nseg + s] = b;
		}
}
