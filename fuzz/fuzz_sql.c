/*
 * fuzz_sql.c -- a libFuzzer target that calls the extension's SQL functions on a live server.
 *
 * An input is one call, written as lines of key=value (see test/fuzz/cases for examples):
 *
 *   fn=fit                      fit, labels, elbow, predict, centers (anything else: fit)
 *   source=SELECT v FROM t_real the function's arguments by their SQL names, passed as
 *   column_name=v               parameters ($1, $2, ...) so that the text reaches the extension
 *   k=3                         exactly as written; a line without '=' passes NULL
 *   set kmeans.batch_rows=1024  a setting for this call only (set_config(name, value, true))
 *
 * In a value, \n, \t and \\ stand for a newline, a tab and a backslash.  Arguments the chosen
 * function does not take are left out; a key given twice keeps its last value.  A required
 * argument that is missing gets a plain value (t_real, v, 2, ...), so that no call is spent on
 * PostgreSQL's "function does not exist".
 *
 * Each call runs as the unprivileged role kmeans_fuzz in the database fuzz/setup.sql prepares,
 * in a transaction of its own (rolled back when it saved a model, so that every call sees the
 * same models), followed by DISCARD ALL and SELECT 1.  Ordinary errors are the expected answer
 * to bad input.  A finding is: the server crashed (the sentinel, a superuser connection that
 * stays idle, is lost with it), the backend exited or stopped answering a cancel, an error with
 * SQLSTATE XX000 or a message saying "this is a bug", a resource-leak warning, or a session that
 * no longer runs SELECT 1.  Under libFuzzer a finding aborts, so that the input is saved; with
 * KMEANS_FUZZ_REPLAY (fuzz_replay) every file named on the command line is run once and the
 * exit status says whether any was a finding.
 *
 * Feedback: the fuzz build of kmeans.so counts the edges it takes into the file $KMEANS_FUZZ_COV
 * (cov.h); after each call they are copied into libFuzzer's extra counters, together with one
 * counter per kind of error message (SQLSTATE and the message without its quoted parts and
 * digits), which stands in for the coverage of PostgreSQL's own parser and executor.
 *
 * Environment: PGHOST, PGPORT (libpq's), PGUSER (the sentinel's superuser), KMEANS_FUZZ_DB
 * (default kmeans_fuzz), KMEANS_FUZZ_COV, KMEANS_FUZZ_LOG (a file every finding, timeout and
 * note is appended to), KMEANS_FUZZ_VERBOSE=1 (print every call).
 */
#define _GNU_SOURCE				/* strcasestr */
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cov.h"

#define FUZZ_ROLE "kmeans_fuzz"
#define FUZZ_MAX_ARGS 32
#define FUZZ_MSG_SLOTS 4096
#define FUZZ_TIMEOUT_S 0.5		/* the role's statement_timeout (fuzz/setup.sql) */
#define FUZZ_CLIENT_CANCEL_S 3.0	/* the client cancels itself if the server has not */
#define FUZZ_CANCEL_GRACE_S 10.0	/* then a call still running is a finding */

/* libFuzzer reads these after every call: the server's edges, then the kinds of messages. */
__attribute__((used, section("__libfuzzer_extra_counters")))
uint8_t		fuzz_extra[KMEANS_COV_EDGES + FUZZ_MSG_SLOTS];

/* An argument of the SQL functions, by its SQL name. */
typedef struct ArgSpec
{
	const char *name;
	const char *type;
	const char *plain;			/* the value a required argument gets when missing */
} ArgSpec;

static const ArgSpec arg_specs[] = {
	{"source", "text", "t_real"}, {"column_name", "text", "v"}, {"k", "integer", "2"},
	{"k_min", "integer", "1"}, {"k_max", "integer", "3"}, {"k_step", "integer", NULL},
	{"max_iter", "integer", NULL}, {"tol", "double precision", NULL}, {"init", "text", NULL},
	{"init_centers", "real[]", NULL}, {"n_init", "integer", NULL}, {"seed", "bigint", NULL},
	{"device", "text", NULL}, {"silhouette_sample", "integer", NULL}, {"id", "text", NULL},
	{"model", "text", "m2"}, {"centers", "real[]", NULL}, {"x", "real[]", "{1,1}"},
};
#define NARGS ((int) (sizeof(arg_specs) / sizeof(arg_specs[0])))

/* A function the fuzzer calls and the arguments it takes, in the order it declares them. */
typedef struct FnSpec
{
	const char *key;
	const char *sql;
	const char *args;			/* space-separated */
	const char *required;		/* the arguments without a default; for predict, x and one of
								 * model and centers */
	bool		saves_model;	/* its model argument names a model to save */
} FnSpec;

static const FnSpec fn_specs[] = {
	{"fit", "public.kmeans_fit",
		"source column_name k max_iter tol init init_centers n_init seed device id model",
	"source column_name k", true},
	{"labels", "public.kmeans_labels",
		"source column_name k max_iter tol init init_centers n_init seed device id model",
	"source column_name k", true},
	{"elbow", "public.kmeans_elbow",
		"source column_name k_min k_max k_step max_iter tol init n_init seed device silhouette_sample id",
	"source column_name k_min k_max", false},
	{"predict", "public.kmeans_predict", "model centers x", "x", false},
	{"centers", "public.kmeans_centers", "model", "model", false},
};

/* One decoded input. */
typedef struct Call
{
	const FnSpec *fn;
	bool		given[NARGS];
	char	   *value[NARGS];	/* NULL: SQL NULL */
	int			nguc;
	char	   *guc_name[FUZZ_MAX_ARGS];
	char	   *guc_value[FUZZ_MAX_ARGS];
	char	   *buf;			/* owns every string above */
} Call;

/* How a statement ended. */
typedef enum Ending
{
	END_OK,
	END_ERROR,					/* an error result, the session still usable */
	END_LOST,					/* the connection broke */
	END_HUNG					/* no answer after the cancel and its grace period */
} Ending;

typedef struct Outcome
{
	Ending		end;
	char		sqlstate[6];
	char		severity[16];
	char		message[1024];
	double		seconds;
	bool		cancelled;		/* by this client */
} Outcome;

static PGconn *conn;			/* the fuzzed session */
static PGconn *sentinel;		/* idle superuser session: lost only if the server restarts */
static uint8_t *cov_map;		/* the coverage file, NULL without one */
static FILE *fuzz_log;
static bool verbose;
static const char *fuzz_db;

/* Findings of the current call, and its notices that look like bugs. */
static int	call_findings;
static char call_notice_bug[1024];
static const char *call_input;	/* the input as text, up to its first NUL */

/* Seconds on a monotonic clock. */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Appends a line to the log file (when there is one) and, for findings, to stderr. */
static void
Log(bool to_stderr, const char *fmt,...)
{
	va_list		ap;
	time_t		t = time(NULL);
	char		stamp[32];

	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", localtime(&t));
	if (fuzz_log)
	{
		fprintf(fuzz_log, "%s execs=%llu ", stamp,
				cov_map ? (unsigned long long) ((KmeansCovHeader *) cov_map)->execs : 0ULL);
		va_start(ap, fmt);
		vfprintf(fuzz_log, fmt, ap);
		va_end(ap);
		fputc('\n', fuzz_log);
		fflush(fuzz_log);
	}
	if (to_stderr)
	{
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
}

/* Marks the feature of one kind of message: its SQLSTATE and its words without quotes or digits. */
static void
MessageFeature(const char *sqlstate, const char *msg)
{
	uint32_t	h = 2166136261u;
	char		quote = 0;
	int			n = 0;

	for (const char *p = sqlstate; *p; p++)
		h = (h ^ (uint8_t) *p) * 16777619u;
	for (const char *p = msg; *p && n < 120; p++, n++)
	{
		if (quote)
		{
			if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '"' || *p == '\'')
		{
			quote = *p;
			continue;
		}
		if (isdigit((unsigned char) *p))
			continue;
		h = (h ^ (uint8_t) *p) * 16777619u;
	}
	fuzz_extra[KMEANS_COV_EDGES + h % FUZZ_MSG_SLOTS] = 1;
}

/*
 * True when a server message names a broken invariant of the extension or of PostgreSQL.  A
 * sign the input itself contains does not count: errors quote the values they reject, and the
 * fuzzer learns the strings its target looks for.
 */
static bool
LooksLikeBug(const char *msg)
{
	static const char *const signs[] = {
		"this is a bug", "leak", "non-empty SPI stack", "still active", "was not closed",
	};

	for (size_t i = 0; i < sizeof(signs) / sizeof(signs[0]); i++)
		if (strstr(msg, signs[i]) && !(call_input && strcasestr(call_input, signs[i])))
			return true;
	return false;
}

/* The fuzzed session's notices: features, and the warnings that betray a bug. */
static void
Notice(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void) arg;
	if (msg == NULL)
		return;
	MessageFeature(state ? state : "", msg);
	if (sev && strcmp(sev, "NOTICE") != 0 && strcmp(sev, "INFO") != 0 &&
		strcmp(sev, "LOG") != 0 && strcmp(sev, "DEBUG") != 0 && LooksLikeBug(msg))
		snprintf(call_notice_bug, sizeof(call_notice_bug), "%s %s: %s", sev,
				 state ? state : "", msg);
}

/* Swallows the sentinel's notices: it hears of every crash, and says so. */
static void
Quiet(void *arg, const PGresult *res)
{
	(void) arg;
	(void) res;
}

/* Connects as user (NULL: libpq's default) to the fuzz database, retrying while the server recovers. */
static PGconn *
Connect(const char *user, double patience_s)
{
	const char *keys[] = {"dbname", "user", "application_name", NULL};
	const char *vals[] = {fuzz_db, user, "kmeans_fuzz", NULL};
	double		until = Now() + patience_s;

	if (user == NULL)
		keys[1] = NULL;			/* the rest of the list is ignored after it */
	for (;;)
	{
		PGconn	   *c = PQconnectdbParams(keys, vals, 0);

		if (PQstatus(c) == CONNECTION_OK)
			return c;
		if (Now() > until)
		{
			fprintf(stderr, "kmeans-fuzz: cannot connect to %s as %s: %s", fuzz_db,
					user ? user : "the default user", PQerrorMessage(c));
			PQfinish(c);
			return NULL;
		}
		PQfinish(c);
		usleep(100 * 1000);
	}
}

/*
 * (Re)opens the session *c as user (NULL: the default user) unless it is open, its notices
 * going to receiver; exits when the server stays unreachable.
 */
static void
EnsureSession(PGconn **c, const char *user, PQnoticeReceiver receiver)
{
	if (*c != NULL && PQstatus(*c) == CONNECTION_OK)
		return;
	if (*c)
		PQfinish(*c);
	*c = Connect(user, 60.0);
	if (*c == NULL)
		exit(2);
	PQsetNoticeReceiver(*c, receiver, NULL);
}

/* (Re)opens both sessions; exits when the server stays unreachable. */
static void
Reconnect(void)
{
	EnsureSession(&conn, FUZZ_ROLE, Notice);
	EnsureSession(&sentinel, NULL, Quiet);
}

/*
 * True while the sentinel session still answers: the server has not restarted.  The
 * postmaster ends the other backends only some milliseconds after one crashed, so the sentinel
 * is asked until patience_s have passed.
 */
static bool
SentinelAlive(double patience_s)
{
	double		until = Now() + patience_s;

	for (;;)
	{
		PGresult   *res = PQexec(sentinel, "SELECT 1");
		bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK;

		PQclear(res);
		if (!ok)
			return false;
		if (Now() > until)
			return true;
		usleep(50 * 1000);
	}
}

/* Keeps the error fields of a result in out. */
static void
KeepError(const PGresult *res, Outcome *out)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", state ? state : "");
	snprintf(out->severity, sizeof(out->severity), "%s", sev ? sev : "");
	snprintf(out->message, sizeof(out->message), "%s",
			 msg ? msg : PQresultErrorMessage(res));
	if (msg)
		MessageFeature(out->sqlstate, msg);
}

/*
 * Runs one statement on the fuzzed session and says how it ended.  The wait is the client's
 * own, so that a call which disabled statement_timeout, or never checks for interrupts, is
 * still bounded: cancelled after FUZZ_CLIENT_CANCEL_S, given up FUZZ_CANCEL_GRACE_S later.
 */
static void
Exec(const char *sql, int nparams, const char *const *values, Outcome *out)
{
	double		start = Now(),
				cancel_at = start + FUZZ_CLIENT_CANCEL_S,
				give_up_at = 0;
	PGresult   *res;

	memset(out, 0, sizeof(*out));
	if (!PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0))
	{
		out->end = END_LOST;
		snprintf(out->message, sizeof(out->message), "%s", PQerrorMessage(conn));
		return;
	}
	while (PQisBusy(conn))
	{
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
		double		now = Now();

		if (!out->cancelled && now > cancel_at)
		{
			PGcancel   *c = PQgetCancel(conn);
			char		err[256];

			if (c)
			{
				PQcancel(c, err, sizeof(err));
				PQfreeCancel(c);
			}
			out->cancelled = true;
			give_up_at = now + FUZZ_CANCEL_GRACE_S;
		}
		if (out->cancelled && now > give_up_at)
		{
			out->end = END_HUNG;
			out->seconds = now - start;
			return;
		}
		if (poll(&pfd, 1, 100) < 0 || !PQconsumeInput(conn))
			break;
	}
	out->end = END_OK;
	while ((res = PQgetResult(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)
		{
			out->end = END_ERROR;
			KeepError(res, out);
		}
		PQclear(res);
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		out->end = END_LOST;
		if (out->message[0] == '\0')
			snprintf(out->message, sizeof(out->message), "%s", PQerrorMessage(conn));
		out->message[strcspn(out->message, "\n")] = '\0';
	}
	out->seconds = Now() - start;
}

/* A value as an SQL literal, for the SQL a finding is reported with. */
static void
AppendLiteral(char *dst, size_t size, const char *v)
{
	size_t		n = strlen(dst);

	if (v == NULL)
	{
		snprintf(dst + n, size - n, "NULL");
		return;
	}
	if (n + 1 < size)
		dst[n++] = '\'';
	for (; *v && n + 2 < size; v++)
	{
		if (*v == '\'')
			dst[n++] = '\'';
		dst[n++] = *v;
	}
	if (n + 1 < size)
		dst[n++] = '\'';
	dst[n] = '\0';
}

/* The statement of a call, with $n placeholders, or with the values inlined when literal. */
static void
CallSql(const Call *c, bool literal, char *dst, size_t size, const char **params, int *nparams)
{
	int			np = 0;
	bool		first = true;
	const char *p = c->fn->args;

	snprintf(dst, size, "SELECT * FROM %s(", c->fn->sql);
	while (*p)
	{
		size_t		len = strcspn(p, " ");

		for (int i = 0; i < NARGS; i++)
		{
			size_t		n;

			if (!c->given[i] || strlen(arg_specs[i].name) != len ||
				strncmp(arg_specs[i].name, p, len) != 0)
				continue;
			n = strlen(dst);
			snprintf(dst + n, size - n, "%s%s => ", first ? "" : ", ", arg_specs[i].name);
			if (literal)
				AppendLiteral(dst, size, c->value[i]);
			else
			{
				n = strlen(dst);
				snprintf(dst + n, size - n, "$%d", np + 1);
				params[np] = c->value[i];
			}
			n = strlen(dst);
			snprintf(dst + n, size - n, "::%s", arg_specs[i].type);
			np++;
			first = false;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	strncat(dst, ")", size - strlen(dst) - 1);
	if (nparams)
		*nparams = np;
}

/* The whole call as SQL that psql can run, for reports. */
static char *
CallScript(const Call *c)
{
	size_t		size = 64 * 1024;
	char	   *s = malloc(size);

	snprintf(s, size, "BEGIN;\n");
	for (int i = 0; i < c->nguc; i++)
	{
		strncat(s, "SELECT pg_catalog.set_config(", size - strlen(s) - 1);
		AppendLiteral(s, size, c->guc_name[i]);
		strncat(s, ", ", size - strlen(s) - 1);
		AppendLiteral(s, size, c->guc_value[i]);
		strncat(s, ", true);\n", size - strlen(s) - 1);
	}
	CallSql(c, true, s + strlen(s), size - strlen(s), NULL, NULL);
	strncat(s, ";\nROLLBACK;", size - strlen(s) - 1);
	return s;
}

/* Reports a finding of the current call. */
static void
Finding(const Call *c, const char *what, const Outcome *out)
{
	char	   *sql = CallScript(c);

	call_findings++;
	if (cov_map)
		__atomic_add_fetch(&((KmeansCovHeader *) cov_map)->findings, 1, __ATOMIC_RELAXED);
	Log(true, "FINDING: %s%s%s%s%s\n-- as %s in database %s:\n%s", what,
		out ? " -- " : "", out && out->sqlstate[0] ? out->sqlstate : "",
		out && out->sqlstate[0] ? " " : "", out ? out->message : "", FUZZ_ROLE, fuzz_db, sql);
	free(sql);
}

/*
 * Classifies a statement that ended with the connection lost: a crash when the server
 * restarted (the sentinel went with it), a finding too when the backend exited on its own, and
 * nothing when the call terminated its own backend, which the role may do.
 */
static void
Lost(const Call *c, const char *step, const Outcome *out)
{
	char		what[256];
	bool		terminated = strcmp(out->sqlstate, "57P01") == 0;
	bool		restarted = strcmp(out->sqlstate, "57P02") == 0 ||
		!SentinelAlive(terminated ? 0.0 : 2.0);

	if (restarted)
		snprintf(what, sizeof(what), "the server crashed and restarted during %s", step);
	else if (terminated)
	{
		Log(false, "note: %s terminated its own backend", step);
		Reconnect();
		return;
	}
	else
		snprintf(what, sizeof(what), "the backend exited during %s without a crash", step);
	Finding(c, what, out);
	Reconnect();
}

/* Ends a session that no longer answers, from the sentinel, and opens a new one. */
static void
EndSession(void)
{
	char		pid[16];
	const char *params[1] = {pid};

	snprintf(pid, sizeof(pid), "%d", PQbackendPID(conn));
	PQclear(PQexecParams(sentinel, "SELECT pg_terminate_backend($1::int, 10000)", 1, NULL, params,
						 NULL, NULL, 0));
	PQfinish(conn);
	conn = NULL;
	Reconnect();
}

/* Runs a statement of the call's frame (BEGIN, COMMIT, ...) and checks it. */
static void
Frame(const Call *c, const char *sql)
{
	Outcome		out;

	Exec(sql, 0, NULL, &out);
	if (out.end == END_LOST)
		Lost(c, sql, &out);
	else if (out.end == END_HUNG)
	{
		Finding(c, "the session stopped answering", &out);
		EndSession();
	}
	else if (out.end == END_ERROR && strcmp(sql, "SELECT 1") == 0)
		Finding(c, "the session no longer runs SELECT 1", &out);
}

/* Decodes \n, \t and \\ in place. */
static void
Unescape(char *s)
{
	char	   *w = s;

	for (char *r = s; *r; r++)
	{
		if (r[0] == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\'))
		{
			r++;
			*w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
		}
		else
			*w++ = *r;
	}
	*w = '\0';
}

/* Decodes an input into a call; the call owns a copy of the bytes. */
static void
Decode(const uint8_t *data, size_t size, Call *c)
{
	char	   *line;

	memset(c, 0, sizeof(*c));
	c->fn = &fn_specs[0];
	c->buf = malloc(size + 1);
	memcpy(c->buf, data, size);
	c->buf[size] = '\0';
	line = c->buf;
	/* text parameters end at a NUL, so the bytes after the first one are not part of the call */
	while (line)
	{
		char	   *next = strchr(line, '\n');
		char	   *eq;

		if (next)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (eq)
		{
			*eq = '\0';
			Unescape(eq + 1);
		}
		if (strcmp(line, "fn") == 0 && eq)
		{
			for (size_t i = 0; i < sizeof(fn_specs) / sizeof(fn_specs[0]); i++)
				if (strcmp(eq + 1, fn_specs[i].key) == 0)
					c->fn = &fn_specs[i];
		}
		else if (strncmp(line, "set ", 4) == 0 && line[4] && c->nguc < FUZZ_MAX_ARGS)
		{
			c->guc_name[c->nguc] = line + 4;
			c->guc_value[c->nguc] = eq ? eq + 1 : NULL;
			c->nguc++;
		}
		else
			for (int i = 0; i < NARGS; i++)
				if (strcmp(line, arg_specs[i].name) == 0)
				{
					c->given[i] = true;
					c->value[i] = eq ? eq + 1 : NULL;
				}
		line = next;
	}
}

/* The index of an argument in arg_specs, by a name of len bytes; -1 if there is none. */
static int
ArgIndex(const char *name, size_t len)
{
	for (int i = 0; i < NARGS; i++)
		if (strlen(arg_specs[i].name) == len && strncmp(arg_specs[i].name, name, len) == 0)
			return i;
	return -1;
}

/* Gives the required arguments a call left out their plain values. */
static void
AddRequired(Call *c)
{
	int			model = ArgIndex("model", 5),
				centers = ArgIndex("centers", 7);

	for (const char *p = c->fn->required; *p;)
	{
		size_t		len = strcspn(p, " ");
		int			i = ArgIndex(p, len);

		if (i >= 0 && !c->given[i])
		{
			c->given[i] = true;
			c->value[i] = (char *) arg_specs[i].plain;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	if (strcmp(c->fn->key, "predict") == 0 && !c->given[model] && !c->given[centers])
	{
		c->given[model] = true;
		c->value[model] = (char *) arg_specs[model].plain;
	}
}

/* True when the call saves a model, which is then rolled back. */
static bool
SavesModel(const Call *c)
{
	if (!c->fn->saves_model)
		return false;
	for (int i = 0; i < NARGS; i++)
		if (c->given[i] && c->value[i] && strcmp(arg_specs[i].name, "model") == 0)
			return true;
	return false;
}

/* Runs one input; returns the number of findings. */
static int
RunOne(const uint8_t *data, size_t size)
{
	Call		c;
	Outcome		out;
	char		sql[16 * 1024];
	const char *params[FUZZ_MAX_ARGS];
	int			nparams;
	char	   *input;
	bool		timed_out = false;

	Decode(data, size, &c);
	AddRequired(&c);
	input = malloc(size + 1);
	memcpy(input, data, size);
	input[size] = '\0';
	call_input = input;
	call_findings = 0;
	call_notice_bug[0] = '\0';
	memset(fuzz_extra, 0, sizeof(fuzz_extra));
	if (cov_map)
	{
		memset(cov_map + KMEANS_COV_HEADER, 0, KMEANS_COV_EDGES);
		__atomic_add_fetch(&((KmeansCovHeader *) cov_map)->execs, 1, __ATOMIC_RELAXED);
	}
	Reconnect();

	Frame(&c, "BEGIN");
	for (int i = 0; i < c.nguc && PQstatus(conn) == CONNECTION_OK; i++)
	{
		const char *gp[2] = {c.guc_name[i], c.guc_value[i]};

		Exec("SELECT pg_catalog.set_config($1, $2, true)", 2, gp, &out);
		if (out.end == END_LOST)
			Lost(&c, "set_config", &out);
		else if (out.end != END_OK)
			break;
	}

	CallSql(&c, false, sql, sizeof(sql), params, &nparams);
	if (verbose)
		fprintf(stderr, "kmeans-fuzz: %s\n", sql);
	/* after a setting was refused the transaction is aborted: the call would only be refused too */
	if (PQstatus(conn) == CONNECTION_OK && (c.nguc == 0 || out.end == END_OK))
	{
		Exec(sql, nparams, params, &out);
		if (out.end == END_LOST)
			Lost(&c, "the call", &out);
		else if (out.end == END_HUNG)
		{
			Finding(&c, "the call did not stop within 10 s of a cancel", &out);
			EndSession();
		}
		else if (out.end == END_ERROR)
		{
			if (strcmp(out.sqlstate, "XX000") == 0)
				Finding(&c, "internal error (XX000)", &out);
			else if (LooksLikeBug(out.message) && strstr(out.message, "this is a bug"))
				Finding(&c, "an error that says it is a bug", &out);
			else if (strcmp(out.sqlstate, "57014") == 0)
			{
				char	   *script = CallScript(&c);

				timed_out = true;
				for (char *p = script; *p; p++)
					if (*p == '\n')
						*p = ' ';
				if (cov_map)
					__atomic_add_fetch(&((KmeansCovHeader *) cov_map)->timeouts, 1, __ATOMIC_RELAXED);
				/* a call that set statement_timeout to 0 is cancelled by this client instead */
				Log(false, "timeout after %.1f s%s%s: %s", out.seconds,
					out.cancelled ? " (cancelled by the client)" : "",
					out.seconds > (out.cancelled ? FUZZ_CLIENT_CANCEL_S : FUZZ_TIMEOUT_S) + 1.0 ?
					" (slow to cancel)" : "", script);
				free(script);
			}
		}
	}

	if (PQstatus(conn) == CONNECTION_OK)
		Frame(&c, SavesModel(&c) ? "ROLLBACK" : "COMMIT");
	if (PQstatus(conn) == CONNECTION_OK)
		Frame(&c, "DISCARD ALL");
	if (PQstatus(conn) == CONNECTION_OK)
		Frame(&c, "SELECT 1");
	if (call_notice_bug[0])
	{
		Outcome		note;

		memset(&note, 0, sizeof(note));
		snprintf(note.message, sizeof(note.message), "%s", call_notice_bug);
		Finding(&c, "a warning that betrays a bug", &note);
	}

	/*
	 * A call that ran into the timeout was computing: keeping it would make the fuzzer spend
	 * half a second on each of its mutations, so its edges are not reported.
	 */
	if (cov_map && !timed_out)
		memcpy(fuzz_extra, cov_map + KMEANS_COV_HEADER, KMEANS_COV_EDGES);
	free(c.buf);
	free(input);
	call_input = NULL;
	return call_findings;
}

/* Opens the coverage file (created at its full size when missing) and the log. */
static void
Setup(void)
{
	const char *path = getenv(KMEANS_COV_ENV);
	const char *log = getenv("KMEANS_FUZZ_LOG");

	fuzz_db = getenv("KMEANS_FUZZ_DB") ? getenv("KMEANS_FUZZ_DB") : "kmeans_fuzz";
	verbose = getenv("KMEANS_FUZZ_VERBOSE") && strcmp(getenv("KMEANS_FUZZ_VERBOSE"), "1") == 0;
	if (log && log[0])
		fuzz_log = fopen(log, "a");
	if (path && path[0])
	{
		int			fd = open(path, O_RDWR | O_CREAT, 0666);
		struct stat st;

		if (fd < 0 || fstat(fd, &st) != 0 ||
			(st.st_size < KMEANS_COV_SIZE && ftruncate(fd, KMEANS_COV_SIZE) != 0))
		{
			perror(path);
			exit(2);
		}
		fchmod(fd, 0666);		/* the server runs as another user */
		cov_map = mmap(NULL, KMEANS_COV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (cov_map == MAP_FAILED)
		{
			perror(path);
			exit(2);
		}
	}
	Reconnect();
}

#ifndef KMEANS_FUZZ_REPLAY

/* libFuzzer: connect once per process. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	Setup();
	return 0;
}

/* libFuzzer: one call; a finding aborts so that the input is kept. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (RunOne(data, size) > 0)
		abort();
	return 0;
}

/*
 * The mutator: libFuzzer's byte mutations break the line structure of most inputs, so most
 * mutations here work on one line at a time -- its value mutated by libFuzzer (dictionary
 * included), a fragment of SQL inserted into it, or a value that sits on an edge of what the
 * argument accepts -- and lines are added, dropped and taken from other inputs whole.
 */
size_t		LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#define MUT_MAX_LINES 64

/*
 * SQL pieces for the texts that end up inside the reader's query, the shapes of SQL injection
 * first: a text that closes what the reader opened and starts a statement of its own.
 */
static const char *const sql_pieces[] = {
	"); ", "; SELECT ", ") AS x; SELECT ", "')", " --", "; --", "); SELECT 1; --",
	") AS x; SELECT 1 --",
	")", "(", ";", "; ", "--", "/*", "*/", "'", "\"", "$$", "::", ",", " ", "\\n", "\\t",
	"1", "NULL", "v", "id", "*", "t_real", "t_text", "t_nulls", "kmeans_source",
	"SELECT ", "SELECT 1", "SELECT v FROM t_real", " FROM ", " FROM t_real", " WHERE ",
	" UNION ALL SELECT ", " ORDER BY 1", " LIMIT 1", " OFFSET 1", " GROUP BY 1", " FOR UPDATE",
	"WITH w AS (", "VALUES (", "TABLE ", "::real[]", "::int8", "::text", "::bytea",
	"'{1,2}'", "'{1,2}'::real[]", "ARRAY[1,2]", "ARRAY[]::real[]", "'x'", "E'\\\\x01'",
	"(SELECT v FROM t_real LIMIT 1)", "generate_series(1, 3)",
	"DELETE FROM t_real", "INSERT INTO t_real VALUES (1, '{1,2}')", "COMMIT", "ROLLBACK",
	"SET search_path = pg_catalog", "EXPLAIN ", "DECLARE c CURSOR FOR ", "INTO x",
	"RETURNING *", "COPY t_real TO STDOUT", "SHOW ALL", "DO $$ BEGIN END $$",
};

/* Values on the edges of what an argument of each type accepts. */
static const char *const int_values[] = {
	"0", "1", "2", "3", "12", "-1", "1000000", "1000001", "2147483647", "-2147483648",
	"2147483648", "99999999999999999999", "", " 1 ", "1.5", "0x10",
};
static const char *const float_values[] = {
	"0", "-0", "1e-4", "1", "-1", "NaN", "Infinity", "-Infinity", "1e308", "1e309", "4.9e-324", "",
};
static const char *const array_values[] = {
	"{}", "{1,2}", "{{0,0},{10,10}}", "{{1,2}}", "{{0,0},{10,10},{-10,5}}", "{{NaN,0},{1,1}}",
	"{{1,NULL},{2,3}}", "[0:1][0:1]={{1,2},{3,4}}", "{{{1}}}", "{1e39}", "{Infinity,1}", "{NULL}",
	"{{1,2,3},{4,5,6}}",
};
static const char *const text_values[] = {
	"t_real", "t_double", "t_int", "t_numeric", "t_text", "t_bytea", "t_json", "t_point",
	"t_domain", "t_nulls", "t_2d", "t_empty", "t_ragged", "t_special", "t_huge", "t_lbound",
	"t_none", "t_one", "t_wide", "t_toast", "t_compressed", "t_many", "v_real", "m_real",
	"p_real", "s_seq", "i_real", "c_type", "t_secret", "kmeans_models", "\"select\"",
	"\"values\"", "\"t;drop\"", "\"Odd Schema\".\"Mixed Case\"", "public.t_real",
	"pg_catalog.pg_class", "SELECT v FROM t_real", "VALUES ('{1,2}'::real[])", "TABLE t_real",
	"WITH w AS (SELECT v FROM t_real) SELECT v FROM w", "(SELECT v FROM t_real)",
	"v", "id", "\"Vec Col\"", "\"ID\"", "v[1:1]", "ARRAY[id, id]", "NULL", "*", "",
	"k-means++", "random", "explicit", "auto", "cpu", "gpu", "m2", "m3", "m_wide", "m_big",
	"m_null", "m_lbound", "nosuch",
};
static const char *const fn_values[] = {"fit", "labels", "elbow", "predict", "centers"};
static const char *const guc_lines[] = {
	"set kmeans.batch_rows=1024", "set kmeans.batch_rows=1025", "set kmeans.memory_limit=64",
	"set kmeans.memory_limit=65", "set kmeans.threads=2", "set kmeans.verbose=on", "set kmeans.trace=on",
	"set kmeans.device=gpu", "set kmeans.gpu_memory_limit=1MB", "set search_path=pg_catalog",
	"set work_mem=64", "set statement_timeout=100",
};

/* A small random generator for the mutator, seeded by libFuzzer. */
static uint32_t
Rand(uint32_t *state, uint32_t n)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return n ? *state % n : 0;
}

#define PICK(st, list) ((list)[Rand(st, sizeof(list) / sizeof((list)[0]))])

/* Splits an input into its lines, without copying. */
static int
SplitLines(const uint8_t *data, size_t size, const uint8_t **line, size_t *len)
{
	int			n = 0;
	size_t		start = 0;

	for (size_t i = 0; i <= size && n < MUT_MAX_LINES; i++)
		if (i == size || data[i] == '\n')
		{
			line[n] = data + start;
			len[n] = i - start;
			n++;
			start = i + 1;
		}
	return n;
}

/* The length of a line's key: up to its '=', or the whole line. */
static size_t
KeyLen(const uint8_t *line, size_t len)
{
	const uint8_t *eq = memchr(line, '=', len);

	return eq ? (size_t) (eq - line) : len;
}

/* The values that suit the argument a line's key names. */
static const char *
EdgeValue(uint32_t *st, const uint8_t *key, size_t klen)
{
	if (klen == 2 && memcmp(key, "fn", 2) == 0)
		return PICK(st, fn_values);
	for (int i = 0; i < NARGS; i++)
		if (strlen(arg_specs[i].name) == klen && memcmp(arg_specs[i].name, key, klen) == 0)
		{
			if (strcmp(arg_specs[i].type, "integer") == 0 || strcmp(arg_specs[i].type, "bigint") == 0)
				return PICK(st, int_values);
			if (strcmp(arg_specs[i].type, "double precision") == 0)
				return PICK(st, float_values);
			if (strcmp(arg_specs[i].type, "real[]") == 0)
				return PICK(st, array_values);
		}
	return Rand(st, 3) == 0 ? PICK(st, int_values) : PICK(st, text_values);
}

/* True for the keys whose text becomes part of the reader's query. */
static bool
IsSqlKey(const uint8_t *key, size_t klen)
{
	return (klen == 6 && memcmp(key, "source", 6) == 0) ||
		(klen == 11 && memcmp(key, "column_name", 11) == 0) ||
		(klen == 2 && memcmp(key, "id", 2) == 0);
}

/* Where a piece goes into a value: its end or start, or next to a space, or anywhere. */
static size_t
PieceAt(uint32_t *st, const uint8_t *v, size_t vlen)
{
	uint32_t	r = Rand(st, 10);

	if (r < 4)
		return vlen;
	if (r < 5)
		return 0;
	if (r < 8)
	{
		size_t		from = Rand(st, (uint32_t) vlen + 1);

		for (size_t i = from; i < vlen; i++)
			if (v[i] == ' ')
				return i;
		return vlen;
	}
	return Rand(st, (uint32_t) vlen + 1);
}

/* Appends bytes to a buffer of size max, keeping count in *n; false when they do not fit. */
static bool
Put(uint8_t *buf, size_t *n, size_t max, const void *p, size_t len)
{
	if (*n + len > max)
		return false;
	memcpy(buf + *n, p, len);
	*n += len;
	return true;
}

/* libFuzzer: one structured mutation, or one of its own now and then. */
size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	static uint8_t out[64 * 1024];
	static uint8_t val[64 * 1024];
	const uint8_t *line[MUT_MAX_LINES];
	size_t		len[MUT_MAX_LINES];
	uint32_t	st = seed | 1;
	uint32_t	action = Rand(&st, 100);
	int			n,
				target;
	size_t		o = 0,
				max = max_size < sizeof(out) ? max_size : sizeof(out);

	if (action < 15 || size == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	n = SplitLines(data, size, line, len);
	target = Rand(&st, n);
	/* SQL pieces go mostly into the texts the reader puts into its query */
	if (action >= 55 && action < 75 && Rand(&st, 5) != 0)
	{
		int			sqlish[MUT_MAX_LINES],
					nsql = 0;

		for (int i = 0; i < n; i++)
			if (IsSqlKey(line[i], KeyLen(line[i], len[i])))
				sqlish[nsql++] = i;
		if (nsql > 0)
			target = sqlish[Rand(&st, nsql)];
	}
	for (int i = 0; i < n; i++)
	{
		size_t		klen = KeyLen(line[i], len[i]);
		bool		ok = true;

		if (i == target && action < 25 && n > 1)
			continue;			/* drop the line */
		if (i == target && action >= 25 && action < 85)
		{
			const uint8_t *v = line[i] + klen + 1;
			size_t		vlen = klen < len[i] ? len[i] - klen - 1 : 0;
			size_t		room = max > size ? max - size + vlen : vlen;

			if (room > sizeof(val))
				room = sizeof(val);
			memcpy(val, v, vlen);
			if (action < 55)	/* libFuzzer's mutations, on this value alone */
				vlen = vlen == 0 ? 0 : LLVMFuzzerMutate(val, vlen, room);
			else if (action < 75)	/* an SQL piece, somewhere in it */
			{
				const char *piece = PICK(&st, sql_pieces);
				size_t		plen = strlen(piece),
							at = PieceAt(&st, val, vlen);

				if (vlen + plen <= room)
				{
					memmove(val + at + plen, val + at, vlen - at);
					memcpy(val + at, piece, plen);
					vlen += plen;
				}
			}
			else				/* a value on an edge of what the argument takes */
			{
				const char *e = EdgeValue(&st, line[i], klen);

				vlen = strlen(e) < room ? strlen(e) : room;
				memcpy(val, e, vlen);
			}
			ok = Put(out, &o, max, line[i], klen) && Put(out, &o, max, "=", 1) &&
				Put(out, &o, max, val, vlen);
		}
		else
			ok = Put(out, &o, max, line[i], len[i]);
		if (!ok || (i + 1 < n && !Put(out, &o, max, "\n", 1)))
			return LLVMFuzzerMutate(data, size, max_size);
	}
	if (action >= 85)
	{
		/* a new line: an argument with an edge value, or a setting */
		const char *add;
		char		buf[256];

		if (action < 95)
		{
			const ArgSpec *a = &arg_specs[Rand(&st, NARGS)];

			snprintf(buf, sizeof(buf), "%s=%s", a->name,
					 EdgeValue(&st, (const uint8_t *) a->name, strlen(a->name)));
			add = buf;
		}
		else
			add = PICK(&st, guc_lines);
		if (!Put(out, &o, max, "\n", 1) || !Put(out, &o, max, add, strlen(add)))
			return LLVMFuzzerMutate(data, size, max_size);
	}
	memcpy(data, out, o);
	return o;
}

/* libFuzzer: a child of two inputs, each line (by key) from one parent or the other. */
size_t
LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2, size_t size2,
						  uint8_t *out, size_t max_out, unsigned int seed)
{
	const uint8_t *l1[MUT_MAX_LINES],
			   *l2[MUT_MAX_LINES];
	size_t		n1len[MUT_MAX_LINES],
				n2len[MUT_MAX_LINES];
	bool		used[MUT_MAX_LINES] = {false};
	uint32_t	st = seed | 1;
	int			n1 = SplitLines(data1, size1, l1, n1len),
				n2 = SplitLines(data2, size2, l2, n2len);
	size_t		o = 0;

	for (int i = 0; i < n1; i++)
	{
		size_t		k1 = KeyLen(l1[i], n1len[i]);
		const uint8_t *pick = l1[i];
		size_t		plen = n1len[i];

		for (int j = 0; j < n2; j++)
			if (!used[j] && KeyLen(l2[j], n2len[j]) == k1 && memcmp(l1[i], l2[j], k1) == 0)
			{
				used[j] = true;
				if (Rand(&st, 2))
				{
					pick = l2[j];
					plen = n2len[j];
				}
				break;
			}
		if ((o > 0 && !Put(out, &o, max_out, "\n", 1)) || !Put(out, &o, max_out, pick, plen))
			break;
	}
	/* the other parent's lines for keys this one lacks, now and then */
	for (int j = 0; j < n2; j++)
		if (!used[j] && Rand(&st, 3) == 0)
		{
			if (!Put(out, &o, max_out, "\n", 1) || !Put(out, &o, max_out, l2[j], n2len[j]))
				break;
		}
	return o;
}

#else

/* Reads a whole file; NULL when it cannot. */
static uint8_t *
ReadFile(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
	{
		if (f)
			fclose(f);
		return NULL;
	}
	rewind(f);
	buf = malloc(n + 1);
	if (fread(buf, 1, n, f) != (size_t) n)
	{
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*size = n;
	return buf;
}

/* Replays each file named once; the exit status is 1 when any was a finding. */
int
main(int argc, char **argv)
{
	int			failed = 0;

	Setup();
	for (int i = 1; i < argc; i++)
	{
		size_t		size;
		uint8_t    *data = ReadFile(argv[i], &size);

		if (data == NULL)
		{
			fprintf(stderr, "kmeans-fuzz: cannot read %s\n", argv[i]);
			failed++;
			continue;
		}
		if (RunOne(data, size) > 0)
		{
			fprintf(stderr, "kmeans-fuzz: FAILED %s\n", argv[i]);
			failed++;
		}
		free(data);
	}
	printf("%d fuzz cases replayed, %d failed\n", argc - 1, failed);
	return failed > 0;
}

#endif
