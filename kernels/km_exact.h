/*
 * km_exact.h -- exact sums of float32 values, whose result depends on nothing but the values.
 *
 * A float32 is m * 2^(p - 149) with an integer |m| < 2^24 and 0 <= p <= 253, so every float32
 * and every sum of them is an integer multiple of 2^-149 below 2^(277 + 63).  KmExact holds that
 * integer in KM_EXACT_DIGITS signed 64-bit digits of weight 2^(32 i - 149): adding a value adds
 * its mantissa, shifted to its place, into two neighbouring digits, with no rounding at all.
 * Sums are therefore associative and commutative: the same values give the same digits (after
 * km_exact_normalize) in any order and any grouping, which is what a parallel or distributed
 * aggregate needs to give bit-identical results however many workers ran and in whatever order
 * their parts came.  km_exact_value reads the canonical digits into one double the same way
 * every time.
 *
 * Each add puts less than 2^32 in magnitude into a digit, so a digit can take 2^30 adds before
 * it could leave int64; km_exact_normalize carries the digits back into [0, 2^32) (the top one
 * stays signed) and must run before that: the callers count adds (KM_EXACT_MAX_PENDING).
 */
#ifndef KM_EXACT_H
#define KM_EXACT_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KM_EXACT_DIGITS 9
#define KM_EXACT_MAX_PENDING ((int64_t) 1 << 30)

typedef struct KmExact
{
	int64_t		d[KM_EXACT_DIGITS];
} KmExact;

/* Adds one finite float32 to an exact sum (NaN and infinities are the caller's to refuse). */
static inline void
km_exact_add(int64_t *digits, float v)
{
	uint32_t	bits;
	int64_t		m;
	int			p;
	int64_t		shifted;

	memcpy(&bits, &v, sizeof(bits));
	p = (int) ((bits >> 23) & 0xff);
	m = (int64_t) (bits & 0x7fffff);
	if (p == 0)
	{
		if (m == 0)
			return;				/* +0 and -0 */
		/* subnormal: m * 2^-149, the same place as the smallest normal exponent */
	}
	else
	{
		m |= 0x800000;
		p -= 1;
	}
	if (bits >> 31)
		m = -m;
	shifted = m * ((int64_t) 1 << (p & 31));	/* |shifted| < 2^55 */
	digits[p >> 5] += shifted & 0xffffffff;
	digits[(p >> 5) + 1] += shifted >> 32;		/* arithmetic: low + high * 2^32 is exact */
}

/* Carries every digit but the top one into [0, 2^32); the value is unchanged. */
void		km_exact_normalize(int64_t *digits);

/* Adds b's digits to a's (both normalized, so that no digit overflows). */
void		km_exact_merge(int64_t *a, const int64_t *b);

/*
 * The sum as a double, from normalized digits: their terms added from the most significant
 * down, so a value of the same digits always reads as the same double (within a few units in
 * the last place of the exact sum).
 */
double		km_exact_value(const int64_t *digits);

/* True when the digits are in normal form (what a stored state must hold). */
int			km_exact_is_normal(const int64_t *digits);

#ifdef __cplusplus
}
#endif

#endif							/* KM_EXACT_H */
