/*
 * test_exact.c -- the exact float32 sums (km_exact.h) and the one-row nearest center
 * (km_rowwise.c) that the aggregate forms are built on.
 */
#include "km_exact.h"
#include "km_kernels.h"

#include <float.h>
#include <math.h>

#include "test_util.h"

/* A float of random sign, mantissa and exponent, subnormals and the extremes included. */
static float
RandAnyFloat(void)
{
	uint32_t	bits = (uint32_t) Rand64();
	float		v;

	/* exponents 0 (subnormal) .. 254: never Infinity or NaN */
	if (((bits >> 23) & 0xff) == 0xff)
		bits &= ~((uint32_t) 1 << 23);
	memcpy(&v, &bits, sizeof(v));
	return v;
}

static void
SumOf(const float *v, const int *order, int n, int64_t *digits)
{
	memset(digits, 0, sizeof(int64_t) * KM_EXACT_DIGITS);
	for (int i = 0; i < n; i++)
		km_exact_add(digits, v[order ? order[i] : i]);
	km_exact_normalize(digits);
}

/* The same values in any order and any grouping give the same digits. */
static void
TestOrderFree(int n, int wide)
{
	float	   *v = Alloc(sizeof(float) * n);
	int		   *order = Alloc(sizeof(int) * n);
	int64_t		ref[KM_EXACT_DIGITS],
				got[KM_EXACT_DIGITS];
	int			bad = 0;

	for (int i = 0; i < n; i++)
	{
		v[i] = wide ? RandAnyFloat() : RandUnit() * 1000.0f;
		order[i] = i;
	}
	SumOf(v, NULL, n, ref);
	CHECK(km_exact_is_normal(ref), "exact (n=%d): the sum is not in normal form", n);
	for (int trial = 0; trial < 8; trial++)
	{
		int64_t		part[KM_EXACT_DIGITS];
		int			at = 0;

		for (int i = n - 1; i > 0; i--)
		{
			int			j = RandBelow(i + 1),
						t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		/* shuffled, then cut into parts of random sizes merged in turn, as workers' states */
		memset(got, 0, sizeof(got));
		while (at < n)
		{
			int			len = 1 + RandBelow(n / 4 + 1);

			if (len > n - at)
				len = n - at;
			SumOf(v, order + at, len, part);
			km_exact_merge(got, part);
			at += len;
		}
		if (memcmp(got, ref, sizeof(ref)) != 0)
			bad++;
	}
	CHECK(bad == 0, "exact (n=%d wide=%d): %d orders or groupings gave other digits", n, wide, bad);
	free(v);
	free(order);
}

/* Sums whose exact value is known, read back as doubles. */
static void
TestKnownValues(void)
{
	int64_t		s[KM_EXACT_DIGITS];
	float		cancel[] = {1e30f, 1.0f, -1e30f};
	float		extremes[] = {FLT_MAX, FLT_MAX, -FLT_MAX};
	float		tiny = ldexpf(1.0f, -149);
	float		tinies[] = {tiny, tiny, tiny};
	float		mixed[] = {-0.5f, 0.25f, -0.0f, 0.0f};
	int64_t		isum = 0;
	float	   *grid = Alloc(sizeof(float) * 100000);

	SumOf(cancel, NULL, 3, s);
	CHECK(km_exact_value(s) == 1.0, "exact: 1e30 + 1 - 1e30 = %.17g, want 1", km_exact_value(s));
	SumOf(extremes, NULL, 3, s);
	CHECK(km_exact_value(s) == (double) FLT_MAX, "exact: max + max - max = %.17g", km_exact_value(s));
	SumOf(extremes, NULL, 2, s);
	CHECK(km_exact_value(s) == 2.0 * FLT_MAX, "exact: max + max = %.17g", km_exact_value(s));
	SumOf(tinies, NULL, 3, s);
	CHECK(km_exact_value(s) == 3.0 * ldexp(1.0, -149), "exact: 3 x 2^-149 = %.17g", km_exact_value(s));
	SumOf(mixed, NULL, 4, s);
	CHECK(km_exact_value(s) == -0.25, "exact: -0.5 + 0.25 = %.17g", km_exact_value(s));
	SumOf(mixed, NULL, 1, s);
	CHECK(km_exact_value(s) == -0.5 && s[KM_EXACT_DIGITS - 1] < 0, "exact: -0.5 reads %.17g",
		  km_exact_value(s));

	/* multiples of 2^-20 below 2^20: the exact sum is an integer count of 2^-20 */
	for (int i = 0; i < 100000; i++)
	{
		int64_t		q = (int64_t) (Rand64() % ((uint64_t) 1 << 40)) - ((int64_t) 1 << 39);

		grid[i] = ldexpf((float) (q >> 16), -4);	/* 24 significant bits at most */
		isum += q >> 16;
	}
	SumOf(grid, NULL, 100000, s);
	CHECK(km_exact_value(s) == ldexp((double) isum, -4), "exact: grid sum %.17g, want %.17g",
		  km_exact_value(s), ldexp((double) isum, -4));
	free(grid);
}

/* Many adds to one digit, normalized as the callers do, stay exact. */
static void
TestManyAdds(void)
{
	int64_t		s[KM_EXACT_DIGITS] = {0};
	float		v = 16777215.0f;	/* 2^24 - 1: the widest mantissa */
	int64_t		n = 3000000;

	for (int64_t i = 0; i < n; i++)
	{
		km_exact_add(s, v);
		if ((i & 0xffff) == 0xffff)
			km_exact_normalize(s);
	}
	km_exact_normalize(s);
	CHECK(km_exact_value(s) == (double) n * 16777215.0, "exact: %lld x (2^24 - 1) = %.17g",
		  (long long) n, km_exact_value(s));
	CHECK(km_exact_is_normal(s), "exact: many adds left digits out of normal form");
	s[0] = -1;
	CHECK(!km_exact_is_normal(s), "exact: a negative low digit passes as normal");
}

/* km_row_nearest is km_argmin_ref row by row, bit for bit, ties to the lowest index. */
static void
TestRowNearest(int d, int k, int n)
{
	float	   *c = Alloc(sizeof(float) * k * d);
	float	   *x = Alloc(sizeof(float) * n * d);
	float	   *packed = Alloc(sizeof(float) * km_row_packed_floats(k, d));
	int32_t    *lab = Alloc(sizeof(int32_t) * n);
	float	   *best = Alloc(sizeof(float) * n);
	int			off[2] = {0, k};
	int			bad = 0;

	RandDuplicateCenters(c, k, d);
	/* half the rows sit on centers (exact ties among the duplicates), half anywhere */
	RandRowsOfCenters(x, n / 2, c, k, d);
	RandFill(x + (size_t) (n / 2) * d, (size_t) (n - n / 2) * d, 0.0f);
	km_argmin_ref(x, n, d, c, NULL, 1, off, lab, best);
	km_row_pack(c, k, d, packed);
	for (int i = 0; i < n; i++)
	{
		float		dist;
		int32_t		j = km_row_nearest(x + (size_t) i * d, d, packed, k, &dist);

		if (j != lab[i] || memcmp(&dist, &best[i], sizeof(float)) != 0)
			bad++;
	}
	CHECK(bad == 0, "km_row_nearest (d=%d k=%d): %d of %d rows differ from km_argmin_ref", d, k,
		  bad, n);
	free(c);
	free(x);
	free(packed);
	free(lab);
	free(best);
}

int
main(void)
{
	rng_state = 7;
	TestKnownValues();
	TestManyAdds();
	TestOrderFree(1, 1);
	TestOrderFree(1000, 0);
	TestOrderFree(5000, 1);
	TestRowNearest(1, 1, 100);
	TestRowNearest(2, 5, 1000);
	TestRowNearest(4, 17, 1000);
	TestRowNearest(16, 64, 1000);
	TestRowNearest(37, 100, 500);
	TestRowNearest(128, 33, 200);
	return TestReport();
}
