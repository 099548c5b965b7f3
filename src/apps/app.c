#include "ics_build_config.h"
#include "apps/app.h"
