/*
 * source.c -- what a fit reads: the source, column and id texts, checked and composed into the
 * one query every pass runs.
 *
 * The texts are SQL written by the caller, run with the caller's privileges and search_path.
 * They are spliced into
 *
 *     SELECT CAST((<column>) AS pg_catalog.float4[]) [, CAST((<id>) AS pg_catalog.int8)]
 *            [, CAST((<weight>) AS pg_catalog.float8)]
 *     FROM <relation> | (<query>) AS kmeans_source
 *
 * (with a newline before the closing parenthesis of a text that holds "--", which ends a
 * trailing comment there)
 *
 * so each is parsed on its own first: a query source must be exactly one statement that only
 * reads, and column, id and weight must each be exactly one expression with nothing around it.  Then
 * no text can close a parenthesis early, end the statement or start another: a fragment that
 * parses alone as `SELECT (<fragment>)` with one target and no clause is balanced and lexically
 * closed, so inside `CAST((<fragment>) AS ...)` it is one operand.  The composed query is parsed
 * again and must be one statement, and the reader checks the type of every column it consumes
 * when the executor starts (reader.c): nothing the texts can do reaches memory as a wrong type.
 */
#include "kmeans.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/scansup.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

/* True when text starts with a keyword that begins a query rather than a relation name. */
static bool
LooksLikeQuery(const char *s)
{
	static const char *const words[] = {"select", "with", "values", "table"};

	while (*s && scanner_isspace(*s))
		s++;
	if (*s == '(')
		return true;
	for (int i = 0; i < lengthof(words); i++)
	{
		size_t		len = strlen(words[i]);

		if (pg_strncasecmp(s, words[i], len) == 0 &&
			(s[len] == '\0' || scanner_isspace(s[len]) || s[len] == '('))
			return true;
	}
	return false;
}

/* What a parse error of one of the texts is reported against. */
typedef struct ParseContext
{
	const char *what;			/* "source", "column_name", "id" */
	const char *text;			/* the text the parser saw */
} ParseContext;

/*
 * Error context of parsing a text: a syntax error's position is made an internal position in
 * that text (as SPI does for its queries), so that clients point into it and not into the
 * calling statement, and the message says which argument it was.
 */
static void
ParseErrorContext(void *arg)
{
	ParseContext *pc = arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(pc->text);
	}
	errcontext("parsing the %s argument of kmeans", pc->what);
}

/* The raw statements of text, with parse errors reported against the argument named what. */
static List *
ParseText(const char *what, const char *text)
{
	ParseContext pc = {what, text};
	ErrorContextCallback cb;
	List	   *stmts;

	cb.callback = ParseErrorContext;
	cb.arg = &pc;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	stmts = pg_parse_query(text);
	error_context_stack = cb.previous;
	return stmts;
}

/* Rejects SELECT ... INTO and row locks anywhere in a tree of set operations. */
static void
CheckReadOnlySelect(const SelectStmt *s, const char *source)
{
	if (s == NULL)
		return;
	if (s->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source must only read, but it is a SELECT INTO"),
				 errdetail("The source was: %s", source),
				 errhint("Drop the INTO clause; create the table separately if you need one.")));
	if (s->lockingClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source must only read, but it locks rows (FOR UPDATE or FOR SHARE)"),
				 errdetail("The source was: %s", source),
				 errhint("Drop the locking clause from the query.")));
	CheckReadOnlySelect(s->larg, source);
	CheckReadOnlySelect(s->rarg, source);
}

/*
 * Checks a query source: exactly one statement, a SELECT (which VALUES, TABLE and WITH ... SELECT
 * are) that only reads.  Returns the statement's own text, without a trailing semicolon or
 * comment, to be wrapped as a subquery.
 */
static char *
CheckQuerySource(const char *source)
{
	List	   *stmts = ParseText("source", source);
	RawStmt    *raw;
	SelectStmt *sel;

	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("source must be one query, got %d statements", list_length(stmts)),
				 errdetail("The source was: %s", source),
				 errhint("Pass a single SELECT, WITH, VALUES or TABLE query, without a second statement.")));
	raw = linitial_node(RawStmt, stmts);
	if (!IsA(raw->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source must be a query that only reads, got a %s statement",
						CreateCommandName(raw->stmt)),
				 errdetail("The source was: %s", source),
				 errhint("Pass a SELECT, WITH ... SELECT, VALUES or TABLE query.")));
	sel = (SelectStmt *) raw->stmt;
	if (sel->withClause != NULL)
	{
		ListCell   *lc;

		foreach(lc, sel->withClause->ctes)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

			if (!IsA(cte->ctequery, SelectStmt))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("source must only read, but its WITH query \"%s\" is a %s statement",
								cte->ctename, CreateCommandName(cte->ctequery)),
						 errdetail("The source was: %s", source),
						 errhint("Modify the data in a statement of its own, then fit.")));
		}
	}
	CheckReadOnlySelect(sel, source);

	/* the statement's own text: stmt_len 0 means "to the end of the string" */
	if (raw->stmt_len > 0)
		return pnstrdup(source + raw->stmt_location, raw->stmt_len);
	return pstrdup(source + raw->stmt_location);
}

/* What closes a text in parentheses: a newline where it may end in a -- comment. */
static const char *
Closer(const char *text)
{
	return strstr(text, "--") ? "\n" : "";
}

/*
 * Checks that text is exactly one expression: `SELECT (<text>)` parses as one statement with
 * one target and no clause at all.  what names the argument in messages, hint says what to pass.
 * The text is closed here as in the composed query (Closer).
 */
static void
CheckExpression(const char *what, const char *text, const char *hint)
{
	char	   *probe = psprintf("SELECT (%s%s)", text, Closer(text));
	List	   *stmts = ParseText(what, probe);
	SelectStmt *sel = NULL;

	if (list_length(stmts) == 1 && IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt))
		sel = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (sel == NULL || sel->op != SETOP_NONE || list_length(sel->targetList) != 1 ||
		sel->distinctClause != NIL || sel->intoClause != NULL || sel->fromClause != NIL ||
		sel->whereClause != NULL || sel->groupClause != NIL || sel->havingClause != NULL ||
		sel->windowClause != NIL || sel->valuesLists != NIL || sel->sortClause != NIL ||
		sel->limitOffset != NULL || sel->limitCount != NULL || sel->lockingClause != NIL ||
		sel->withClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be one expression: %s", what, text),
				 errhint("%s", hint)));
	pfree(probe);
}

/*
 * The source argument of a fitting function: its text, or, where the function was declared
 * with the source as regclass, the relation's schema-qualified, quoted name as it is now (a
 * view over the call stores the OID, so renames and pg_restore's empty search_path do not
 * break it).  The declared type comes from the catalog, never from the call's expression.
 */
text *
KmeansSourceArg(FunctionCallInfo fcinfo, int argno)
{
	Oid		   *argtypes;
	int			nargs;
	Oid			relid;
	char	   *relname;

	get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nargs);
	if (argno >= nargs || argtypes[argno] != REGCLASSOID)
		return PG_GETARG_TEXT_PP(argno);
	relid = PG_GETARG_OID(argno);
	relname = get_rel_name(relid);
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Pass an existing table, view or materialized view.")));
	return cstring_to_text(quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													  relname));
}

/*
 * The type of the column expression over the source: the probe query is analysed, not run
 * (SPI_prepare stops before planning), so a query source costs its parse only.  The caller is
 * connected to SPI.
 */
static Oid
ColumnType(const char *column, const char *from)
{
	char	   *probe = psprintf("SELECT (%s%s) FROM %s", column, Closer(column), from);
	SPIPlanPtr	plan = SPI_prepare(probe, 0, NULL);
	List	   *sources;
	CachedPlanSource *ps;
	Oid			typid = InvalidOid;

	if (plan == NULL)
		elog(ERROR, "kmeans: SPI_prepare failed for \"%s\": %s", probe,
			 SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		elog(ERROR, "kmeans: the column probe is not one statement (this is a bug)");
	ps = (CachedPlanSource *) linitial(sources);
	if (ps->resultDesc != NULL && ps->resultDesc->natts == 1)
		typid = TupleDescAttr(ps->resultDesc, 0)->atttypid;
	SPI_freeplan(plan);
	pfree(probe);
	return typid;
}

/*
 * Turns the source and column arguments into the query every pass runs.  A relation name is
 * resolved here, so a missing table is reported as such and quoting rules are PostgreSQL's.
 */
KmeansSource *
KmeansSourceMake(text *source, text *column, text *id_column, const char *weight)
{
	KmeansSource *src = palloc0(sizeof(KmeansSource));
	StringInfoData q;
	char	   *from;

	src->source = text_to_cstring(source);
	src->column = text_to_cstring(column);
	src->id_column = id_column ? text_to_cstring(id_column) : NULL;
	src->weight = weight ? pstrdup(weight) : NULL;

	if (src->source[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source must not be empty"),
				 errhint("Pass a table, view or materialized view name, or a query.")));
	if (src->column[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column must not be empty"),
				 errhint("Pass the name of a real[] or double precision[] column, or an expression.")));
	if (src->id_column && src->id_column[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id must not be empty"),
				 errhint("Pass the name of an integer column, or leave id out.")));
	if (src->weight && src->weight[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weight must not be empty"),
				 errhint("Pass the name of a numeric column or an expression, or leave weight out.")));

	if (LooksLikeQuery(src->source))
	{
		char	   *query = CheckQuerySource(src->source);

		from = psprintf("(%s%s) AS kmeans_source", query, Closer(query));
	}
	else
	{
		List	   *names = stringToQualifiedNameList(src->source
#if PG_VERSION_NUM >= 160000
													  ,NULL
#endif
			);
		RangeVar   *rv = makeRangeVarFromNameList(names);
		Oid			relid = RangeVarGetRelid(rv, AccessShareLock, false);
		char		relkind = get_rel_relkind(relid);

		if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW &&
			relkind != RELKIND_MATVIEW && relkind != RELKIND_FOREIGN_TABLE &&
			relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table, view or materialized view", src->source),
					 errhint("Pass a relation name or a query starting with SELECT, WITH, VALUES or TABLE.")));
		from = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));
		src->relid = relid;
		src->relkind = relkind;
	}
	CheckExpression("column_name", src->column,
					"Pass a column name or an expression such as dvs[1:10]; to filter, join or "
					"compute more, pass a query as the source.");
	if (src->id_column)
		CheckExpression("id", src->id_column,
						"Pass the name of an integer column or an expression castable to bigint.");
	if (src->weight)
		CheckExpression("weight", src->weight,
						"Pass the name of a numeric column or an expression castable to double precision.");

	/* pgvector's types are read in their own form (pgvector.c), everything else as real[] */
	src->vector_type = ColumnType(src->column, from);
	src->kind = KmeansPgvectorKind(src->vector_type);
	initStringInfo(&q);
	if (src->kind != KMEANS_INPUT_ARRAY)
		appendStringInfo(&q, "SELECT (%s%s)", src->column, Closer(src->column));
	else
		appendStringInfo(&q, "SELECT CAST((%s%s) AS pg_catalog.float4[])", src->column,
						 Closer(src->column));
	if (src->id_column)
		appendStringInfo(&q, ", CAST((%s%s) AS pg_catalog.int8)", src->id_column,
						 Closer(src->id_column));
	if (src->weight)
		appendStringInfo(&q, ", CAST((%s%s) AS pg_catalog.float8)", src->weight,
						 Closer(src->weight));
	appendStringInfo(&q, " FROM %s", from);
	src->query = q.data;

	/* what the checks above guarantee; a failure here is ours */
	if (list_length(pg_parse_query(src->query)) != 1)
		elog(ERROR, "kmeans: the query built from the source is not one statement (this is a bug)");
	return src;
}
