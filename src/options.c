/*
 * options.c -- the options every fitting function shares, checked once with clear errors.
 */
#include "kmeans.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The argument at position i, which must not be NULL. */
static Datum
Required(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name),
				 errhint("Leave the argument out to use its default.")));
	return PG_GETARG_DATUM(i);
}

/* The names of the init and device options, in the order of their enum values. */
static const char *const init_names[] = {"k-means++", "random", "explicit", "k-means||"};
static const char *const device_names[] = {"auto", "cpu", "gpu"};

StaticAssertDecl(lengthof(init_names) == KMEANS_INIT_PARALLEL + 1, "one name per KmeansInit");
StaticAssertDecl(lengthof(device_names) == KMEANS_DEVICE_GPU + 1, "one name per KmeansDevice");

/*
 * The position of value among the n names of the option, compared exactly or (ignore_case) as
 * pg_strcasecmp does; an ERROR with the hint when it is none of them.
 */
static int
NameIndex(const char *option, const char *value, const char *const *names, int n,
		  bool ignore_case, const char *hint)
{
	for (int i = 0; i < n; i++)
		if ((ignore_case ? pg_strcasecmp(value, names[i]) : strcmp(value, names[i])) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown %s \"%s\"", option, value),
			 errhint("%s", hint)));
	return -1;					/* not reached */
}

/* Reads the options from the argument positions in pos. */
static void ParseSeriesOptions(FunctionCallInfo fcinfo, const KmeansArgPos *pos,
							   KmeansOptions *opt);

void
KmeansParseOptions(FunctionCallInfo fcinfo, const KmeansArgPos *pos, KmeansOptions *opt)
{
	char	   *init;

	memset(opt, 0, sizeof(*opt));
	opt->max_iter = DatumGetInt32(Required(fcinfo, pos->max_iter, "max_iter"));
	if (opt->max_iter < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_iter must be at least 1, got %d", opt->max_iter),
				 errhint("The default is 300.")));


	/*
	 * init NULL (the default): k-means++, which KmeansBegin turns into k-means|| where the
	 * engine reads the rows again on every pass (they do not fit kmeans.memory_limit)
	 */
	if (pos->init < 0 || PG_ARGISNULL(pos->init))
	{
		opt->init = KMEANS_INIT_PLUSPLUS;
		opt->init_name = init_names[KMEANS_INIT_PLUSPLUS];
		opt->init_auto = true;
	}
	else
	{
		init = text_to_cstring(PG_GETARG_TEXT_PP(pos->init));
		opt->init_name = init;
		opt->init = (KmeansInit) NameIndex("init", init, init_names, lengthof(init_names), false,
										   "Use 'k-means++', 'random', 'k-means||', or pass starting centers in init_centers.");
	}

	if (pos->init_centers >= 0 && !PG_ARGISNULL(pos->init_centers))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(pos->init_centers);

		/* NULLs now; the shape and values once the data gives d (seed.c) */
		KmeansCheckStartCenters(a, -1, -1);
		if (opt->init == KMEANS_INIT_RANDOM)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("init 'random' conflicts with init_centers"),
					 errhint("Leave init out, or set it to 'explicit', when passing init_centers.")));
		opt->init_centers = a;
		opt->init = KMEANS_INIT_EXPLICIT;
		opt->init_name = "explicit";
		opt->init_auto = false;
	}
	else if (opt->init == KMEANS_INIT_EXPLICIT && pos->init_centers < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("init 'explicit' is not available here"),
				 errdetail("Starting centers are given for one k, and this function fits a range of k."),
				 errhint("Use init => 'k-means++' or 'random'; fit one k with kmeans_fit(..., init_centers => ...).")));
	else if (opt->init == KMEANS_INIT_EXPLICIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("init 'explicit' needs init_centers"),
				 errhint("Pass the starting centers as a k x d real[] in init_centers.")));

	opt->n_init = pos->n_init < 0 ? 1 : DatumGetInt32(Required(fcinfo, pos->n_init, "n_init"));
	if (opt->n_init < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n_init must be at least 1, got %d", opt->n_init),
				 errhint("n_init is the number of seedings to try; the default is 1.")));
	/* explicit starting centers are one run whatever n_init says: checked, then set */
	if (opt->init == KMEANS_INIT_EXPLICIT)
		opt->n_init = 1;

	opt->seed = DatumGetInt64(Required(fcinfo, pos->seed, "seed"));

	if (PG_ARGISNULL(pos->device))
		opt->device = (KmeansDevice) kmeans_device;
	else
	{
		char	   *dev = text_to_cstring(PG_GETARG_TEXT_PP(pos->device));

		/* case-insensitive, as the kmeans.device setting is (PostgreSQL's enum settings are) */
		opt->device = (KmeansDevice) NameIndex("device", dev, device_names, lengthof(device_names),
											   true, "Use 'auto', 'cpu' or 'gpu'.");
	}
	opt->device_name = device_names[opt->device];

	/* a function declared before weights existed (an old SQL script) has no such argument */
	if (pos->weight >= 0 && pos->weight < PG_NARGS() && !PG_ARGISNULL(pos->weight))
		opt->weight = text_to_cstring(PG_GETARG_TEXT_PP(pos->weight));
	opt->metric = KM_METRIC_EUCLIDEAN;
	if (pos->metric >= 0 && pos->metric < PG_NARGS())
		opt->metric = KmeansMetricByName(text_to_cstring(DatumGetTextPP(Required(fcinfo, pos->metric,
																				 "metric"))));
	if (pos->center >= 0 && pos->center < PG_NARGS())
	{
		static const char *const center_names[] = {"mean", "median"};
		char	   *center = text_to_cstring(DatumGetTextPP(Required(fcinfo, pos->center, "center")));

		opt->median = NameIndex("center", center, center_names, lengthof(center_names), false,
								"Use 'mean' or, with metric => 'iou', 'median'.") == 1;
		if (opt->median && opt->metric != KM_METRIC_IOU)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("center 'median' is for the iou metric, not \"%s\"",
							KmeansMetricName(opt->metric)),
					 errhint("Pass metric => 'iou' with center => 'median', or leave center out.")));
		if (opt->median && opt->weight)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("center 'median' does not take weights"),
					 errhint("Leave weight out, or use center => 'mean' for a weighted fit.")));
	}
	opt->strategy = KMEANS_STRATEGY_AUTO;
	if (pos->strategy >= 0 && pos->strategy < PG_NARGS() && !PG_ARGISNULL(pos->strategy))
	{
		static const char *const strategy_names[] = {"engine", "aggregate"};
		char	   *strategy = text_to_cstring(PG_GETARG_TEXT_PP(pos->strategy));

		opt->strategy = NameIndex("strategy", strategy, strategy_names, lengthof(strategy_names),
								  false, "Use 'engine' or 'aggregate', or leave strategy out to choose by the source.") == 0 ?
			KMEANS_STRATEGY_ENGINE : KMEANS_STRATEGY_AGGREGATE;
	}
	opt->batch_size = 1024;
	if (pos->algorithm >= 0 && pos->algorithm < PG_NARGS())
	{
		static const char *const algorithm_names[] = {"lloyd", "minibatch"};
		char	   *algorithm = text_to_cstring(DatumGetTextPP(Required(fcinfo, pos->algorithm,
																		"algorithm")));

		opt->minibatch = NameIndex("algorithm", algorithm, algorithm_names,
								   lengthof(algorithm_names), false,
								   "Use 'lloyd' or 'minibatch'.") == 1;
	}
	if (pos->batch_size >= 0 && pos->batch_size < PG_NARGS())
	{
		opt->batch_size = DatumGetInt32(Required(fcinfo, pos->batch_size, "batch_size"));
		if (opt->batch_size < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("batch_size must be at least 1, got %d", opt->batch_size),
					 errhint("batch_size is the rows of one mini-batch; the default is 1024.")));
	}
	ParseSeriesOptions(fcinfo, pos, opt);
	/*
	 * NULL: the algorithm's default, 1e-4 for Lloyd, 0 (no such stop) for mini-batch, and under
	 * DTW and soft-DTW tslearn's 1e-6 on the change of the mean cost (dtw.c)
	 */
	if (PG_ARGISNULL(pos->tol))
		opt->tol = km_metric_series(opt->metric) ? 1e-6 : opt->minibatch ? 0.0 : 1e-4;
	else
		opt->tol = PG_GETARG_FLOAT8(pos->tol);
	if (!(opt->tol >= 0.0) || isinf(opt->tol))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tol must be a finite number >= 0, got %g", opt->tol),
				 errhint("tol is relative to the data's mean variance; the default is 1e-4 for Lloyd and 0 for mini-batch.")));
	if (opt->minibatch && opt->median)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("algorithm 'minibatch' does not take center 'median'"),
				 errhint("Use algorithm => 'lloyd' for median anchors, or leave center out.")));
	if (opt->minibatch && opt->strategy == KMEANS_STRATEGY_AGGREGATE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("algorithm 'minibatch' runs with strategy 'engine' only"),
				 errdetail("Its steps follow one another over batches of rows; an aggregate query makes a whole pass."),
				 errhint("Leave strategy out, or use algorithm => 'lloyd' with strategy => 'aggregate'.")));
	if (fcinfo->flinfo != NULL && OidIsValid(fcinfo->flinfo->fn_oid))
		opt->ext_namespace = get_func_namespace(fcinfo->flinfo->fn_oid);
}

/*
 * dtw_band, barycenter_iter and gamma, which only the series metrics take (gamma softdtw
 * alone), and what those metrics do not combine with: series are fitted by the engine's own
 * loop (dtw.c), with k-means++, random or given starting centers, on the CPU but for DTW's
 * assignments, which a GPU takes where the fit has one.
 */
static void
ParseSeriesOptions(FunctionCallInfo fcinfo, const KmeansArgPos *pos, KmeansOptions *opt)
{
	bool		series = km_metric_series(opt->metric);
	const char *name = KmeansMetricName(opt->metric);

	opt->dtw_band = -1;
	opt->barycenter_iter = 30;
	opt->gamma = 1.0;
	if (pos->dtw_band >= 0 && pos->dtw_band < PG_NARGS() && !PG_ARGISNULL(pos->dtw_band))
	{
		opt->dtw_band = PG_GETARG_INT32(pos->dtw_band);
		if (!series)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dtw_band is for metrics 'dtw' and 'softdtw', not \"%s\"", name),
					 errhint("Pass metric => 'dtw' or 'softdtw' with dtw_band, or leave dtw_band out.")));
		if (opt->dtw_band < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dtw_band must be 0 or more, got %d", opt->dtw_band),
					 errhint("dtw_band is the Sakoe-Chiba radius in samples; leave it NULL for no band.")));
	}
	if (pos->barycenter_iter >= 0 && pos->barycenter_iter < PG_NARGS())
	{
		opt->barycenter_iter = DatumGetInt32(Required(fcinfo, pos->barycenter_iter,
													  "barycenter_iter"));
		if (opt->barycenter_iter < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("barycenter_iter must be at least 1, got %d", opt->barycenter_iter),
					 errhint("barycenter_iter is the DBA steps (dtw) or L-BFGS iterations (softdtw) of one center update; the default is 30.")));
	}
	if (pos->gamma >= 0 && pos->gamma < PG_NARGS() && !PG_ARGISNULL(pos->gamma))
	{
		opt->gamma = PG_GETARG_FLOAT8(pos->gamma);
		if (opt->metric != KM_METRIC_SOFTDTW)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gamma is for metric 'softdtw', not \"%s\"", name),
					 errhint("Pass metric => 'softdtw' with gamma, or leave gamma out.")));
		KmeansCheckGamma(opt->gamma);
	}
	if (!series)
		return;
	if (opt->minibatch)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("algorithm 'minibatch' does not take metric '%s'", name),
				 errhint("Leave algorithm out: series are fitted by Lloyd iterations with barycenter updates.")));
	if (opt->strategy == KMEANS_STRATEGY_AGGREGATE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("metric '%s' runs with strategy 'engine' only", name),
				 errdetail("A barycenter update aligns every row with its center; an aggregate query sums vectors."),
				 errhint("Leave strategy out.")));
	if (opt->init == KMEANS_INIT_PARALLEL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("init 'k-means||' does not take metric '%s'", name),
				 errhint("Use init => 'k-means++' or 'random', or pass init_centers.")));
	/*
	 * DTW assigns on the GPU (dtw.c); soft-DTW has no GPU kernels: kmeans.device = 'gpu' alone
	 * leaves it on the CPU, and asking for the GPU is refused
	 */
	if (opt->metric == KM_METRIC_SOFTDTW && opt->device == KMEANS_DEVICE_GPU &&
		pos->device >= 0 && !PG_ARGISNULL(pos->device))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("metric '%s' runs on the CPU only", name),
				 errhint("Use device => 'cpu' or 'auto' for a %s fit.", name)));
}

/* soft-DTW's gamma: finite and > 0 (22023 otherwise). */
void
KmeansCheckGamma(double gamma)
{
	if (!(gamma > 0.0) || isinf(gamma))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gamma must be a finite number > 0, got %g", gamma),
				 errhint("gamma is soft-DTW's smoothing: small values approach DTW; the default is 1.")));
}

/* ERRORs when one of the first nargs arguments, which have no default, is NULL. */
void
KmeansRequireArgs(FunctionCallInfo fcinfo, int nargs, const char *names, const char *hint)
{
	for (int i = 0; i < nargs; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names),
					 errhint("%s", hint)));
}

/* Checks k against the number of rows once they are known. */
void
KmeansCheckK(int k, int64 n, const char *what)
{
	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at least 1, got %d", what, k),
				 errhint("Ask for one or more clusters.")));
	if (k > KMEANS_MAX_K)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d, got %d", what, KMEANS_MAX_K, k),
				 errhint("For more clusters than that, cluster in two levels.")));
	if (n >= 0 && k > n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s (%d) is larger than the number of rows (" INT64_FORMAT ")", what, k, n),
				 errhint("Ask for at most as many clusters as there are non-NULL vectors.")));
}

/*
 * The options as a JSON object, for the models table; "strategy": "aggregate" when the fit
 * read its source by aggregate queries.
 */
char *
KmeansOptionsJson(const KmeansOptions *opt, const KmeansSource *src, bool aggregate)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"max_iter\": %d, \"tol\": %.17g, \"init\": ", opt->max_iter, opt->tol);
	escape_json(&s, opt->init_name);
	appendStringInfo(&s, ", \"n_init\": %d, \"seed\": " INT64_FORMAT ", \"device\": ",
					 opt->n_init, opt->seed);
	escape_json(&s, opt->device_name);
	appendStringInfoString(&s, ", \"metric\": ");
	escape_json(&s, KmeansMetricName(opt->metric));
	if (opt->median)
		appendStringInfoString(&s, ", \"center\": \"median\"");
	if (aggregate)
		appendStringInfoString(&s, ", \"strategy\": \"aggregate\"");
	if (opt->minibatch)
		appendStringInfo(&s, ", \"algorithm\": \"minibatch\", \"batch_size\": %d", opt->batch_size);
	if (km_metric_series(opt->metric))
	{
		if (opt->dtw_band >= 0)
			appendStringInfo(&s, ", \"dtw_band\": %d", opt->dtw_band);
		appendStringInfo(&s, ", \"barycenter_iter\": %d", opt->barycenter_iter);
	}
	if (opt->metric == KM_METRIC_SOFTDTW)
	{
		appendStringInfoString(&s, ", \"gamma\": ");
		appendStringInfoString(&s, float8out_internal(opt->gamma));
	}
	appendStringInfoString(&s, ", \"column\": ");
	escape_json(&s, src->column);
	if (src->weight)
	{
		appendStringInfoString(&s, ", \"weight\": ");
		escape_json(&s, src->weight);
	}
	appendStringInfoString(&s, "}");
	return s.data;
}

/*
 * The options of the aggregate and window forms, which cannot take named arguments: one jsonb
 * object, {"max_iter": 50, "init": "random", ...}.  Its values are turned into the arguments
 * the named form would have been given, and checked by KmeansParseOptions, so that both forms
 * accept the same values with the same errors.  An unknown key, or a value of the wrong JSON
 * type, is an ERROR naming it; what stays unset takes the named form's default.
 */
enum
{
	JOPT_MAX_ITER,
	JOPT_TOL,
	JOPT_INIT,
	JOPT_INIT_CENTERS,
	JOPT_N_INIT,
	JOPT_SEED,
	JOPT_DEVICE,
	JOPT_METRIC,
	JOPT_CENTER,
	JOPT_ALGORITHM,
	JOPT_BATCH_SIZE,
	JOPT_COUNT
};

static const char *const json_option_names[JOPT_COUNT] = {
	"max_iter", "tol", "init", "init_centers", "n_init", "seed", "device", "metric", "center",
	"algorithm", "batch_size"
};

static void
BadJsonOption(const char *what, const char *key, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s: option \"%s\" %s", what, key, why),
			 errhint("The options are a jsonb object with the keys max_iter, tol, init, init_centers, "
					 "n_init, seed, device, metric, center, algorithm and batch_size.")));
}

/* A JSON number that must be an integer within [lo, hi]. */
static int64
JsonInteger(const char *what, const char *key, const JsonbValue *v, double lo, double hi)
{
	double		x;

	if (v->type != jbvNumeric)
		BadJsonOption(what, key, "must be a number");
	x = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (x != floor(x) || x < lo || x > hi)
		BadJsonOption(what, key, psprintf("must be an integer in [%.0f, %.0f], got %s", lo, hi,
										  numeric_normalize(v->val.numeric)));
	return (int64) x;
}

static Datum
JsonText(const char *what, const char *key, const JsonbValue *v)
{
	if (v->type != jbvString)
		BadJsonOption(what, key, "must be a string");
	return PointerGetDatum(cstring_to_text_with_len(v->val.string.val, v->val.string.len));
}

/* init_centers: an array of k arrays of d numbers, as a k x d real[]. */
static Datum
JsonCenters(const char *what, const char *key, const JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			depth = 0,
				rows = 0,
				cols = 0,
				row_len = 0;
	int			cap = 64,
				n = 0;
	Datum	   *vals = palloc(sizeof(Datum) * cap);
	int			dims[2];
	int			lbs[2] = {1, 1};

	if (v->type != jbvBinary)
		BadJsonOption(what, key, "must be an array of k arrays of d numbers");
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_ARRAY)
		{
			if (++depth > 2 || e.val.array.rawScalar)
				BadJsonOption(what, key, "must be an array of k arrays of d numbers");
			row_len = 0;
		}
		else if (tok == WJB_END_ARRAY)
		{
			if (depth-- == 2)
			{
				if (rows > 0 && row_len != cols)
					BadJsonOption(what, key, psprintf("has rows of %d and %d numbers", cols, row_len));
				cols = row_len;
				rows++;
			}
		}
		else if (tok == WJB_ELEM && depth == 2 && e.type == jbvNumeric)
		{
			if (n == cap)
				vals = repalloc(vals, sizeof(Datum) * (cap *= 2));
			vals[n++] = Float4GetDatum((float) DatumGetFloat8(
				DirectFunctionCall1(numeric_float8, NumericGetDatum(e.val.numeric))));
			row_len++;
		}
		else
			BadJsonOption(what, key, "must be an array of k arrays of d numbers");
	}
	if (rows == 0 || cols == 0)
		BadJsonOption(what, key, "must be an array of k arrays of d numbers");
	dims[0] = rows;
	dims[1] = cols;
	return PointerGetDatum(construct_md_array(vals, NULL, 2, dims, lbs, FLOAT4OID, sizeof(float4),
											  true, TYPALIGN_INT));
}

void
KmeansParseJsonOptions(Jsonb *options, const char *what, KmeansOptions *opt)
{
	LOCAL_FCINFO(args, JOPT_COUNT);
	static const KmeansArgPos pos = {
		JOPT_MAX_ITER, JOPT_TOL, JOPT_INIT, JOPT_INIT_CENTERS, JOPT_N_INIT, JOPT_SEED, JOPT_DEVICE,
		-1, JOPT_METRIC, JOPT_CENTER, -1, JOPT_ALGORITHM, JOPT_BATCH_SIZE, -1, -1, -1
	};
	FmgrInfo	flinfo;

	/* the named forms' defaults */
	memset(&flinfo, 0, sizeof(flinfo));
	InitFunctionCallInfoData(*args, &flinfo, JOPT_COUNT, InvalidOid, NULL, NULL);
	for (int i = 0; i < JOPT_COUNT; i++)
		args->args[i].isnull = false;
	args->args[JOPT_MAX_ITER].value = Int32GetDatum(300);
	args->args[JOPT_TOL].isnull = true;
	args->args[JOPT_INIT].isnull = true;
	args->args[JOPT_INIT_CENTERS].isnull = true;
	args->args[JOPT_N_INIT].value = Int32GetDatum(1);
	args->args[JOPT_SEED].value = Int64GetDatum(0);
	args->args[JOPT_DEVICE].isnull = true;
	args->args[JOPT_METRIC].value = CStringGetTextDatum("euclidean");
	args->args[JOPT_CENTER].value = CStringGetTextDatum("mean");
	args->args[JOPT_ALGORITHM].value = CStringGetTextDatum("lloyd");
	args->args[JOPT_BATCH_SIZE].value = Int32GetDatum(1024);

	if (options != NULL)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *key = NULL;

		if (!JB_ROOT_IS_OBJECT(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s: options must be a jsonb object", what),
					 errhint("Pass e.g. '{\"max_iter\": 50, \"seed\": 1}'::jsonb, or leave options out.")));
		it = JsonbIteratorInit(&options->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			int			o;

			if (tok == WJB_KEY)
			{
				key = pnstrdup(v.val.string.val, v.val.string.len);
				continue;
			}
			if (tok != WJB_VALUE)
				continue;
			for (o = 0; o < JOPT_COUNT; o++)
				if (strcmp(key, json_option_names[o]) == 0)
					break;
			if (o == JOPT_COUNT)
				BadJsonOption(what, key, "is not an option here");
			if (v.type == jbvNull)
				BadJsonOption(what, key, "must not be null; leave it out to use its default");
			switch (o)
			{
				case JOPT_MAX_ITER:
				case JOPT_N_INIT:
				case JOPT_BATCH_SIZE:
					args->args[o].value = Int32GetDatum((int32) JsonInteger(what, key, &v, PG_INT32_MIN,
																			 PG_INT32_MAX));
					break;
				case JOPT_SEED:
					args->args[o].value = Int64GetDatum(JsonInteger(what, key, &v, -9007199254740992.0,
																	 9007199254740992.0));
					break;
				case JOPT_TOL:
					if (v.type != jbvNumeric)
						BadJsonOption(what, key, "must be a number");
					args->args[o].value = DirectFunctionCall1(numeric_float8,
															  NumericGetDatum(v.val.numeric));
					args->args[o].isnull = false;
					break;
				case JOPT_INIT_CENTERS:
					args->args[o].value = JsonCenters(what, key, &v);
					args->args[o].isnull = false;
					break;
				default:
					args->args[o].value = JsonText(what, key, &v);
					args->args[o].isnull = false;
					break;
			}
		}
	}
	KmeansParseOptions(args, &pos, opt);
	KmeansMetricVectorOnly(opt->metric, what);
}
