/* Confirmation and backup callbacks from C: the host decides, prodguard
 * records. Compiled with -Wall -Wextra -Werror; run plain and under valgrind. */
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
    int confirmations;
    int answer;       /* what the confirm callback returns */
    int backup_mode;  /* 0 good, 1 fails, 2 bad sha, 3 unverified */
};

static int32_t confirm(void *user_data, const char *operation, const char *target,
                       const char *environment, const char *expected, char *answer,
                       size_t answer_len) {
    struct host *h = (struct host *)user_data;
    h->confirmations++;
    if (strcmp(operation, "db.migrate") != 0 || target == NULL || strcmp(target, "orders") != 0 ||
        strcmp(environment, "development") != 0 || strcmp(expected, "orders") != 0 ||
        answer_len != PRODGUARD_ANSWER_LEN) {
        return 9;
    }
    /* answer: 0 types the right name, 1 a wrong one, 2 returns 0 having typed nothing. */
    if (h->answer == 0) {
        snprintf(answer, answer_len, "%s", expected);
    } else if (h->answer == 1) {
        snprintf(answer, answer_len, "order");
    }
    return 0;
}

static int32_t backup(void *user_data, const char *target, prodguard_backup_evidence *evidence) {
    struct host *h = (struct host *)user_data;
    (void)target;
    if (h->backup_mode == 1) {
        return 5;
    }
    evidence->location = "s3://backups/orders.dump";
    evidence->sha256 = h->backup_mode == 2
                           ? "not-a-hash"
                           : "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    evidence->bytes = 4096;
    evidence->created_unix_micros = h->backup_mode == 4 ? 0 : 1700000000000000;
    evidence->verified = h->backup_mode == 3 ? 7 : 1; /* garbage is not "verified" */
    evidence->verification = "pg_restore --list";
    return 0;
}

static int noop(void *user_data) {
    (void)user_data;
    return 0;
}

/* Run as an AI agent (CLAUDECODE=1): the callback, which would type the right
 * name, is never asked, and the refusal says a person must approve. */
static int as_agent(prodguard_guard *guard, struct host *h) {
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_NOT_CONFIRMED,
           "an agent cannot confirm through the callback");
    EXPECT(h->confirmations == 0, "the callback is not asked for an agent");
    EXPECT(strstr(prodguard_last_error(), "prodguard approve") != NULL,
           "the refusal says how a person approves");
    prodguard_guard_free(guard);
    if (failures == 0) {
        printf("callbacks (agent): all expectations held\n");
    }
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "agent") == 0)) {
        return 2;
    }
    const char *policy = argv[1]; /* guards development: confirm + backup (program) + audit */
    struct host h = {0, 0, 0};
    prodguard_callbacks callbacks = {confirm, backup, &h};
    prodguard_guard *guard = NULL;
    EXPECT(prodguard_guard_new_with(policy, NULL, &guard) == PRODGUARD_INVALID_ARGUMENT,
           "NULL callbacks");
    EXPECT(prodguard_guard_new_with(policy, &callbacks, &guard) == PRODGUARD_OK, "guard");
    if (argc == 3) {
        return as_agent(guard, &h);
    }

    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_OK,
           "confirmed and backed up");
    EXPECT(h.confirmations == 1, "asked once");

    h.answer = 1;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_NOT_CONFIRMED,
           "a wrong name");
    h.answer = 2;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_NOT_CONFIRMED,
           "returning 0 without an answer does not confirm");
    h.answer = 0;
    h.backup_mode = 1;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_BACKUP_FAILED,
           "failing backup");
    h.backup_mode = 2;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_BACKUP_FAILED,
           "garbage evidence");
    h.backup_mode = 3;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_BACKUP_FAILED,
           "unverified (garbage flag)");
    h.backup_mode = 4;
    EXPECT(prodguard_run(guard, "db.migrate", "orders", noop, NULL) == PRODGUARD_BACKUP_FAILED,
           "no creation time");
    prodguard_guard_free(guard);
    if (failures == 0) {
        printf("callbacks: all expectations held\n");
    }
    return failures == 0 ? 0 : 1;
}
