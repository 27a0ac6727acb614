/* Guarded SQL on a SQLite file from C: one prodguard_sql_run_sqlite call per
 * run, whose status, rows and what the confirmation callback was shown are
 * printed for tests/c_api.rs to check; `invalid` checks NULLs, bad UTF-8 and
 * a missing database here. Compiled with -Wall -Wextra -Werror; run plain,
 * under AddressSanitizer + UBSan and under valgrind.
 *
 * usage: sql POLICY DB SCRIPT [dry] [decline] [target=NAME]
 *        sql POLICY DB invalid */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prodguard.h"

static int failures = 0;
#define EXPECT(cond, what)                                                               \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, what, \
                    prodguard_last_error());                                             \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

struct host {
    int asked;
    bool decline; /* type a wrong name */
};

/* Prints what it is asked and the consequences, one `consequence=` line
 * each, then types the expected name (or, declining, another). */
static int32_t confirm(void *user_data, const char *operation, const char *target,
                       const char *environment, const char *expected, char *answer,
                       size_t answer_len) {
    struct host *h = (struct host *)user_data;
    (void)environment;
    h->asked++;
    printf("question=%s on %s, expecting %s\n", operation, target != NULL ? target : "(none)",
           expected);
    const char *line = prodguard_confirm_consequences();
    if (line == NULL) {
        printf("consequences=NULL\n");
    }
    while (line != NULL) {
        const char *end = strchr(line, '\n');
        int len = end != NULL ? (int)(end - line) : (int)strlen(line);
        printf("consequence=%.*s\n", len, line);
        line = end != NULL ? end + 1 : NULL;
    }
    snprintf(answer, answer_len, "%s", h->decline ? "not-it" : expected);
    return 0;
}

/* A pointer the library never makes: still there means not written. */
static char sentinel;

static prodguard_status run_expecting_null_rows(prodguard_guard *guard, const char *db,
                                                const char *script, const char *target) {
    char *rows = &sentinel;
    prodguard_status status =
        prodguard_sql_run_sqlite(guard, db, script, target, NULL, false, &rows);
    EXPECT(rows == NULL, "out_rows_json is written NULL when no rows were counted");
    if (rows != &sentinel) {
        prodguard_string_free(rows);
    }
    return status;
}

static int invalid(prodguard_guard *guard, const char *db) {
    const char *ok = "DELETE FROM carts WHERE id = 1";
    EXPECT(prodguard_confirm_consequences() == NULL, "no consequences outside a callback");
    EXPECT(run_expecting_null_rows(NULL, db, ok, NULL) == PRODGUARD_INVALID_ARGUMENT,
           "NULL guard");
    EXPECT(strstr(prodguard_last_error(), "guard is NULL") != NULL, "says which");
    EXPECT(run_expecting_null_rows(guard, NULL, ok, NULL) == PRODGUARD_INVALID_ARGUMENT,
           "NULL db_path");
    EXPECT(run_expecting_null_rows(guard, db, NULL, NULL) == PRODGUARD_INVALID_ARGUMENT,
           "NULL script");
    EXPECT(strstr(prodguard_last_error(), "script is NULL") != NULL, "says which");
    EXPECT(run_expecting_null_rows(guard, db, "DELETE FROM carts WHERE id = \xff", NULL) ==
               PRODGUARD_INVALID_ARGUMENT,
           "a script that is not UTF-8");
    EXPECT(strstr(prodguard_last_error(), "UTF-8") != NULL, "says why");
    EXPECT(run_expecting_null_rows(guard, db, ok, "sh\xc3op") == PRODGUARD_INVALID_ARGUMENT,
           "a target that is not UTF-8");
    EXPECT(run_expecting_null_rows(guard, "\xff.db", ok, NULL) == PRODGUARD_INVALID_ARGUMENT,
           "a db_path that is not UTF-8");

    char missing[4096];
    snprintf(missing, sizeof missing, "%s.missing", db);
    EXPECT(run_expecting_null_rows(guard, missing, ok, NULL) == PRODGUARD_POLICY_ERROR,
           "no database at db_path");
    EXPECT(strstr(prodguard_last_error(), "not a SQLite database") != NULL, "says why");
    FILE *created = fopen(missing, "r");
    EXPECT(created == NULL, "no database is created");
    if (created != NULL) {
        fclose(created);
    }
    EXPECT(run_expecting_null_rows(guard, ".", ok, NULL) == PRODGUARD_POLICY_ERROR,
           "a directory is no database");
    const char *control = "DELETE FROM carts WHERE id = 1; COMMIT; DELETE FROM carts";
    EXPECT(run_expecting_null_rows(guard, db, control, NULL) == PRODGUARD_POLICY_ERROR,
           "a script that cannot run in one transaction");
    /* out_rows_json may be NULL. */
    EXPECT(prodguard_sql_run_sqlite(guard, db, ok, NULL, NULL, true, NULL) == PRODGUARD_OK,
           "a dry run without rows wanted");
    if (failures == 0) {
        printf("invalid: all expectations held\n");
    }
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sql POLICY DB SCRIPT [dry] [decline] [target=NAME]\n");
        return 2;
    }
    const char *policy = argv[1], *db = argv[2], *script = argv[3], *target = NULL;
    bool dry_run = false;
    struct host h = {0, false};
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "dry") == 0) {
            dry_run = true;
        } else if (strcmp(argv[i], "decline") == 0) {
            h.decline = true;
        } else if (strncmp(argv[i], "target=", 7) == 0) {
            target = argv[i] + 7;
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    prodguard_callbacks callbacks = {confirm, NULL, &h};
    prodguard_guard *guard = NULL;
    if (prodguard_guard_new_with(policy, &callbacks, &guard) != PRODGUARD_OK) {
        fprintf(stderr, "guard: %s\n", prodguard_last_error());
        return 3;
    }
    if (strcmp(script, "invalid") == 0) {
        int code = invalid(guard, db);
        prodguard_guard_free(guard);
        return code;
    }
    char *rows = NULL;
    prodguard_status status =
        prodguard_sql_run_sqlite(guard, db, script, target, NULL, dry_run, &rows);
    printf("status=%d\n", (int)status);
    printf("rows=%s\n", rows != NULL ? rows : "NULL");
    printf("asked=%d\n", h.asked);
    printf("after=%s\n", prodguard_confirm_consequences() == NULL ? "NULL" : "set");
    if (status != PRODGUARD_OK) {
        printf("error=%s\n", prodguard_last_error());
    }
    prodguard_string_free(rows);
    prodguard_guard_free(guard);
    return 0;
}
