/*
 * km_crew.h -- the threads of the series passes (km_dtw.c, km_softdtw.c): a pass cuts its
 * work into numbered pieces, and threads started for the call (the caller one of them) claim
 * the pieces in turn.  Whatever a pass sums over pieces it adds afterwards in piece order, so
 * no result depends on how many threads ran.  Threads start with every signal blocked, so
 * that only the calling thread sees the server's; one that cannot start leaves its pieces to
 * the others.  No postgres.h.
 */
#ifndef KM_CREW_H
#define KM_CREW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Does piece `piece`; share (0 .. threads - 1) names the thread's scratch. */
typedef void (*KmPieceFn) (void *arg, int64_t piece, int share);

/* Runs fn on pieces 0 .. npieces - 1 with up to nthreads threads (at most 256). */
extern void km_crew_run(int nthreads, int64_t npieces, KmPieceFn fn, void *arg);

/* The threads a pass of that many pieces may use, 1 to min(nthreads, 256). */
extern int	km_crew_size(int nthreads, int64_t pieces);

#ifdef __cplusplus
}
#endif

#endif							/* KM_CREW_H */
