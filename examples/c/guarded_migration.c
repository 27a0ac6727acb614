/* A guarded SQLite migration in C through libprodguard.
 *
 *   cargo build -p prodguard-ffi
 *   cc -std=c11 examples/c/guarded_migration.c -I bindings/c/include \
 *      -L target/debug -lprodguard -lsqlite3 -o guarded_migration
 *   PRODGUARD_ENV=development LD_LIBRARY_PATH=target/debug ./guarded_migration orders.db
 *
 * Exits with prodguard's status: 0 migrated, 1 the migration failed, 120-125
 * refused (121: confirmation missing, e.g. production without a terminal). */
#include <sqlite3.h>
#include <stdio.h>

#include "prodguard.h"

static int migrate(void *user_data) {
    const char *path = (const char *)user_data;
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    char *error = NULL;
    int rc = sqlite3_exec(db,
                          "BEGIN;"
                          "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT);"
                          "ALTER TABLE orders ADD COLUMN shipped_at TEXT;"
                          "COMMIT;",
                          NULL, NULL, &error);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "migration failed: %s\n", error);
        sqlite3_free(error);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "orders.db";
    prodguard_guard *guard = NULL;
    prodguard_status status = prodguard_guard_new(NULL, &guard);
    if (status != PRODGUARD_OK) {
        fprintf(stderr, "prodguard: %s\n", prodguard_last_error());
        return (int)status;
    }
    status = prodguard_run(guard, "db.migrate", path, migrate, (void *)path);
    if (status == PRODGUARD_OK) {
        printf("migrated %s\n", path);
    } else {
        fprintf(stderr, "prodguard (%d): %s\n", (int)status, prodguard_last_error());
    }
    prodguard_guard_free(guard);
    return (int)status;
}
