/*
 * km_util.c -- status reporting and deterministic random numbers for the compute side.
 */
#include "km_kernels.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* Records a failure in err (may be NULL) and returns its status. */
KmStatus
km_fail(KmError *err, KmStatus status, const char *file, int line, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return status;
	err->status = status;
	err->file = file;
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

/* A short English name for a status. */
const char *
km_status_name(KmStatus status)
{
	switch (status)
	{
		case KM_OK:
			return "ok";
		case KM_ERR_NOMEM:
			return "out of memory";
		case KM_ERR_DEVICE_NOMEM:
			return "out of GPU memory";
		case KM_ERR_THREAD:
			return "thread start failed";
		case KM_ERR_ARGUMENT:
			return "invalid argument";
		case KM_ERR_NO_DEVICE:
			return "no device";
		case KM_ERR_DEVICE:
			return "device error";
		case KM_ERR_UNSUPPORTED:
			return "not supported";
	}
	return "unknown status";
}

/* splitmix64: spreads a 64-bit seed over xoshiro's state (Vigna's recommended seeding). */
static uint64_t
SplitMix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Seeds the generator; the same seed gives the same stream everywhere. */
void
km_rng_seed(KmRng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = SplitMix64(&x);
}

static inline uint64_t
Rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna 2018): one 64-bit output. */
uint64_t
km_rng_next(KmRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = Rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = Rotl(s[3], 45);
	return result;
}

/* Uniform double in [0, 1) from the top 53 bits. */
double
km_rng_uniform(KmRng *rng)
{
	return (double) (km_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, bound) by rejection, so small bounds carry no modulo bias. */
uint64_t
km_rng_below(KmRng *rng, uint64_t bound)
{
	uint64_t	limit;
	uint64_t	r;

	if (bound <= 1)
		return 0;
	limit = UINT64_MAX - UINT64_MAX % bound;
	do
		r = km_rng_next(rng);
	while (r >= limit);
	return r % bound;
}

/* Number of online CPUs, at least 1. */
int
km_cpu_count(void)
{
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int) n;
}

/* set_metric of every backend (km_kernels.h). */
KmStatus
km_backend_set_metric(KmBackend *be, KmMetric metric, KmError *err)
{
	int			ok = metric == KM_METRIC_EUCLIDEAN || metric == KM_METRIC_COSINE ||
		(metric == KM_METRIC_IOU && be->d == 2);

	if (!ok)
		return KM_FAIL(err, KM_ERR_UNSUPPORTED, "the %s backend has no metric %d for d = %d",
					   be->ops->name, (int) metric, be->d);
	be->metric = metric;
	return KM_OK;
}
