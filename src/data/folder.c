/*
 * Image-folder sources (torchvision ImageFolder layout): DIR/train/CLASS/FILE
 * and DIR/val/CLASS/FILE (or test/), JPEG or PNG. Not implemented yet.
 */
#include "ics_build_config.h"
#include "data/raw.h"

ics_status ics_folder_load(const char *dir, int image_size, ics_raw_dataset *raw, ics_error *err);

ics_status ics_folder_load(const char *dir, int image_size, ics_raw_dataset *raw, ics_error *err)
{
    (void)image_size;
    (void)raw;
    return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "%s: image-folder datasets are not implemented yet", dir);
}
