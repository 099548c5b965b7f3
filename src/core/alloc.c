/* Checked allocation: see alloc.h. */
#include "ics_build_config.h"
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long alloc_count;
static atomic_long alloc_fail_at; /* absolute count at which to fail; 0 = never */

void ics_alloc_fail_after(long n)
{
    atomic_store(&alloc_fail_at, n > 0 ? atomic_load(&alloc_count) + n : 0);
}

long ics_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

/* True when the test hook says this allocation must fail. */
static int injected_failure(void)
{
    long k = atomic_fetch_add(&alloc_count, 1) + 1;
    long fail_at = atomic_load(&alloc_fail_at);
    return fail_at != 0 && k == fail_at;
}

static void *report(size_t bytes, const char *what, ics_error *err, const char *file, int line)
{
    ics_error_set_at(err, ICS_ERR_NOMEM, file, line, "out of memory allocating %zu bytes for %s",
                     bytes, what ? what : "a buffer");
    return NULL;
}

void *ics_malloc_at(size_t bytes, const char *what, ics_error *err, const char *file, int line)
{
    void *p = injected_failure() ? NULL : malloc(bytes ? bytes : 1);
    return p ? p : report(bytes, what, err, file, line);
}

void *ics_calloc_at(size_t count, size_t size, const char *what, ics_error *err, const char *file,
                    int line)
{
    if (size && count > (size_t)-1 / size) return report((size_t)-1, what, err, file, line);
    void *p = injected_failure() ? NULL : calloc(count ? count : 1, size ? size : 1);
    return p ? p : report(count * size, what, err, file, line);
}

void *ics_realloc_at(void *ptr, size_t bytes, const char *what, ics_error *err, const char *file,
                     int line)
{
    void *p = injected_failure() ? NULL : realloc(ptr, bytes ? bytes : 1);
    return p ? p : report(bytes, what, err, file, line);
}

void *ics_malloc_aligned_at(size_t bytes, const char *what, ics_error *err, const char *file,
                            int line)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = injected_failure() ? NULL : aligned_alloc(64, rounded ? rounded : 64);
    return p ? p : report(bytes, what, err, file, line);
}

void ics_free_aligned(void *ptr)
{
    free(ptr);
}

char *ics_strdup_at(const char *s, ics_error *err, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *p = ics_malloc_at(n, "a string", err, file, line);
    if (p) memcpy(p, s, n);
    return p;
}
