/*
 * src/export/export_pth.c: the model's state_dict as a PyTorch .pth, as
 * torch.save(model.state_dict(), path) writes it: an OrderedDict of
 * tensors in the state_dict's order, float32 parameters and buffers and an
 * int64 0-dim num_batches_tracked, through the .pth writer of src/io (zip
 * archive, pickle protocol 2, written to a temporary name and renamed).
 * torch.load(path, weights_only=True) accepts it, and
 * load_state_dict(strict=True) into the torchvision module takes it whole.
 */
#include "ics_build_config.h"

#include <icsparse/export.h>

#include "export/export_internal.h"
#include "io/pth_writer.h"

/* Promise (export.h): path holds the state_dict, or path is untouched and
 * err says why (an existing path without force among the reasons). */
ics_status ics_export_pth(ics_model *model, const char *path, int force, ics_error *err)
{
    ics_status st = ics_export_check_target(path, force, err);
    if (st != ICS_OK) return st;
    ics_pv_arena *arena = ics_pv_arena_create(err);
    if (!arena) return err ? err->status : ICS_ERR_NOMEM;
    ics_pv *sd = ics_pv_new_dict(arena, 1, err);
    st = sd ? ICS_OK : ICS_ERR_NOMEM;
    for (int i = 0; i < ics_model_num_tensors(model) && st == ICS_OK; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        ics_pv *t;
        if (ti->kind == ICS_TENSOR_COUNTER)
            t = ics_pv_new_tensor(arena, ICS_DT_INT64, ti->ndim, ti->shape,
                                  ics_model_tensor_counter(model, i), err);
        else
            t = ics_pv_new_tensor(arena, ICS_DT_FLOAT32, ti->ndim, ti->shape,
                                  ics_model_tensor_data(model, i), err);
        st = t ? ics_pv_dict_set_str(arena, sd, ti->name, t, err) : ICS_ERR_NOMEM;
    }
    /* The archive's folder is the file's stem in torch < 2.0 and "archive"
     * after; both load. NULL picks "archive". */
    if (st != ICS_OK)
        ics_error_prefix(err, "writing %s: ", path);
    else
        st = ics_pth_save(path, sd, NULL, err); /* its errors name the path */
    ics_pv_arena_destroy(arena);
    return st;
}
