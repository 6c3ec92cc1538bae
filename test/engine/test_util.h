/*
 * test_util.h -- bookkeeping the engine tests share: pass/fail counts, a CHECK macro, a
 * deterministic generator independent of the library under test, test data drawn from it, an
 * allocator that exits rather than fail, and a clock for the timings.  Included by one program
 * at a time (everything here is static).
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int	npassed __attribute__((unused));
static int	nfailed __attribute__((unused));

/* Counts a check; prints where and why when it fails. */
#define CHECK(cond, ...) \
	do { \
		if (cond) \
			npassed++; \
		else \
		{ \
			nfailed++; \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/* Prints the closing "N passed, M failed" line; returns the exit status. */
static inline int
TestReport(void)
{
	printf("%d passed, %d failed\n", npassed, nfailed);
	return nfailed ? 1 : 0;
}

static uint64_t rng_state __attribute__((unused));

/* splitmix64: a small deterministic generator, independent of the library under test. */
static inline uint64_t
Rand64(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform float in [-1, 1). */
static inline float
RandUnit(void)
{
	return (float) ((Rand64() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Uniform integer in [0, bound). */
static inline int
RandBelow(int bound)
{
	return (int) (Rand64() % (uint64_t) bound);
}

/* v[0..len) uniform in [offset - 1, offset + 1). */
static inline void
RandFill(float *v, size_t len, float offset)
{
	for (size_t i = 0; i < len; i++)
		v[i] = offset + RandUnit();
}

/*
 * k x d centers drawn from k / 3 distinct random ones (at least one): the others are copies of
 * earlier ones picked at random, so that searches meet exact ties.
 */
static inline void
RandDuplicateCenters(float *c, int k, int d)
{
	int			ndistinct = k / 3 > 0 ? k / 3 : 1;

	for (int j = 0; j < ndistinct; j++)
		for (int t = 0; t < d; t++)
			c[(size_t) j * d + t] = RandUnit();
	for (int j = ndistinct; j < k; j++)
		memcpy(c + (size_t) j * d, c + (size_t) RandBelow(ndistinct) * d, sizeof(float) * d);
}

/* n x d rows, each a copy of one of the k centers picked at random. */
static inline void
RandRowsOfCenters(float *x, int64_t n, const float *c, int k, int d)
{
	for (int64_t i = 0; i < n; i++)
		memcpy(x + (size_t) i * d, c + (size_t) RandBelow(k) * d, sizeof(float) * d);
}

/* 64-byte aligned memory, or exit: the tests have no use for recovering from a failed malloc. */
static inline void *
Alloc(size_t bytes)
{
	void	   *p = aligned_alloc(64, bytes > 0 ? (bytes + 63) & ~(size_t) 63 : 64);

	if (p == NULL)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
		exit(2);
	}
	return p;
}

/* Seconds on a clock: CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID (this thread's CPU). */
static inline double
Seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif							/* TEST_UTIL_H */
