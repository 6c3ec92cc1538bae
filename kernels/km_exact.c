/*
 * km_exact.c -- exact float32 sums: normal form, merging and reading them (km_exact.h).
 */
#include "km_exact.h"

#include <math.h>

void
km_exact_normalize(int64_t *digits)
{
	for (int i = 0; i < KM_EXACT_DIGITS - 1; i++)
	{
		int64_t		carry = digits[i] >> 32;	/* floor division by 2^32 */

		digits[i] -= carry * ((int64_t) 1 << 32);
		digits[i + 1] += carry;
	}
}

void
km_exact_merge(int64_t *a, const int64_t *b)
{
	for (int i = 0; i < KM_EXACT_DIGITS; i++)
		a[i] += b[i];
	km_exact_normalize(a);
}

/*
 * A negative sum is read as its magnitude, negated: in normal form the magnitude's terms are
 * all >= 0, so the running double never cancels and stays within a few units of the sum.
 */
double
km_exact_value(const int64_t *digits)
{
	int64_t		mag[KM_EXACT_DIGITS];
	int			negative = digits[KM_EXACT_DIGITS - 1] < 0;
	double		v = 0.0;

	for (int i = 0; i < KM_EXACT_DIGITS; i++)
		mag[i] = negative ? -digits[i] : digits[i];
	km_exact_normalize(mag);
	for (int i = KM_EXACT_DIGITS - 1; i >= 0; i--)
		v += ldexp((double) mag[i], 32 * i - 149);
	return negative ? -v : v;
}

int
km_exact_is_normal(const int64_t *digits)
{
	for (int i = 0; i < KM_EXACT_DIGITS - 1; i++)
		if (digits[i] < 0 || digits[i] >= ((int64_t) 1 << 32))
			return 0;
	/* the top digit leaves room for 2^30 more adds and a merge */
	return digits[KM_EXACT_DIGITS - 1] > -((int64_t) 1 << 61) &&
		digits[KM_EXACT_DIGITS - 1] < ((int64_t) 1 << 61);
}
