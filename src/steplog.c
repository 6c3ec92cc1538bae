/*
 * steplog.c -- the steps of this session's last fit, timed: what kmeans_last_fit() returns.
 *
 * Every fit (kmeans_fit, kmeans_labels, kmeans_elbow) starts a new log at KmeansBegin and adds
 * one entry per step as it ends: the first read of the source, each seeding run, each Lloyd
 * iteration, each final pass, the elbow's quality indices.  It is the engine's own account of
 * where a fit's time went, for benchmarks and tuning, so nobody has to time the wording of
 * NOTICEs.  A fit that fails or is cancelled leaves the steps it finished.
 *
 * The log lives in TopMemoryContext and is reused by the next fit; it keeps at most
 * KMEANS_STEPLOG_MAX entries (a fit of many iterations times many runs counts the rest).
 */
#include "kmeans.h"

#include <math.h>

#include "funcapi.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kmeans_last_fit);

#define KMEANS_STEPLOG_MAX 100000

typedef struct StepEntry
{
	KmeansPhase phase;
	int			run;			/* 1-based; 0 where the phase has none */
	int			iteration;		/* 0 except for iterate */
	int			k_running;
	double		seconds;
	double		inertia;		/* NaN where the phase has none */
} StepEntry;

static StepEntry *entries;
static int	nentries;
static int	capacity;
static int64 dropped;
static int	current_run;

static const char *const PhaseNames[] = {
	[KMEANS_PHASE_READ] = "read",
	[KMEANS_PHASE_SEED] = "seed",
	[KMEANS_PHASE_ITERATE] = "iterate",
	[KMEANS_PHASE_FINAL] = "final",
	[KMEANS_PHASE_QUALITY] = "quality",
};

/* Starts the log of a new fit, forgetting the previous one. */
void
KmeansStepLogReset(void)
{
	nentries = 0;
	dropped = 0;
	current_run = 0;
}

/* Sets the seeding run (0-based; -1 for none) that the following steps belong to. */
void
KmeansStepLogRun(int run)
{
	current_run = run + 1;
}

/* Now, for the start of a step. */
double
KmeansStepStart(void)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	return INSTR_TIME_GET_DOUBLE(now);
}

/*
 * Records a step that began at start (KmeansStepStart) and ends now.  iteration is 0 except
 * for iterate; inertia is NaN where the phase has none.
 */
void
KmeansStepEnd(KmeansPhase phase, double start, int iteration, int k_running, double inertia)
{
	StepEntry  *e;

	if (nentries == KMEANS_STEPLOG_MAX)
	{
		dropped++;
		return;
	}
	if (nentries == capacity)
	{
		int			grown = capacity == 0 ? 64 : Min(2 * capacity, KMEANS_STEPLOG_MAX);

		entries = entries == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(StepEntry) * grown) :
			repalloc(entries, sizeof(StepEntry) * grown);
		capacity = grown;
	}
	e = &entries[nentries++];
	e->phase = phase;
	e->run = phase == KMEANS_PHASE_READ || phase == KMEANS_PHASE_QUALITY ? 0 : current_run;
	e->iteration = iteration;
	e->k_running = k_running;
	e->seconds = KmeansStepStart() - start;
	e->inertia = inertia;
}

/* kmeans_last_fit(): the steps of this session's last fit, in the order they ran. */
Datum
kmeans_last_fit(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);

	if (dropped > 0)
		ereport(NOTICE,
				(errmsg("kmeans: the last fit had " INT64_FORMAT " more steps than the %d kept",
						dropped, KMEANS_STEPLOG_MAX)));
	for (int i = 0; i < nentries; i++)
	{
		const StepEntry *e = &entries[i];
		Datum		values[7];
		bool		nulls[7] = {false};

		values[0] = Int32GetDatum(i + 1);
		values[1] = CStringGetTextDatum(PhaseNames[e->phase]);
		values[2] = Int32GetDatum(e->run);
		nulls[2] = e->run == 0;
		values[3] = Int32GetDatum(e->iteration);
		nulls[3] = e->phase != KMEANS_PHASE_ITERATE;
		values[4] = Int32GetDatum(e->k_running);
		values[5] = Float8GetDatum(e->seconds);
		values[6] = Float8GetDatum(e->inertia);
		nulls[6] = isnan(e->inertia);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
