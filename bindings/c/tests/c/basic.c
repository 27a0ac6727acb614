/* The C ABI from C: compiled with -std=c11 -Wall -Wextra -Werror against the
 * committed header, run directly and under valgrind. Exits non-zero on the
 * first broken expectation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prodguard.h"

static int failures = 0;

#define EXPECT(cond, what)                                                        \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__,        \
                    __LINE__, what, prodguard_last_error());                      \
            failures++;                                                           \
        }                                                                         \
    } while (0)

static int migrate(void *user_data) {
    int *runs = (int *)user_data;
    *runs += 1;
    return 0;
}

static int failing(void *user_data) {
    (void)user_data;
    return 7;
}

int main(void) {
    char macros[32];
    snprintf(macros, sizeof macros, "%d.%d.%d", PRODGUARD_VERSION_MAJOR, PRODGUARD_VERSION_MINOR,
             PRODGUARD_VERSION_PATCH);
    EXPECT(strcmp(prodguard_version(), macros) == 0, "the version macros match the library");

    /* NULL everywhere is an error, never a crash. */
    EXPECT(prodguard_guard_new(NULL, NULL) == PRODGUARD_INVALID_ARGUMENT, "NULL out");
    EXPECT(strstr(prodguard_last_error(), "out is NULL") != NULL, "last error names it");
    prodguard_guard_free(NULL);
    prodguard_string_free(NULL);
    char *json = NULL;
    EXPECT(prodguard_detect_json(NULL, &json) == PRODGUARD_INVALID_ARGUMENT, "NULL guard");
    EXPECT(json == NULL, "out untouched on failure");

    prodguard_guard *guard = NULL;
    EXPECT(prodguard_guard_new("/nonexistent/policy.toml", &guard) == PRODGUARD_POLICY_ERROR,
           "missing policy file is a policy error");
    EXPECT(guard == NULL, "no guard on failure");

    /* PRODGUARD_ENV=development is set by the test runner. */
    EXPECT(prodguard_guard_new(NULL, &guard) == PRODGUARD_OK, "guard from the environment");
    EXPECT(prodguard_detect_json(guard, &json) == PRODGUARD_OK, "detect");
    EXPECT(json != NULL && strstr(json, "\"tier\":\"development\"") != NULL, "development");
    prodguard_string_free(json);

    prodguard_tier tier = PRODGUARD_TIER_UNKNOWN;
    bool protected_here = true;
    EXPECT(prodguard_detect_tier(guard, &tier, &protected_here) == PRODGUARD_OK, "tier");
    EXPECT(tier == PRODGUARD_TIER_DEVELOPMENT && !protected_here, "development, not protected");
    EXPECT(prodguard_detect_tier(guard, NULL, NULL) == PRODGUARD_OK, "fields are optional");
    char *name = NULL;
    EXPECT(prodguard_detect_environment(guard, &name) == PRODGUARD_OK, "environment name");
    EXPECT(name != NULL && strcmp(name, "development") == 0, "named development");
    prodguard_string_free(name);
    EXPECT(prodguard_detect_environment(guard, NULL) == PRODGUARD_INVALID_ARGUMENT, "NULL out");

    int runs = 0;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", migrate, &runs) == PRODGUARD_OK,
           "runs in development");
    EXPECT(runs == 1, "the callback ran once");
    EXPECT(prodguard_run(guard, "db.migrate", "orders", failing, NULL) ==
               PRODGUARD_OPERATION_FAILED,
           "a failing callback is reported");
    EXPECT(prodguard_run(guard, NULL, "orders", migrate, &runs) == PRODGUARD_INVALID_ARGUMENT,
           "NULL operation");
    EXPECT(prodguard_run(guard, "db.migrate", "orders", NULL, &runs) ==
               PRODGUARD_INVALID_ARGUMENT,
           "NULL callback");
    EXPECT(prodguard_run(guard, "\xff\xfe", "orders", migrate, &runs) ==
               PRODGUARD_INVALID_ARGUMENT,
           "invalid UTF-8");
    EXPECT(prodguard_run(guard, "DROP TABLE", "orders", migrate, &runs) ==
               PRODGUARD_POLICY_ERROR,
           "invalid operation name");
    EXPECT(runs == 1, "refused operations never ran");

    /* The builder: fingerprint and approval ride along. */
    prodguard_operation *op = NULL;
    EXPECT(prodguard_operation_new(NULL, &op) == PRODGUARD_INVALID_ARGUMENT, "NULL kind");
    EXPECT(prodguard_operation_new("db.migrate", &op) == PRODGUARD_OK, "operation");
    EXPECT(prodguard_operation_set(op, PRODGUARD_FIELD_TARGET, "orders") == PRODGUARD_OK, "target");
    EXPECT(prodguard_operation_set(op, PRODGUARD_FIELD_FINGERPRINT, "sha256:abc") == PRODGUARD_OK,
           "fingerprint");
    EXPECT(prodguard_operation_set(NULL, PRODGUARD_FIELD_TARGET, "x") == PRODGUARD_INVALID_ARGUMENT,
           "NULL op");
    EXPECT(prodguard_operation_set(op, 7, "x") == PRODGUARD_INVALID_ARGUMENT, "no field 7");
    EXPECT(prodguard_operation_run(guard, op, migrate, &runs) == PRODGUARD_OK, "builder runs");
    EXPECT(runs == 2, "ran once more");
    prodguard_operation_free(op);
    prodguard_operation_free(NULL);

    /* The audit log those runs wrote verifies. */
    int32_t code = -1;
    const char *log = getenv("PRODGUARD_AUDIT_LOG");
    EXPECT(log != NULL && prodguard_audit_verify(log, &code) == PRODGUARD_OK, "verify");
    EXPECT(code == 0, "intact");
    EXPECT(prodguard_audit_verify("/nonexistent/audit.jsonl", &code) == PRODGUARD_IO_ERROR,
           "unreadable log");
    prodguard_guard_free(guard);

    if (failures == 0) {
        printf("c api: all expectations held\n");
    }
    /* An SQL script through the JSON API: the script is the operation. */
    const char *script_request =
        "{\"facts\": {\"env\": {\"APP_ENV\": \"production\"}},"
        " \"sql\": {\"script\": \"BEGIN; DELETE FROM carts; COMMIT;\", \"dialect\": \"postgres\"},"
        " \"operation\": {\"target\": \"shop\"}}";
    json = NULL;
    EXPECT(prodguard_evaluate_json(script_request, &json) == PRODGUARD_OK, "an SQL request");
    EXPECT(json != NULL && strstr(json, "\"operation\":\"db.delete.all\"") != NULL,
           "the script's operation");
    EXPECT(json != NULL && strstr(json, "\"tables\":[\"carts\"]") != NULL, "its tables");
    EXPECT(json != NULL && strstr(json, "\"exit_code\":121") != NULL, "a confirmation is needed");
    prodguard_string_free(json);
    json = NULL;
    const char *mismatch =
        "{\"sql\": {\"script\": \"DELETE FROM carts\", \"dialect\": \"sqlite\"},"
        " \"operation\": {\"kind\": \"db.read\"}}";
    EXPECT(prodguard_evaluate_json(mismatch, &json) == PRODGUARD_POLICY_ERROR,
           "a kind that is not the script's");
    EXPECT(json == NULL, "out untouched on failure");
    EXPECT(strstr(prodguard_last_error(), "the script's operation is `db.delete.all`") != NULL,
           "says which");

    return failures == 0 ? 0 : 1;
}
