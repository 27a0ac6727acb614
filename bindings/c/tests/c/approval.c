/* Runs db.migrate on orders with the approval token given as argv[1], as a
 * C program in CI would (the guard from the environment: PRODGUARD_POLICY,
 * PRODGUARD_ENV, PRODGUARD_AUDIT_LOG). Prints how many times the operation
 * ran and exits with the status prodguard_operation_run returned. */
#include <stdio.h>

#include "prodguard.h"

static int32_t migrate(void *user_data) {
    int *runs = user_data;
    *runs += 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: approval TOKEN\n");
        return 100;
    }
    prodguard_guard *guard = NULL;
    prodguard_status status = prodguard_guard_new(NULL, &guard);
    if (status != PRODGUARD_OK) {
        fprintf(stderr, "guard: %s\n", prodguard_last_error());
        return (int)status;
    }
    prodguard_operation *op = NULL;
    if (prodguard_operation_new("db.migrate", &op) != PRODGUARD_OK ||
        prodguard_operation_set(op, PRODGUARD_FIELD_TARGET, "orders") != PRODGUARD_OK ||
        prodguard_operation_set(op, PRODGUARD_FIELD_APPROVAL, argv[1]) != PRODGUARD_OK) {
        fprintf(stderr, "operation: %s\n", prodguard_last_error());
        prodguard_operation_free(op);
        prodguard_guard_free(guard);
        return 101;
    }
    int runs = 0;
    status = prodguard_operation_run(guard, op, migrate, &runs);
    if (status != PRODGUARD_OK) {
        fprintf(stderr, "%s\n", prodguard_last_error());
    }
    printf("runs=%d\n", runs);
    prodguard_operation_free(op);
    prodguard_guard_free(guard);
    return (int)status;
}
