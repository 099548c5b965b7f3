/* Model graph, tensor table, planner and architectures (pure C). */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/model.h>

int main(void)
{
    static const ics_test_case none[] = {{NULL, NULL}};
    ics_test_add_suite("models", none);
    return ics_test_main("test_models");
}
