/*
 * gucs.c -- the module's entry point and its kmeans.* settings.
 *
 * _PG_init only defines settings: a preloaded library runs it in the postmaster, where no
 * thread or device may be started because they do not survive fork.
 */
#include "kmeans.h"

#include <limits.h>

#include "utils/guc.h"

PG_MODULE_MAGIC;

int			kmeans_device = KMEANS_DEVICE_AUTO;
int			kmeans_batch_rows = KMEANS_DEFAULT_BATCH_ROWS;
int			kmeans_memory_limit = 1024 * 1024;	/* kB: 1 GB */
int			kmeans_max_memory = 4 * 1024 * 1024;	/* kB: 4 GB */
int			kmeans_threads = 0;
bool		kmeans_trace = false;
bool		kmeans_match_clusters = true;
bool		kmeans_prune = true;
int			kmeans_model_versions = 10;
bool		kmeans_verbose = false;	/* the old name of kmeans.trace */
int			kmeans_gpu_id = 0;
int			kmeans_gpu_memory_limit = 0;

static const struct config_enum_entry device_options[] = {
	{"auto", KMEANS_DEVICE_AUTO, false},
	{"cpu", KMEANS_DEVICE_CPU, false},
	{"gpu", KMEANS_DEVICE_GPU, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/*
 * The compute threads a fit starts: kmeans.threads, or one per online CPU core when it is 0.
 * The cores are counted once per backend: sysconf reads /sys on every call, and the memory
 * estimate asks for the count every 1024 rows of a first pass.
 */
int
KmeansThreads(void)
{
	static int	cores = 0;

	if (kmeans_threads > 0)
		return kmeans_threads;
	if (cores == 0)
		cores = km_cpu_count();
	return cores;
}

/*
 * kmeans.gpu_memory_limit is in kB so that a value below 1 MB is seen as such: in MB, '512kB'
 * rounded to 0, which means "what the device has free", the opposite of what was asked.
 */
static bool
CheckGpuMemoryLimit(int *newval, void **extra, GucSource source)
{
	if (*newval > 0 && *newval < 1024)
	{
		GUC_check_errdetail("kmeans.gpu_memory_limit must be 0 (what the device has free) or at least 1MB, got %dkB.",
							*newval);
		return false;
	}
	return true;
}

/* Defines the kmeans.* settings. */
void
_PG_init(void)
{
	DefineCustomEnumVariable("kmeans.device",
							 "Where fits run when the call does not say: auto, cpu or gpu.",
							 "auto uses a usable GPU and otherwise the CPU.",
							 &kmeans_device, KMEANS_DEVICE_AUTO, device_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.batch_rows",
							"Rows per batch when the data is read from the source on every pass.",
							"Rounded up to a multiple of 1024.",
							&kmeans_batch_rows, KMEANS_DEFAULT_BATCH_ROWS, KM_SUB_ROWS,
							16 * 1024 * 1024, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.memory_limit",
							"Host memory the data of one fit may be kept in.",
							"Larger data is read from the source again on every pass.",
							&kmeans_memory_limit, 1024 * 1024, 64, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.max_memory",
							"Host memory one fit may use in all: per-row state, centers, buffers and cached rows.",
							"A fit that needs more is refused before it allocates; only superusers may change this.",
							&kmeans_max_memory, 4 * 1024 * 1024, 1024, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.threads",
							"Compute threads per fit; 0 means one per CPU core.",
							NULL,
							&kmeans_threads, 0, 0, KMEANS_MAX_THREADS,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.gpu_id",
							"The GPU fits run on, when they run on a GPU.",
							"CUDA's device number, as nvidia-smi lists them unless CUDA_VISIBLE_DEVICES says otherwise.",
							&kmeans_gpu_id, 0, 0, 1024,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kmeans.gpu_memory_limit",
							"GPU memory one fit may use; 0 means what the device has free.",
							"At least 1MB otherwise.  Rows that do not fit are copied to the GPU again on every pass.",
							&kmeans_gpu_memory_limit, 0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB, CheckGpuMemoryLimit, NULL, NULL);
	DefineCustomBoolVariable("kmeans.trace",
							 "Reports every iteration of a fit as a NOTICE.",
							 NULL,
							 &kmeans_trace, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("kmeans.match_clusters",
							 "A refit of a saved model numbers its clusters after the model it replaces.",
							 "Each new center takes the number of the old center it is matched to "
							 "(least total squared distance), so stored labels keep their meaning.",
							 &kmeans_match_clusters, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("kmeans.prune",
							 "Lloyd passes skip the rows that bounds prove keep their cluster.",
							 "Results are the same bits either way; off is for comparison and tests.",
							 &kmeans_prune, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	/* read by the models table's trigger (sql/kmeans.sql), defined here so it is checked */
	DefineCustomIntVariable("kmeans.model_versions",
							"Earlier versions of each saved model kept in kmeans_model_versions.",
							"A refit keeps the version it replaces and drops older ones beyond this; 0 keeps none.",
							&kmeans_model_versions, 10, 0, 1000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	/* VERBOSE is an SQL keyword, so the old name needs quotes in SET; it still works */
	DefineCustomBoolVariable("kmeans.verbose",
							 "The old name of kmeans.trace: either one on reports every iteration.",
							 NULL,
							 &kmeans_verbose, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	KmeansProgressInit();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("kmeans");
#else
	EmitWarningsOnPlaceholders("kmeans");
#endif
}
