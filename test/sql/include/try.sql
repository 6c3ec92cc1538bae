-- try(q): runs the statement q and shows its error's SQLSTATE, message, detail and hint (state
-- 00000 when it succeeds), made in the schema first on the search path.  Included by the files
-- that show errors this way, with a path from the repository root, where pg_regress runs psql.
CREATE FUNCTION try(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := '00000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END $$;
