/*
 * km_bounds.h -- exact Lloyd passes that skip most distance computations: one lower bound per
 * row and segment, kept between passes (Hamerly 2010), with margins for float32 rounding so
 * that every label is the one the unpruned kernel computes (km_bounds.c says why).
 *
 * Used by the CPU backend for the small-d kernel (d <= KM_SMALL_D_MAX, Euclidean or cosine
 * rows); the bounds live beside the backend's host state (km_state.h) and, like it, for every
 * row of the fit, also when the rows are streamed from the source.
 *
 * A pass: km_bounds_begin after the centers are installed and the state's pass is open, then
 * km_bounds_rows for pieces of rows (from any thread, each piece with its own share's
 * scratch), then km_bounds_end.  A pass that assigns rows without the bounds must call
 * km_bounds_forget first, since its labels leave the bounds behind.
 */
#ifndef KM_BOUNDS_H
#define KM_BOUNDS_H

#include "km_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KmBounds
{
	/* kept between passes, per state segment */
	int64_t		n;
	int			nseg;
	int			d;
	float	   *lower;			/* n * nseg: at most the distance to any center but the row's */
	float	  **prev;			/* nseg: the segment's centers at its last pass, or NULL */
	int		   *prev_k;			/* nseg */
	unsigned char *valid;		/* nseg: lower holds against prev for every row */

	/* the open pass, over the installed segments */
	int			open;
	KmPrune		mode;
	int			nrun;
	int		   *segs;			/* nrun: the state segment of each installed one */
	int		   *off;			/* nrun + 1 */
	unsigned char *use;			/* nrun: the bounds are tested in this pass */
	double	   *move_other;		/* k: the farthest any other center of the segment moved */
	double	   *sep;			/* k: at most the distance to the nearest other center */
	double		eps;			/* the kernel's relative rounding bound on a distance */
	double		eta;			/* and its absolute one, for subnormal sums */
	/*
	 * per share: rows seen, then the rows of each installed segment scanned in full (a stretch
	 * of stride entries, a whole number of cache lines), and a piece's rows that need a full
	 * scan, gathered
	 */
	int64_t    *counts;
	int			stride;

	int			nshares;
	float	   *gx;				/* nshares * KM_SUB_ROWS * d */
	int32_t    *gidx;			/* nshares * KM_SUB_ROWS, and the same for the next three */
	int32_t    *glab;
	float	   *gbest;
	float	   *gsecond;

	/*
	 * the last pass's account: rows, and per installed segment the rows scanned in full and
	 * the rows whose label changed
	 */
	int64_t		last_rows;
	int64_t    *last_scanned;
	int64_t    *last_changed;
} KmBounds;

/*
 * Opens a pass over n rows whose state has nseg segments, for the nrun installed segments
 * (offsets off, centers c of dimension d) mapped to state segments segs.  fresh says that the
 * state's labels were all set to -1 for this pass.  The rows of a segment are tested against
 * their bounds where the segment's previous pass kept them for every row; its centers are
 * remembered for the next pass.
 */
KmStatus	km_bounds_begin(KmBounds *b, int64_t n, int nseg, const int *segs, int nrun,
							const int *off, const float *c, int d, int fresh, KmPrune mode,
							int nshares, KmError *err);

/*
 * Rows first .. first + m - 1 (m <= KM_SUB_ROWS) of the open pass, x their values:
 * labels[i * nrun + r] (global) and dist[i * nrun + r] as km_argmin_small gives them, and the
 * state (km_state.h: segment-local labels and distances, n * nseg, from the previous pass)
 * and the bounds updated, the changed labels counted.  Pieces may run at once on different
 * shares.
 */
void		km_bounds_rows(KmBounds *b, int share, const float *x, int64_t first, int64_t m,
						   const float *c, int32_t *state_labels, float *state_dist,
						   int32_t *labels, float *dist);


/* Drops every bound: the next pass scans each row in full. */
void		km_bounds_forget(KmBounds *b);

/*
 * Closes the pass: the bounds of its segments are kept for the next pass if it saw every row;
 * last_rows, last_scanned[0 .. nrun) and last_changed[0 .. nrun) give its account.
 */
void		km_bounds_end(KmBounds *b);

void		km_bounds_free(KmBounds *b);

/*
 * A pass over several segments (an elbow) keeps bounds only when each has at least this many
 * centers.  Below it a full scan of a row costs about what testing its bound does (one segment
 * of 10^6 x 4 rows: about even at k = 16..32, faster from k = 48), and the rows the bounds
 * cannot settle are scanned a segment at a time, where the unpruned kernel takes all segments
 * in one sweep: pruned, the seed elbow (k = 3..49, 10 iterations) took 110 ms against 70.  A
 * single segment keeps bounds at any k.
 */
#define KM_BOUNDS_MIN_K 32

/*
 * Whether a pass keeps bounds, the one rule for the backend (at pass_begin) and the memory
 * estimate: rows the small-d kernel serves, and one segment or nseg of at least
 * KM_BOUNDS_MIN_K centers each (k_min the fewest).
 */
static inline int
km_bounds_serve(int d, int nseg, int k_min)
{
	return d <= KM_SMALL_D_MAX && (nseg == 1 || k_min >= KM_BOUNDS_MIN_K);
}

/* Bytes the bounds of n rows in nseg segments take, beside the state's labels and distances. */
#define KM_BOUNDS_ROW_BYTES(nseg) ((int64_t) (nseg) * (int64_t) sizeof(float))

#ifdef __cplusplus
}
#endif

#endif							/* KM_BOUNDS_H */
