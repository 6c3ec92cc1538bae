/*
 * models.c -- saved models (the kmeans_models table) and labelling new vectors with them.
 *
 * Every statement this file runs is the extension's own, not the user's, so none of them may
 * depend on the caller's search_path: a caller (or a function's SET clause) can put a schema
 * ahead of pg_catalog, and an operator, function or type there of a name the statement uses
 * would then run inside it with the caller's privileges (CVE-2018-1058).  Hence both: every
 * operator, function and type is written schema-qualified (the table already is), and each
 * statement runs with search_path pinned to pg_catalog, pg_temp (PinSearchPath), so that one
 * which forgets a qualification is still safe.  The user's source and column are SQL text the
 * user wrote and are read elsewhere (reader.c) with the caller's search_path.
 *
 * Who may write which model is decided by the table's row-level security policies
 * (sql/kmeans.sql): every role granted SELECT reads every model, only members of a model's
 * owner role replace, update or delete it.  KmeansModelCheckSave only tells a fit early that
 * its save would be refused.
 */
#include "kmeans.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kmeans_predict_model);
PG_FUNCTION_INFO_V1(kmeans_predict_centers);
PG_FUNCTION_INFO_V1(kmeans_centers);

/*
 * The schema-qualified, quoted name of the models table.  It lives in the extension's schema,
 * which is also where the calling SQL function lives.
 */
char *
KmeansModelsTable(FunctionCallInfo fcinfo)
{
	char	   *nsp = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));

	return quote_qualified_identifier(nsp, "kmeans_models");
}

/* The OID of the models table, in the schema of the calling SQL function. */
static Oid
ModelsTableOid(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			relid = get_relname_relid("kmeans_models", nsp);

	/* the table is a member of the extension: it cannot be dropped on its own */
	if (!OidIsValid(relid))
		elog(ERROR, "kmeans: table kmeans_models is missing from schema \"%s\" (this is a bug)",
			 get_namespace_name(nsp));
	return relid;
}

/*
 * Opens a GUC nest level with search_path = pg_catalog, pg_temp for one of the extension's
 * own statements (see the header).  pg_temp is named last so that a temporary table cannot
 * shadow a catalog.  Close it with UnpinSearchPath; an error unwinds it with the
 * (sub)transaction.  GUC_ACTION_SAVE is what a function's SET clause uses, and is allowed
 * in a parallel worker, where kmeans_predict may run.
 */
static int
PinSearchPath(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* Gives the caller back its search_path. */
static void
UnpinSearchPath(int nest)
{
	AtEOXact_GUC(true, nest);
}

/*
 * Saves segment seg of a fit as model name, replacing a model of that name.  The statement
 * runs in the caller's transaction with the caller's privileges, so the replacement commits or
 * rolls back with it, and the table's policies decide whether it may: a new model belongs to
 * the current user (the owner column's default), a replaced one keeps its owner.
 */
void
KmeansModelSave(const char *table, const char *name, const KmeansSource *src, const KmeansOptions *opt,
				KmeansData *data, KmeansModelSet *ms, int seg)
{
	int			k = ms->seg_off[seg + 1] - ms->seg_off[seg];
	double		inertia = 0.0;
	Oid			types[10] = {TEXTOID, INT4OID, INT4OID, FLOAT4ARRAYOID, FLOAT8OID, INT4OID,
	INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[10];
	char	   *sql;
	int			rc;
	int			nest;

	for (int j = ms->seg_off[seg]; j < ms->seg_off[seg + 1]; j++)
		inertia += ms->inertia[j];
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(k);
	values[2] = Int32GetDatum(ms->d);
	values[3] = KmeansCentersDatum(KmeansCentersOut(data, ms, seg), k, ms->d);
	values[4] = Float8GetDatum(inertia);
	values[5] = Int32GetDatum(ms->n_iter[seg]);
	values[6] = Int64GetDatum(data->n);
	values[7] = CStringGetTextDatum(KmeansOptionsJson(opt, src, data->agg != NULL));
	values[8] = CStringGetTextDatum(src->source);
	values[9] = CStringGetTextDatum(KmeansMetricName(opt->metric));
	sql = psprintf("INSERT INTO %s AS m (name, k, dim, metric, centers, inertia, n_iter, n_rows, "
				   "options, source) VALUES ($1, $2, $3, $10, $4, $5, $6, $7, "
				   "$8::pg_catalog.jsonb, $9) "
				   "ON CONFLICT (name) DO UPDATE SET k = EXCLUDED.k, dim = EXCLUDED.dim, "
				   "metric = EXCLUDED.metric, centers = EXCLUDED.centers, "
				   "inertia = EXCLUDED.inertia, n_iter = EXCLUDED.n_iter, "
				   "n_rows = EXCLUDED.n_rows, options = EXCLUDED.options, "
				   "source = EXCLUDED.source, created_at = pg_catalog.now()",
				   table);
	nest = PinSearchPath();
	rc = SPI_execute_with_args(sql, 10, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "kmeans: saving model \"%s\" failed: %s", name, SPI_result_code_string(rc));
	UnpinSearchPath(nest);
}

/* The privileges a save needs on the models table: ON CONFLICT (name) reads the name too. */
static const struct
{
	AclMode		mode;
	const char *name;
}			save_privileges[] = {
	{ACL_SELECT, "SELECT"},
	{ACL_INSERT, "INSERT"},
	{ACL_UPDATE, "UPDATE"}
};

/*
 * Refuses, before any data is read, a save of model name that the models table would refuse
 * after the fit: the current user lacks a privilege the save needs, or a model of that name
 * belongs to a role the current user is not a member of.  The second mirrors the table's
 * UPDATE policy, so it applies only where the policies do (not to the table's owner, nor to
 * superusers or roles with BYPASSRLS); the policies stay what decides.
 */
void
KmeansModelCheckSave(FunctionCallInfo fcinfo, const char *name)
{
	Oid			relid = ModelsTableOid(fcinfo);
	char	   *table = KmeansModelsTable(fcinfo);
	Oid			user = GetUserId();
	char	   *user_name = GetUserNameFromId(user, false);
	const char *missing[lengthof(save_privileges)];
	int			nmissing = 0;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int			nest;
	int			rc;
	char	   *owner = NULL;
	Oid			owner_id;
	MemoryContext caller = CurrentMemoryContext;

	for (int i = 0; i < lengthof(save_privileges); i++)
		if (pg_class_aclcheck(relid, user, save_privileges[i].mode) != ACLCHECK_OK)
			missing[nmissing++] = save_privileges[i].name;
	if (nmissing > 0)
	{
		StringInfoData list;

		initStringInfo(&list);
		for (int i = 0; i < nmissing; i++)
			appendStringInfo(&list, "%s%s", i == 0 ? "" : (i < nmissing - 1 ? ", " : " and "),
							 missing[i]);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not save models in table %s", user_name, table),
				 errdetail("Saving model \"%s\" needs SELECT, INSERT and UPDATE on the table; "
						   "the role lacks %s.", name, list.data),
				 errhint("The table's owner or a superuser can grant them: "
						 "GRANT SELECT, INSERT, UPDATE ON %s TO %s;",
						 table, quote_identifier(user_name))));
	}

	if (check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED)
		return;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kmeans: SPI_connect failed");
	values[0] = CStringGetTextDatum(name);
	nest = PinSearchPath();
	rc = SPI_execute_with_args(psprintf("SELECT owner FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
										table),
							   1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kmeans: reading the owner of model \"%s\" failed: %s", name,
			 SPI_result_code_string(rc));
	/*
	 * SPI_finish frees what SPI_getvalue returns.  A NULL owner (the column altered) is left
	 * to the policies, which refuse it.
	 */
	if (SPI_processed > 0)
		owner = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (owner != NULL)
		owner = MemoryContextStrdup(caller, owner);
	UnpinSearchPath(nest);
	SPI_finish();
	if (owner == NULL)
		return;					/* a new model: it will be the current user's */

	owner_id = get_role_oid(owner, true);
	if (!OidIsValid(owner_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("model \"%s\" belongs to role \"%s\", which does not exist", name, owner),
				 errdetail("Only the owner of table %s or a superuser may replace the model.",
						   table),
				 errhint("Save under another name, or have the table's owner give the model to "
						 "an existing role: UPDATE %s SET owner = ... WHERE name = %s;",
						 table, quote_literal_cstr(name))));
	if (!is_member_of_role(user, owner_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("model \"%s\" belongs to role \"%s\"", name, owner),
				 errdetail("Role \"%s\" is not a member of role \"%s\", so it may not replace "
						   "the model.", user_name, owner),
				 errhint("Save under another name, or have a member of role \"%s\" replace or "
						 "delete the model.", owner)));
}

/* A model's centers, loaded for labelling. */
typedef struct LoadedModel
{
	char	   *name;
	int			k;
	int			d;
	KmMetric	metric;
	int			dtw_band;		/* a series metric's Sakoe-Chiba radius, -1 for none */
	double		gamma;			/* metric 'softdtw': the fit's gamma */
	float	   *centers;		/* k x d */
	/* the statement it was read in: a later one reads it again (ModelIsCurrent) */
	LocalTransactionId lxid;
	CommandId	cid;
} LoadedModel;

static int	ModelBand(const char *name, const char *table);
static double ModelGamma(const char *name, const char *table);

/* The columns LoadModel reads, and the types it reads them as. */
static const struct
{
	const char *name;
	Oid			type;
}			model_columns[] = {
	{"k", INT4OID},
	{"dim", INT4OID},
	{"centers", FLOAT4ARRAYOID},
	{"metric", TEXTOID}
};

/*
 * Reads model name from the models table into cxt, or raises an error naming it.  The row is
 * checked as it is read, since the table is an ordinary one whose owner can drop its checks
 * and change its columns: the columns' types, NULLs, the shape of the centers and their
 * values.  A NaN center is never the nearest, so without the check kmeans_predict would
 * answer wrong clusters (0 for every vector when all are NaN) without a word.
 */
static LoadedModel *
LoadModel(const char *table, const char *name, MemoryContext cxt, bool missing_ok)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Datum		cols[lengthof(model_columns)];
	LoadedModel *m;
	ArrayType  *a;
	const float *c;
	int			rc;
	int			nest;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kmeans: SPI_connect failed");
	values[0] = CStringGetTextDatum(name);
	nest = PinSearchPath();
	rc = SPI_execute_with_args(psprintf("SELECT k, dim, centers, metric, "
										"options OPERATOR(pg_catalog.->) 'dtw_band', "
										"options OPERATOR(pg_catalog.->) 'gamma' FROM %s "
										"WHERE name OPERATOR(pg_catalog.=) $1", table),
							   1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kmeans: reading model \"%s\" failed: %s", name, SPI_result_code_string(rc));
	UnpinSearchPath(nest);
	if (SPI_processed == 0 && missing_ok)
	{
		SPI_finish();
		return NULL;
	}
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("Save one with kmeans_fit(..., model => '%s'), or list them with "
						 "SELECT name FROM kmeans_models.", name)));

	for (int i = 0; i < lengthof(model_columns); i++)
	{
		Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, i + 1);
		bool		isnull;

		if (type != model_columns[i].type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table %s has type %s, not %s",
							model_columns[i].name, table, format_type_be(type),
							format_type_be(model_columns[i].type)),
					 errdetail("Model \"%s\" cannot be read.", name),
					 errhint("Give the column back the type the extension created it with.")));
		cols[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" has NULL in column \"%s\"", name,
							model_columns[i].name),
					 errhint("Fit and save the model again.")));
	}

	m = MemoryContextAllocZero(cxt, sizeof(LoadedModel));
	m->name = MemoryContextStrdup(cxt, name);
	m->k = DatumGetInt32(cols[0]);
	m->d = DatumGetInt32(cols[1]);
	m->metric = KmeansMetricByName(TextDatumGetCString(cols[3]));
	m->dtw_band = km_metric_series(m->metric) ? ModelBand(name, table) : -1;
	m->gamma = m->metric == KM_METRIC_SOFTDTW ? ModelGamma(name, table) : 1.0;
	a = DatumGetArrayTypeP(cols[2]);
	c = KmeansCheckModelCenters(a, name, table, m->k, m->d);
	m->centers = MemoryContextAlloc(cxt, sizeof(float) * m->k * m->d);
	memcpy(m->centers, c, sizeof(float) * m->k * m->d);
	SPI_finish();
	return m;
}

/*
 * The dtw_band a DTW model was fitted with, from its options (column 5 of LoadModel's query):
 * absent or null for none, else an integer of 0 or more, or the row is damaged.
 */
static int
ModelBand(const char *name, const char *table)
{
	bool		isnull;
	Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	char	   *str;
	char	   *end;
	long		band;

	if (isnull)
		return -1;
	str = DatumGetCString(DirectFunctionCall1(jsonb_out, v));
	if (strcmp(str, "null") == 0)
		return -1;
	errno = 0;
	band = strtol(str, &end, 10);
	if (errno != 0 || *end != '\0' || end == str || band < 0 || band > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has dtw_band %s in its options, not an integer of 0 or more",
						name, str),
				 errdetail("Table %s holds the model.", table),
				 errhint("Fit and save the model again.")));
	return (int) band;
}

/*
 * The gamma a soft-DTW model was fitted with, from its options (column 6 of LoadModel's
 * query): a finite number > 0, or the row is damaged.
 */
static double
ModelGamma(const char *name, const char *table)
{
	bool		isnull;
	Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);
	char	   *str = isnull ? "null" : DatumGetCString(DirectFunctionCall1(jsonb_out, v));
	char	   *end;
	double		gamma;

	errno = 0;
	gamma = strtod(str, &end);
	if (errno != 0 || *end != '\0' || end == str || !(gamma > 0.0) || isinf(gamma))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has gamma %s in its options, not a finite number > 0",
						name, str),
				 errdetail("Table %s holds the model.", table),
				 errhint("Fit and save the model again.")));
	return gamma;
}

/*
 * The centers (k x d, as saved) of the model a save would replace, checked as kmeans_predict
 * checks them; NULL where there is none.
 */
const float *
KmeansModelPrevious(const char *table, const char *name, int *k, int *d)
{
	LoadedModel *m = LoadModel(table, name, CurrentMemoryContext, true);

	if (m == NULL)
		return NULL;
	*k = m->k;
	*d = m->d;
	return m->centers;
}

/* This backend's local transaction id (its field moved in PostgreSQL 17). */
static LocalTransactionId
CurrentLxid(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

/*
 * Whether a cached model was read by this statement: same transaction, same command.  A call
 * site can outlive its statement (a trigger's or a function's cached plan does), and a refit
 * committed meanwhile, or made earlier in this transaction, must be seen from the next
 * statement on.
 */
static bool
ModelIsCurrent(const LoadedModel *m, const char *name)
{
	return m != NULL && strcmp(m->name, name) == 0 && m->lxid == CurrentLxid() &&
		m->cid == GetCurrentCommandId(false);
}

/*
 * kmeans_predict(model text, x real[]): the nearest center of a saved model.  The model is
 * read once per statement and kept in the call's fn_extra, so labelling a table costs one
 * lookup.
 */
Datum
kmeans_predict_model(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *x = PG_GETARG_ARRAYTYPE_P(1);
	LoadedModel *m = (LoadedModel *) fcinfo->flinfo->fn_extra;

	if (!ModelIsCurrent(m, name))
	{
		if (m != NULL)
		{
			pfree(m->name);
			pfree(m->centers);
			pfree(m);
			fcinfo->flinfo->fn_extra = NULL;
		}
		m = LoadModel(KmeansModelsTable(fcinfo), name, fcinfo->flinfo->fn_mcxt, false);
		m->lxid = CurrentLxid();
		m->cid = GetCurrentCommandId(false);
		fcinfo->flinfo->fn_extra = m;
	}
	if (km_metric_series(m->metric))
	{
		/* a series of any length, against centers of the fit's length */
		int			len;
		const float *v = KmeansCheckSeries(x, "series to label", &len);

		PG_RETURN_INT32(KmeansSeriesNearest(m->metric, m->centers, m->k, m->d, v, len,
											m->dtw_band, m->gamma));
	}
	PG_RETURN_INT32(KmeansMetricNearest(m->metric, m->centers, m->k, m->d,
										KmeansCheckVector(x, m->d, psprintf("model \"%s\"", name))));
}

/*
 * kmeans_predict(centers real[], x real[] [, metric text]): the nearest row of a k x d array of
 * centers, by the metric (Euclidean without one).
 */
Datum
kmeans_predict_centers(PG_FUNCTION_ARGS)
{
	ArrayType  *c = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *x = PG_GETARG_ARRAYTYPE_P(1);
	KmMetric	metric = PG_NARGS() > 2 ?
		KmeansMetricByName(text_to_cstring(PG_GETARG_TEXT_PP(2))) : KM_METRIC_EUCLIDEAN;
	int			k,
				d;
	const float *centers = KmeansCheckPredictCenters(c, &k, &d);

	if (km_metric_series(metric))
	{
		int			len;
		const float *v = KmeansCheckSeries(x, "series to label", &len);

		PG_RETURN_INT32(KmeansSeriesNearest(metric, centers, k, d, v, len, -1, 1.0));
	}
	PG_RETURN_INT32(KmeansMetricNearest(metric, centers, k, d, KmeansCheckVector(x, d, "centers")));
}

/* kmeans_centers(model text): a saved model's centers, one row per cluster. */
Datum
kmeans_centers(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TupleDesc	desc;
	Tuplestorestate *store = KmeansResultStore(fcinfo, &desc);
	LoadedModel *m = LoadModel(KmeansModelsTable(fcinfo), name, CurrentMemoryContext, false);

	for (int j = 0; j < m->k; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int32GetDatum(j);
		values[1] = KmeansVectorDatum(m->centers + (int64) j * m->d, m->d);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
