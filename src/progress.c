/*
 * progress.c -- how far each running fit has got, for kmeans_progress, the view another
 * connection queries.
 *
 * Every fit (kmeans_fit, kmeans_labels, kmeans_elbow, a group of kmeans_agg or kmeans_cluster)
 * takes a slot in shared memory when it starts and gives it back when it ends, whether it
 * returns, fails or is cancelled (a reset callback on the fit's memory context, and an exit
 * callback for a backend that dies).  Only the owning backend writes its slot, and it writes
 * only a few numbers at a time: the phase as it changes, the rows of the current pass once per
 * batch or resident chunk (thousands of rows), the inertia once per iteration.  So it costs
 * nothing measurable.  Readers take a consistent copy by the change count protocol that
 * PostgreSQL's own backend status uses: the writer makes the count odd while it writes, and
 * a reader retries until it reads the same even count before and after its copy.
 *
 * Where the slots live.  With kmeans in shared_preload_libraries, the server reserves a slot
 * per backend at start.  Without it, the first fit of the server's life takes a table of
 * KMEANS_PROGRESS_LAZY_SLOTS slots from the little shared memory the server keeps spare for
 * such small late structures (as pg_prewarm's autoprewarm does); if that is gone, fits run as
 * before and the view says that it needs the preload.  Fits beyond the slots run unseen.
 */
#include "kmeans.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kmeans_progress);

#define KMEANS_PROGRESS_LAZY_SLOTS 64
#define KMEANS_PROGRESS_NAME "kmeans progress"

typedef struct ProgressSlot
{
	pg_atomic_uint32 changecount;	/* odd while the owner writes */
	int			pid;			/* 0: free */
	Oid			userid;
	char		function[NAMEDATALEN];
	KmeansProgressPhase phase;
	int			k_min;
	int			k_max;
	int			run;			/* 1-based; 0 before seeding */
	int			n_init;
	int			iteration;		/* Lloyd iteration or mini-batch epoch; 0 outside them */
	int64		rows_done;		/* of the current pass */
	int64		rows_total;		/* -1 while the first pass has not counted them */
	double		inertia;		/* NaN until an iteration ends */
	TimestampTz started;
} ProgressSlot;

typedef struct ProgressShared
{
	slock_t		mutex;			/* taking and giving back slots */
	int			nslots;
	ProgressSlot slots[FLEXIBLE_ARRAY_MEMBER];
} ProgressShared;

static ProgressShared *shared;
static bool lazy_failed;		/* the spare shared memory was too little */
static ProgressSlot *mine;		/* this backend's slot during a fit */
static int	nested;				/* fits running within that fit (a source calling a fit) */
static bool exit_hooked;
static uint64 generation;		/* of the current claim: a late callback of an old fit is ignored */

static const char *const phase_names[] = {
	[KMEANS_PROGRESS_READING] = "reading",
	[KMEANS_PROGRESS_SEEDING] = "seeding",
	[KMEANS_PROGRESS_ITERATING] = "iterating",
	[KMEANS_PROGRESS_LABELLING] = "labelling",
	[KMEANS_PROGRESS_QUALITY] = "quality",
};

static Size
SharedSize(int nslots)
{
	return add_size(offsetof(ProgressShared, slots), mul_size(sizeof(ProgressSlot), nslots));
}

/* A new table of nslots free slots. */
static void
InitSlots(ProgressShared *sh, int nslots)
{
	SpinLockInit(&sh->mutex);
	sh->nslots = nslots;
	for (int i = 0; i < nslots; i++)
	{
		pg_atomic_init_u32(&sh->slots[i].changecount, 0);
		sh->slots[i].pid = 0;
	}
}

/* Finds or creates the slots under AddinShmemInitLock; initialises them when new. */
static void
Attach(int nslots)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct(KMEANS_PROGRESS_NAME, SharedSize(nslots), &found);
	if (!found)
		InitSlots(shared, nslots);
	LWLockRelease(AddinShmemInitLock);
}

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_request_hook;
#endif
static shmem_startup_hook_type prev_startup_hook;

#if PG_VERSION_NUM >= 150000
static void
RequestShmem(void)
{
	if (prev_request_hook)
		prev_request_hook();
	RequestAddinShmemSpace(SharedSize(MaxBackends));
}
#endif

static void
StartupShmem(void)
{
	if (prev_startup_hook)
		prev_startup_hook();
	Attach(MaxBackends);
}

/* From _PG_init: reserves a slot per backend when the library is preloaded. */
void
KmeansProgressInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_request_hook = shmem_request_hook;
	shmem_request_hook = RequestShmem;
#else
	RequestAddinShmemSpace(SharedSize(MaxBackends));
#endif
	prev_startup_hook = shmem_startup_hook;
	shmem_startup_hook = StartupShmem;
}

/*
 * The slots, taken from the spare shared memory on first use when the library was not
 * preloaded; NULL when there was too little.  The table is allocated by ShmemAllocNoError,
 * which fails without an ERROR, and found again through a pointer that only the first backend
 * of the server's life to get here sets: so a full segment never fails a fit.
 */
static ProgressShared *
Slots(void)
{
	ProgressShared **where;
	bool		found;

	if (shared != NULL || lazy_failed)
		return shared;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	where = ShmemInitStruct(KMEANS_PROGRESS_NAME " table", sizeof(ProgressShared *), &found);
	if (!found)
	{
		ProgressShared *sh = ShmemAllocNoError(SharedSize(KMEANS_PROGRESS_LAZY_SLOTS));

		if (sh != NULL)
			InitSlots(sh, KMEANS_PROGRESS_LAZY_SLOTS);
		*where = sh;
	}
	shared = *where;
	lazy_failed = shared == NULL;
	LWLockRelease(AddinShmemInitLock);
	return shared;
}

static inline void
WriteBegin(ProgressSlot *s)
{
	pg_atomic_fetch_add_u32(&s->changecount, 1);
	pg_write_barrier();
}

static inline void
WriteEnd(ProgressSlot *s)
{
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&s->changecount, 1);
}

static void
Release(void)
{
	ProgressSlot *s = mine;

	if (s == NULL)
		return;
	mine = NULL;
	nested = 0;
	SpinLockAcquire(&shared->mutex);
	WriteBegin(s);
	s->pid = 0;
	WriteEnd(s);
	SpinLockRelease(&shared->mutex);
}

static void
ReleaseAtExit(int code, Datum arg)
{
	Release();
}

/* What one fit holds: the claim on the slot, or a place inside the fit that holds it. */
struct KmeansProgressClaim
{
	uint64		generation;		/* 0 for a fit within a fit */
	bool		ended;
};

/*
 * A fit ends: it went well (KmeansEnd), or its memory context is reset or deleted, as an
 * ERROR or a cancel does.  The later of the two does nothing.
 */
void
KmeansProgressEnd(KmeansProgressClaim *c)
{
	if (c == NULL || c->ended)
		return;
	c->ended = true;
	if (c->generation == 0)
	{
		if (nested > 0)
			nested--;
	}
	else if (c->generation == generation)
		Release();
}

static void
EndCallback(void *arg)
{
	KmeansProgressEnd(arg);
}

/*
 * A fit starts: what (the SQL function) fits k_min .. k_max in n_init runs.  The claim ends
 * with KmeansProgressEnd, or when the current memory context goes.  A fit that starts within
 * a fit (a source that calls one, the aggregate strategy's seeding) is not shown: the one it
 * runs for is.
 */
KmeansProgressClaim *
KmeansProgressBegin(const char *what, int k_min, int k_max, int n_init)
{
	ProgressShared *sh;
	MemoryContextCallback *cb;
	ProgressSlot *s = NULL;
	KmeansProgressClaim *c = MemoryContextAllocZero(CurrentMemoryContext,
													 sizeof(KmeansProgressClaim));

	if (mine != NULL)
	{
		nested++;
		goto hook;
	}
	sh = Slots();
	if (sh == NULL)
		return NULL;
	if (!exit_hooked)
	{
		before_shmem_exit(ReleaseAtExit, (Datum) 0);
		exit_hooked = true;
	}
	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->nslots; i++)
		if (sh->slots[i].pid == 0)
		{
			s = &sh->slots[i];
			WriteBegin(s);
			s->pid = MyProcPid;
			break;
		}
	SpinLockRelease(&sh->mutex);
	if (s == NULL)
		return NULL;			/* more fits at once than slots: this one runs unseen */
	s->userid = GetUserId();
	strlcpy(s->function, what, NAMEDATALEN);
	s->phase = KMEANS_PROGRESS_READING;
	s->k_min = k_min;
	s->k_max = k_max;
	s->run = 0;
	s->n_init = n_init;
	s->iteration = 0;
	s->rows_done = 0;
	s->rows_total = -1;
	s->inertia = NAN;
	s->started = GetCurrentTimestamp();
	WriteEnd(s);
	mine = s;
	c->generation = ++generation;
hook:
	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	cb->func = EndCallback;
	cb->arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return c;
}

/* A new phase; run and iteration as they are then (0 for none), the pass's rows from 0. */
void
KmeansProgressSetPhase(KmeansProgressPhase phase, int run, int iteration)
{
	ProgressSlot *s = mine;

	if (s == NULL || nested > 0)
		return;
	WriteBegin(s);
	s->phase = phase;
	if (run > 0)
		s->run = run;
	s->iteration = iteration;
	s->rows_done = 0;
	WriteEnd(s);
}

/* The current pass has done rows of total (-1: not known yet). */
void
KmeansProgressRows(int64 rows, int64 total)
{
	ProgressSlot *s = mine;

	if (s == NULL || nested > 0)
		return;
	WriteBegin(s);
	s->rows_done = rows;
	s->rows_total = total;
	WriteEnd(s);
}

/* An iteration ended with this inertia (over the k still running). */
void
KmeansProgressInertia(double inertia)
{
	ProgressSlot *s = mine;

	if (s == NULL || nested > 0)
		return;
	WriteBegin(s);
	s->inertia = inertia;
	WriteEnd(s);
}

/* kmeans_progress(): a row per running fit of the server. */
Datum
kmeans_progress(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);
	ProgressShared *sh = Slots();
	TimestampTz now = GetCurrentTimestamp();

	if (sh == NULL)
	{
		ereport(NOTICE,
				(errmsg("kmeans_progress needs kmeans in shared_preload_libraries on this server"),
				 errdetail("The server had no spare shared memory left for the progress of fits."),
				 errhint("Add kmeans to shared_preload_libraries and restart; fits work either way.")));
		return (Datum) 0;
	}
	for (int i = 0; i < sh->nslots; i++)
	{
		ProgressSlot *s = &sh->slots[i];
		ProgressSlot copy;
		Datum		values[14];
		bool		nulls[14] = {false};

		for (;;)
		{
			uint32		before = pg_atomic_read_u32(&s->changecount);

			pg_read_barrier();
			memcpy(&copy, s, sizeof(copy));
			pg_read_barrier();
			if (before == pg_atomic_read_u32(&s->changecount) && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy.pid == 0)
			continue;
		copy.function[NAMEDATALEN - 1] = '\0';
		values[0] = Int32GetDatum(copy.pid);
		values[1] = ObjectIdGetDatum(copy.userid);
		values[2] = CStringGetTextDatum(copy.function);
		values[3] = CStringGetTextDatum(phase_names[copy.phase]);
		values[4] = Int32GetDatum(copy.k_min);
		values[5] = Int32GetDatum(copy.k_max);
		values[6] = Int32GetDatum(copy.run);
		nulls[6] = copy.run == 0;
		values[7] = Int32GetDatum(copy.n_init);
		values[8] = Int32GetDatum(copy.iteration);
		nulls[8] = copy.iteration == 0;
		values[9] = Int64GetDatum(copy.rows_done);
		values[10] = Int64GetDatum(copy.rows_total);
		nulls[10] = copy.rows_total < 0;
		values[11] = Float8GetDatum(copy.inertia);
		nulls[11] = isnan(copy.inertia);
		values[12] = TimestampTzGetDatum(copy.started);
		values[13] = DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(now),
										 TimestampTzGetDatum(copy.started));
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
