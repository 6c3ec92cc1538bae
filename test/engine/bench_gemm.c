/*
 * bench_gemm.c -- speed of km_gemm_argmin on one thread.
 *
 * For each shape it packs random centers once, then times km_gemm_argmin over all n rows five
 * times and prints the median, with the rate counted as 2 n k d flops (the argmin fold and the
 * row packing are included in the time but not in the count).  Both the wall clock and the
 * thread's CPU time are shown: on a shared machine the CPU time is the steadier of the two.
 *
 * Shapes: plain fits (one segment of k centers), the elbow (47 segments of 3..49 centers), and
 * k-means++ candidate scoring (t one-center segments, called on runs of KM_SUB_ROWS rows as
 * the CPU backend does); nseg tells them apart.  Rows marked "scr" time the bfloat16 screen
 * (km_screen_argmin, exact distances included) on the same data, where the CPU has it; the
 * data is uniform, the screen's hard case (many near ties), so its rate counts the same flops.
 *
 * Usage: bench_gemm [n]   (default n = 65536)
 */
#include "km_kernels.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEATS 5

typedef enum ShapeKind
{
	SHAPE_FIT,					/* one segment of k centers, one call over all rows */
	SHAPE_ELBOW,				/* nseg segments of 3, 4, ... centers, one call */
	SHAPE_CANDIDATES,			/* k one-center segments, calls of KM_SUB_ROWS rows */
	SHAPE_SCREEN				/* one segment of k centers through km_screen_argmin */
} ShapeKind;

typedef struct Shape
{
	ShapeKind	kind;
	int			d;
	int			k;				/* centers (SHAPE_FIT, SHAPE_CANDIDATES) */
	int			nseg;			/* segments (SHAPE_ELBOW) */
} Shape;

/*
 * Uniform float in [-1, 1) from a small LCG of its own (not test_util.h's generator, so that
 * the data stays what earlier timings were taken on); the values do not matter for speed.
 */
static float
LcgUnit(uint64_t *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float) ((*state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Ascending comparison of doubles, for qsort. */
static int
CmpDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Times one shape and prints its row of the table. */
static void
RunShape(const Shape *sh, int64_t n)
{
	int			d = sh->d;
	int			nseg = sh->kind == SHAPE_ELBOW ? sh->nseg :
		sh->kind == SHAPE_CANDIDATES ? sh->k : 1;
	int64_t		chunk = sh->kind == SHAPE_CANDIDATES ? KM_SUB_ROWS : n;
	int		   *seg_off = malloc(sizeof(int) * (nseg + 1));
	int			k;
	float	   *x;
	float	   *c;
	float	   *cnorm;
	void	   *packed;
	int32_t    *labels;
	float	   *best;
	double		wall[REPEATS];
	double		cpu[REPEATS];
	uint64_t	state = 12345;
	double		flop;
	double		wall_ms;
	double		cpu_ms;
	char		nsegs[16];
	float	   *cnorm_rows = NULL;

	/* One segment of k, the elbow's 3, 4, ..., 2 + nseg, or k segments of one center. */
	seg_off[0] = 0;
	for (int s = 0; s < nseg; s++)
		seg_off[s + 1] = seg_off[s] + (sh->kind == SHAPE_FIT || sh->kind == SHAPE_SCREEN ? sh->k :
									   sh->kind == SHAPE_ELBOW ? 3 + s : 1);
	k = seg_off[nseg];

	x = malloc(sizeof(float) * (size_t) n * d);
	c = malloc(sizeof(float) * (size_t) k * d);
	cnorm = malloc(sizeof(float) * (size_t) k);
	packed = aligned_alloc(64, ((sh->kind == SHAPE_SCREEN ? km_screen_packed_size(k, d) :
								 km_gemm_packed_size(k, d)) + 63) & ~(size_t) 63);
	labels = malloc(sizeof(int32_t) * (size_t) n * nseg);
	best = malloc(sizeof(float) * (size_t) n * nseg);
	if (!seg_off || !x || !c || !cnorm || !packed || !labels || !best)
	{
		fprintf(stderr, "out of memory for d=%d k=%d n=%lld\n", d, k, (long long) n);
		exit(1);
	}
	for (size_t i = 0; i < (size_t) n * d; i++)
		x[i] = LcgUnit(&state);
	for (int j = 0; j < k; j++)
	{
		double		s = 0.0;

		for (int t = 0; t < d; t++)
		{
			c[(size_t) j * d + t] = LcgUnit(&state);
			s += (double) c[(size_t) j * d + t] * c[(size_t) j * d + t];
		}
		cnorm[j] = (float) s;
	}
	if (sh->kind == SHAPE_SCREEN)
	{
		/* the row norms are an input of the screen, computed once per block by the backend */
		cnorm_rows = malloc(sizeof(float) * (size_t) n);
		if (cnorm_rows == NULL)
			exit(1);
		km_row_norms(x, n, d, cnorm_rows);
		if (!km_screen_pack(c, k, d, packed))
		{
			fprintf(stderr, "km_screen_pack refused d=%d k=%d\n", d, k);
			exit(1);
		}
	}
	else
		km_gemm_pack(c, k, d, packed);

	/* One untimed pass to fault the pages in and warm the caches. */
	for (int r = -1; r < REPEATS; r++)
	{
		double		w0 = Seconds(CLOCK_MONOTONIC);
		double		c0 = Seconds(CLOCK_THREAD_CPUTIME_ID);

		if (sh->kind == SHAPE_SCREEN)
			km_screen_argmin(x, cnorm_rows, n, d, packed, c, labels, best);
		else
			for (int64_t i0 = 0; i0 < n; i0 += chunk)
				km_gemm_argmin(x + i0 * d, n - i0 < chunk ? n - i0 : chunk, d, packed, cnorm,
							   nseg, seg_off, labels + i0 * nseg, best + i0 * nseg);
		if (r < 0)
			continue;
		cpu[r] = Seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
		wall[r] = Seconds(CLOCK_MONOTONIC) - w0;
	}
	qsort(wall, REPEATS, sizeof(double), CmpDouble);
	qsort(cpu, REPEATS, sizeof(double), CmpDouble);
	wall_ms = wall[REPEATS / 2] * 1e3;
	cpu_ms = cpu[REPEATS / 2] * 1e3;
	flop = 2.0 * n * k * d;
	if (sh->kind == SHAPE_SCREEN)
		snprintf(nsegs, sizeof(nsegs), "scr");
	else
		snprintf(nsegs, sizeof(nsegs), "%d", nseg);
	printf("%6d %7d %5s %8lld %10.3f %9.1f %10.3f %9.1f\n", d, k, nsegs, (long long) n,
		   wall_ms, flop / (wall_ms * 1e-3) / 1e9, cpu_ms, flop / (cpu_ms * 1e-3) / 1e9);
	fflush(stdout);

	free(seg_off);
	free(x);
	free(c);
	free(cnorm);
	free(packed);
	free(labels);
	free(best);
	free(cnorm_rows);
}

int
main(int argc, char **argv)
{
	static const Shape shapes[] = {
		{SHAPE_FIT, 17, 1024, 1},
		{SHAPE_FIT, 32, 1024, 1},
		{SHAPE_FIT, 64, 1024, 1},
		{SHAPE_SCREEN, 64, 1024, 1},
		{SHAPE_FIT, 100, 1024, 1},
		{SHAPE_FIT, 128, 1024, 1},
		{SHAPE_SCREEN, 128, 1024, 1},
		{SHAPE_FIT, 256, 1024, 1},
		{SHAPE_SCREEN, 256, 1024, 1},
		{SHAPE_FIT, 768, 1024, 1},
		{SHAPE_SCREEN, 768, 1024, 1},
		{SHAPE_FIT, 1536, 1024, 1},
		{SHAPE_ELBOW, 32, 0, 47},	/* elbow: 47 segments of 3..49 centers, 1222 in all */
		{SHAPE_ELBOW, 100, 0, 47},
		{SHAPE_FIT, 128, 16384, 1},
		{SHAPE_SCREEN, 128, 16384, 1},
		{SHAPE_CANDIDATES, 32, 7, 0},	/* k-means++: t candidates, one segment each */
		{SHAPE_CANDIDATES, 128, 7, 0},
		{SHAPE_CANDIDATES, 128, 10, 0},
	};
	int64_t		n = 65536;

	if (argc > 1)
		n = atoll(argv[1]);
	if (n < 1)
	{
		fprintf(stderr, "usage: bench_gemm [n]\n");
		return 2;
	}
	printf("%6s %7s %5s %8s %10s %9s %10s %9s\n", "d", "k", "nseg", "n", "ms/call", "GFLOP/s",
		   "cpu ms", "cpu GF/s");
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
	{
		if (shapes[i].kind == SHAPE_SCREEN && !km_screen_usable(shapes[i].d, shapes[i].k, 1))
			continue;
		/* Keep every shape near the same amount of work: fewer rows for the big ones. */
		int64_t		work = (int64_t) shapes[i].d *
			(shapes[i].kind == SHAPE_ELBOW ? 1222 : shapes[i].k);
		int64_t		rows = work > 128 * 1024 * 4 ? n * (128 * 1024 * 4) / work : n;

		RunShape(&shapes[i], rows > 0 ? rows : 1);
	}
	return 0;
}
