/*
 * Checked allocation. ics_malloc and friends record an ICS_ERR_NOMEM error
 * naming what was being allocated when the allocation fails. Tests can make
 * the N-th allocation fail (ics_alloc_fail_after) to walk every error path.
 */
#ifndef ICS_CORE_ALLOC_H
#define ICS_CORE_ALLOC_H

#include <stddef.h>
#include <icsparse/status.h>

void *ics_malloc_at(size_t bytes, const char *what, ics_error *err, const char *file, int line);
void *ics_calloc_at(size_t count, size_t size, const char *what, ics_error *err, const char *file,
                    int line);
void *ics_realloc_at(void *ptr, size_t bytes, const char *what, ics_error *err, const char *file,
                     int line);
/* 64-byte aligned (SIMD and cache lines); free with ics_free_aligned. */
void *ics_malloc_aligned_at(size_t bytes, const char *what, ics_error *err, const char *file,
                            int line);
char *ics_strdup_at(const char *s, ics_error *err, const char *file, int line);
void ics_free_aligned(void *ptr);

#define ics_malloc(bytes, what, err) ics_malloc_at((bytes), (what), (err), __FILE__, __LINE__)
#define ics_calloc(n, size, what, err) ics_calloc_at((n), (size), (what), (err), __FILE__, __LINE__)
#define ics_realloc(p, bytes, what, err) ics_realloc_at((p), (bytes), (what), (err), __FILE__, __LINE__)
#define ics_malloc_aligned(bytes, what, err) \
    ics_malloc_aligned_at((bytes), (what), (err), __FILE__, __LINE__)
#define ics_strdup(s, err) ics_strdup_at((s), (err), __FILE__, __LINE__)

/* Test hook: the n-th checked allocation from now fails (n >= 1); 0 turns
 * the hook off. Returns the number of checked allocations made so far. */
void ics_alloc_fail_after(long n);
long ics_alloc_count(void);

#endif
