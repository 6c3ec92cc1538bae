/*
 * cov_runtime.c -- the coverage runtime of the fuzz build (make FUZZ=1), linked into kmeans.so.
 *
 * GCC's -fsanitize-coverage=trace-pc makes every basic block of src/ call
 * __sanitizer_cov_trace_pc().  The fuzzer runs in another process, so the hits go to the file
 * laid out in cov.h, which the fuzz target reads after each call.  Blocks are named by their
 * offset from the library's load address, which is the same in every backend whatever address
 * the library was loaded at.  Without $KMEANS_FUZZ_COV the calls return at once.
 *
 * This file is compiled without instrumentation: the hook must not call itself.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cov.h"

/* hidden: the instrumented code calls it directly, not through the PLT */
void		__sanitizer_cov_trace_pc(void) __attribute__((visibility("hidden")));

static uint8_t *cov_edges;		/* NULL: coverage off */
static uint8_t *cov_blocks;
static uintptr_t cov_base;		/* the library's load address */
static __thread uint32_t cov_prev;	/* the previous block's hash >> 1, per thread */

/* Maps the coverage file when the library is loaded, if the environment names one. */
__attribute__((constructor))
static void
CovOpen(void)
{
	const char *path = getenv(KMEANS_COV_ENV);
	struct stat st;
	Dl_info		info;
	void	   *map;
	int			fd;

	if (path == NULL || path[0] == '\0')
		return;
	if (dladdr((void *) &__sanitizer_cov_trace_pc, &info) == 0)
		return;
	fd = open(path, O_RDWR);
	if (fd < 0)
		return;
	/* a short file would raise SIGBUS on the first hit past its end */
	if (fstat(fd, &st) != 0 || st.st_size < KMEANS_COV_SIZE)
	{
		close(fd);
		return;
	}
	map = mmap(NULL, KMEANS_COV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return;
	cov_base = (uintptr_t) info.dli_fbase;
	cov_edges = (uint8_t *) map + KMEANS_COV_HEADER;
	cov_blocks = cov_edges + KMEANS_COV_EDGES;
}

/* Called by every instrumented block: counts the edge into it and marks the block. */
void
__sanitizer_cov_trace_pc(void)
{
	uintptr_t	off;
	uint32_t	cur;
	uint8_t    *c;

	if (cov_edges == NULL)
		return;
	off = (uintptr_t) __builtin_return_address(0) - cov_base;
	cov_blocks[off & (KMEANS_COV_BLOCKS - 1)] = 1;
	/* a multiplicative hash spreads the offsets, which differ in their low bits only */
	cur = (uint32_t) ((off * UINT64_C(0x9E3779B97F4A7C15)) >> 48);
	c = &cov_edges[(cur ^ cov_prev) & (KMEANS_COV_EDGES - 1)];
	/* saturating: a count that wrapped to 0 would look like an edge never taken */
	*c += *c != 255;
	cov_prev = cur >> 1;
}
