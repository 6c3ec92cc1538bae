/*
 * km_state.h -- each row's state kept in host memory, on top of a backend's steps.
 *
 * A backend owns the state that outlives one block: each row's label and distance per segment
 * between Lloyd passes, and each row's k-means++ distance while seeding.  The CPU backend keeps
 * it in host memory always; the GPU backend on the device, and here only when the device has
 * no room for it.  Both then run the same code, this file's, around their own steps
 * (KmStepOps), so the host-memory state has one implementation and one test.
 *
 * Every function returns a KmStatus, never calls exit or abort, and allocates only in its
 * _begin (the state, a pass's totals) and when a block larger than any before arrives (the
 * block's labels), so a failure leaves the state as it was.
 */
#ifndef KM_STATE_H
#define KM_STATE_H

#include "km_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KmHostState
{
	/* Lloyd: n * nseg entries, row-major, segment-local labels */
	int64_t		n;
	int			nseg;
	int32_t    *labels;
	float	   *dist;

	/* the open pass: installed segment r (of nrun) is state segment segs[r] */
	int			open;
	int			fresh;			/* the open pass started every label at -1 */
	int			exact;
	int			keep;			/* the open (or last) pass keeps each row's state */
	int64_t		pass_n;			/* the open pass's rows */
	int64_t		blk_first;		/* the last block's rows, whose labels and distances */
	int64_t		blk_rows;		/* blk_labels and blk_dist still hold */
	int			nrun;
	int		   *segs;
	int		   *off;			/* nrun + 1: the installed segments' offsets */
	int64_t    *changed;		/* nrun */
	KmAccum		acc;			/* the pass's totals over every installed center */
	int32_t    *blk_labels;		/* a block's labels and distances, rows * nrun */
	float	   *blk_dist;
	int64_t		blk_cap;		/* entries */

	/* k-means++: each row's distance to its nearest chosen center */
	int64_t		seed_n;
	float	   *mind;
} KmHostState;

/* KM_OK when rows first .. first + m - 1 lie within n rows; else a failure naming them. */
KmStatus	km_rows_within(const char *what, int64_t first, int64_t m, int64_t n, KmError *err);

/* Frees everything; the state may be used again from a _begin. */
void		km_host_state_free(KmHostState *hs);

/*
 * Opens a pass over n rows whose state has nseg segments, for the nrun installed segments
 * with offsets off[0..nrun] (k = off[nrun] centers of dimension d).  The state is allocated
 * when n or nseg change, and then, or with reset, every label starts as -1.  The k-means++
 * distances give their room back.  Without keep the pass keeps no state (what there was
 * gives its room back): it needs every segment installed, counts no changes, and
 * km_host_state_fetch serves the rows of its last block only, until the pass ends.
 */
KmStatus	km_host_pass_begin(KmHostState *hs, int64_t n, int nseg, const int *segs, int nrun,
							   const int *off, int d, int reset, int exact, int keep,
							   KmError *err);

/*
 * One block whose row 0 is row first: the backend's assign_accumulate into the pass's totals,
 * then the state updated and the rows whose label changed counted per installed segment.
 */
KmStatus	km_host_pass_block(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first,
							   int64_t rows, KmError *err);

/*
 * km_host_pass_block's first half, for a backend that assigns the rows and updates their state
 * itself (the CPU backend's pruned passes, km_bounds.h): the checks, and room for the block's
 * labels and distances (blk_labels, blk_dist, rows * nrun).  Such a backend adds the changes it
 * counted into changed[] before km_host_pass_end.
 */
KmStatus	km_host_pass_prepare(KmHostState *hs, int64_t first, int64_t rows, KmError *err);

/*
 * The state of rows first .. first + rows - 1 replaced by their labels (global) and distances
 * (rows * nrun each, as a block's), and the rows whose segment-local label changed counted
 * into changed[r] per installed segment: km_host_pass_block's second half, which a backend
 * may run on disjoint ranges of rows at once, each with its own changed[].
 */
void		km_host_pass_record(KmHostState *hs, int64_t first, int64_t rows,
								const int32_t *labels, const float *dist, int64_t *changed);

/* Closes the pass: its totals added into acc, changed[r] set per installed segment. */
KmStatus	km_host_pass_end(KmHostState *hs, KmAccum *acc, int64_t *changed, KmError *err);

/*
 * Copies rows first .. first + m - 1 of the state (m * nseg entries each); after a pass
 * without keep, only rows of its last block while it is open.
 */
KmStatus	km_host_state_fetch(KmHostState *hs, int64_t first, int64_t m, int32_t *labels,
								float *dist, KmError *err);

/* k-means++ distances for n rows, all +Inf; the Lloyd state gives its room back. */
KmStatus	km_host_seed_begin(KmHostState *hs, int64_t n, KmError *err);
KmStatus	km_host_seed_update(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first,
								int64_t rows, const float *c, double *sub_sums, KmError *err);
KmStatus	km_host_seed_potentials(KmHostState *hs, KmBackend *be, KmBlock *blk, int64_t first,
									int64_t rows, const float *cand, int t, double *pot,
									KmError *err);
KmStatus	km_host_seed_fetch(KmHostState *hs, int64_t first, int64_t m, float *out,
							   KmError *err);

#ifdef __cplusplus
}
#endif

#endif							/* KM_STATE_H */
