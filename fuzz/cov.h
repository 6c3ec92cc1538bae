/*
 * cov.h -- the layout of the coverage file shared by the server (cov_runtime.c) and the fuzz
 * target (fuzz_sql.c).
 *
 * The file, named by $KMEANS_FUZZ_COV in both environments, is mapped MAP_SHARED by every
 * backend that loads the fuzz build of kmeans.so and by the fuzz target:
 *
 *   header   execs and findings, counted by the fuzz target across its fork-mode children
 *   edges    a hit counter per (previous block, block) pair, AFL style; the fuzz target copies
 *            them into libFuzzer's extra counters after each call and clears them
 *   blocks   one byte per instrumented block, indexed by its offset in kmeans.so; never
 *            cleared, so that at the end it says how much of the code any call reached
 */
#ifndef KMEANS_FUZZ_COV_H
#define KMEANS_FUZZ_COV_H

#include <stdint.h>

#define KMEANS_COV_ENV "KMEANS_FUZZ_COV"
#define KMEANS_COV_HEADER 4096
#define KMEANS_COV_EDGES (1 << 16)
#define KMEANS_COV_BLOCKS (1 << 22)		/* larger than kmeans.so's text */
#define KMEANS_COV_SIZE (KMEANS_COV_HEADER + KMEANS_COV_EDGES + KMEANS_COV_BLOCKS)

typedef struct KmeansCovHeader
{
	uint64_t	execs;			/* calls made by the fuzz target */
	uint64_t	findings;
	uint64_t	timeouts;		/* calls cancelled by statement_timeout or the client */
} KmeansCovHeader;

#endif							/* KMEANS_FUZZ_COV_H */
