/* The CUDA backend on a real GPU; skips (exit 77) with the reason when the
 * machine has no CUDA device or icsparse was built without CUDA. */
#include "ics_build_config.h"
#include "test_util.h"
#include "backend/cuda/cuda_device.h"

#include <stdio.h>

static void test_relu_on_device(void)
{
    float x[1000], y[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)(i - 500) / 7.0f;
    char reason[256] = "";
    CU_ASSERT_EQUAL_FATAL(ics_cuda_relu_host(1000, x, y, reason, sizeof reason), 0);
    for (int i = 0; i < 1000; i++) CU_ASSERT_EQUAL(y[i], x[i] > 0 ? x[i] : 0.0f);
}

int main(void)
{
    char reason[256] = "";
    int count = ics_cuda_device_count(reason, sizeof reason);
    if (count == 0) {
        printf("SKIP: no CUDA device: %s\n", reason);
        return 77;
    }
    char name[256];
    ics_cuda_device_name(0, name, sizeof name);
    printf("CUDA device 0: %s (%d devices)\n", name, count);
    static const ics_test_case cases[] = {{"relu on the device", test_relu_on_device}, {NULL, NULL}};
    ics_test_add_suite("cuda", cases);
    return ics_test_main("test_cuda");
}
