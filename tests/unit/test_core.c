/* Foundation: status records and checked allocation. */
#include "ics_build_config.h"
#include "test_util.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static void test_error_records_site_and_prefix(void)
{
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ICS_FAIL(&err, ICS_ERR_IO, "cannot open %s", "x.h5"), ICS_ERR_IO);
    CU_ASSERT_STRING_EQUAL(err.message, "cannot open x.h5");
    CU_ASSERT_PTR_NOT_NULL(err.source_file);
    ics_error_prefix(&err, "loading %s: ", "run");
    CU_ASSERT_STRING_EQUAL(err.message, "loading run: cannot open x.h5");
    CU_ASSERT_EQUAL(ics_status_exit_code(ICS_OK), 0);
    CU_ASSERT_EQUAL(ics_status_exit_code(ICS_ERR_CONFIG), 2);
    CU_ASSERT_EQUAL(ics_status_exit_code(ICS_ERR_NOT_IMPLEMENTED), 2);
    CU_ASSERT_EQUAL(ics_status_exit_code(ICS_ERR_IO), 1);
}

static void test_alloc_failure_injection(void)
{
    ics_error err;
    ics_error_clear(&err);
    ics_alloc_fail_after(2);
    void *a = ics_malloc(16, "first", &err);
    void *b = ics_malloc(16, "second buffer", &err);
    void *c = ics_malloc(16, "third", &err);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_EQUAL(err.status, ICS_ERR_NOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "second buffer"));
    free(a);
    free(c);
    ics_alloc_fail_after(0);
}

int main(void)
{
    static const ics_test_case core[] = {
        {"error records site and prefix", test_error_records_site_and_prefix},
        {"allocation failure injection", test_alloc_failure_injection},
        {NULL, NULL}};
    ics_test_add_suite("core", core);
    return ics_test_main("test_core");
}
