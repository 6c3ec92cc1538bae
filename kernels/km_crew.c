/*
 * km_crew.c -- the threads of the series passes (km_crew.h).
 */
#include "km_crew.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct Crew
{
	KmPieceFn	fn;
	void	   *arg;
	int64_t		npieces;
	atomic_int_fast64_t next;
} Crew;

typedef struct CrewStart
{
	Crew	   *crew;
	int			share;
} CrewStart;

static void
CrewWork(Crew *crew, int share)
{
	for (;;)
	{
		int64_t		p = atomic_fetch_add_explicit(&crew->next, 1, memory_order_relaxed);

		if (p >= crew->npieces)
			return;
		crew->fn(crew->arg, p, share);
	}
}

static void *
CrewMain(void *arg)
{
	CrewStart  *st = arg;

	CrewWork(st->crew, st->share);
	return NULL;
}

/*
 * Runs fn on every piece with up to nthreads threads (the caller one of them); share tells a
 * thread its scratch.  A thread that cannot start leaves its pieces to the others.
 */
void
km_crew_run(int nthreads, int64_t npieces, KmPieceFn fn, void *arg)
{
	Crew		crew;
	pthread_t	threads[256];
	CrewStart	starts[256];
	int			started = 0;

	crew.fn = fn;
	crew.arg = arg;
	crew.npieces = npieces;
	atomic_init(&crew.next, 0);
	if (nthreads > 256)
		nthreads = 256;
	if (nthreads > npieces)
		nthreads = (int) (npieces > 0 ? npieces : 1);
	if (nthreads > 1)
	{
		sigset_t	all,
					old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		for (int t = 1; t < nthreads; t++)
		{
			starts[started].crew = &crew;
			starts[started].share = t;
			if (pthread_create(&threads[started], NULL, CrewMain, &starts[started]) != 0)
				break;
			started++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	CrewWork(&crew, 0);
	for (int t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
}

/* The threads a pass of m rows may use: none beyond its pieces. */
int
km_crew_size(int nthreads, int64_t pieces)
{
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 256)
		nthreads = 256;
	return pieces < nthreads ? (int) (pieces > 0 ? pieces : 1) : nthreads;
}
