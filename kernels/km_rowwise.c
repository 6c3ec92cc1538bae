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

int32_t
km_row_nearest(const float *x, int d, const float *packed, int k, float *dist)
{
	int			groups = (k + KM_ROW_LANES - 1) / KM_ROW_LANES;
	float		best = INFINITY;
	int32_t		arg = 0;

	for (int g = 0; g < groups; g++)
	{
		const float *p = packed + (size_t) g * d * KM_ROW_LANES;
		float		acc[KM_ROW_LANES];

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
