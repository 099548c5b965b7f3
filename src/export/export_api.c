/*
 * src/export/export_api.c: the public export API over the format files
 * (export_onnx.c, export_pth.c, export_torchscript.c, export_dir.c,
 * export_zoo.c): options, the checkpoint ->
 * files driver icsparse-export calls, and the file helpers they share
 * (atomic writes, refusing existing outputs without force).
 */
#include "ics_build_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <icsparse/checkpoint.h>
#include <icsparse/export.h>

#include "core/alloc.h"
#include "core/log.h"
#include "export/export_internal.h"

void ics_export_options_default(ics_export_options *opts)
{
    opts->opset = ICS_EXPORT_OPSET_MIN;
    opts->batch_size = 0;
    opts->dynamic_shape = 0;
    opts->fold_bn = 1;
    opts->force = 0;
    opts->num_samples = 4;
    opts->sample_dataset = NULL;
    opts->sample_split = NULL;
    opts->sample_seed = 0;
}

ics_status ics_export_format_parse(const char *name, ics_export_format *out, ics_error *err)
{
    if (strcmp(name, "onnx") == 0)
        *out = ICS_EXPORT_ONNX;
    else if (strcmp(name, "pth") == 0)
        *out = ICS_EXPORT_PTH;
    else if (strcmp(name, "torchscript") == 0)
        *out = ICS_EXPORT_TORCHSCRIPT;
    else
        return ICS_FAIL(err, ICS_ERR_CONFIG, "unknown export format '%s' (onnx, pth, torchscript)",
                        name);
    return ICS_OK;
}

int ics_export_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

ics_status ics_export_check_target(const char *path, int force, ics_error *err)
{
    if (!force && ics_export_exists(path))
        return ICS_FAIL(err, ICS_ERR_IO, "%s exists (use --force to replace it)", path);
    return ICS_OK;
}

ics_status ics_export_mkdirs(const char *dir, ics_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", dir);
    /* Create each prefix in turn ("a", "a/b", ...); existing ones are fine. */
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return ICS_FAIL(err, ICS_ERR_IO, "cannot create directory %s: %s", buf,
                                strerror(errno));
            *p = saved;
            if (saved == '\0') break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ICS_FAIL(err, ICS_ERR_IO, "%s is not a directory", dir);
    return ICS_OK;
}

ics_status ics_export_write_atomic(const char *path, const void *bytes, size_t len, ics_error *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(bytes, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    int saved = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return ICS_FAIL(err, ICS_ERR_IO, "cannot write %s: %s", tmp,
                        strerror(saved ? saved : errno));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(saved));
    }
    return ICS_OK;
}

/* Promise (export.h): path holds the ONNX model, or is untouched. */
ics_status ics_export_onnx(ics_model *model, const ics_export_options *opts, const char *path,
                           ics_error *err)
{
    ics_status st = ics_export_check_target(path, opts->force, err);
    if (st != ICS_OK) return st;
    uint8_t *bytes = NULL;
    size_t len = 0;
    st = ics_export_onnx_bytes(model, opts, &bytes, &len, err);
    if (st == ICS_OK) st = ics_export_write_atomic(path, bytes, len, err);
    free(bytes);
    return st;
}

/* Promise (export.h): the checkpoint's model in `format` under output_dir
 * (and the deployment directory), with every target checked before
 * anything is written. */
ics_status ics_export_checkpoint(const char *checkpoint, ics_export_format format,
                                 const ics_export_options *opts, const char *output_dir,
                                 const char *deployment_dir, const char *sparsezoo_dir,
                                 char *written, size_t written_size, ics_error *err)
{
    if (opts->opset < ICS_EXPORT_OPSET_MIN || opts->opset > ICS_EXPORT_OPSET_MAX)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "ONNX opset %d is out of range (%d..%d)", opts->opset,
                        ICS_EXPORT_OPSET_MIN, ICS_EXPORT_OPSET_MAX);
    char path[4200];
    const char *file = format == ICS_EXPORT_ONNX  ? "model.onnx"
                       : format == ICS_EXPORT_PTH ? "model.pth"
                                                  : "model.pt";
    if (snprintf(path, sizeof path, "%s/%s", output_dir, file) >= (int)sizeof path)
        return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", output_dir);
    ics_status st = ics_export_check_target(path, opts->force, err);
    if (st != ICS_OK) return st;
    if (deployment_dir) {
        char dep[4200];
        snprintf(dep, sizeof dep, "%s/deployment/model.onnx", deployment_dir);
        st = ics_export_check_target(dep, opts->force, err);
        if (st != ICS_OK) return st;
    }
    if (sparsezoo_dir) {
        char zoo[4200];
        snprintf(zoo, sizeof zoo, "%s/model.onnx", sparsezoo_dir);
        st = ics_export_check_target(zoo, opts->force, err);
        if (st != ICS_OK) return st;
    }

    ics_checkpoint_reader *r = NULL;
    st = ics_checkpoint_open(checkpoint, &r, err);
    if (st != ICS_OK) return st;
    if (ics_checkpoint_get_info(r)->qat_active && format == ICS_EXPORT_TORCHSCRIPT) {
        ics_checkpoint_close(r);
        return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED,
                        "%s: the checkpoint has fake quantization (QAT); TorchScript export is "
                        "fp32 only (int8 TorchScript is not implemented)",
                        checkpoint);
    }
    ics_checkpoint_info info = *ics_checkpoint_get_info(r);
    char *recipe = NULL;
    ics_model *model = NULL;
    st = ics_checkpoint_load_model(r, &model, err); /* the QAT structure and state too */
    /* A QAT checkpoint's .pth (and the SparseZoo directory's training/
     * model.pth) is a training checkpoint holding the recipe, whose
     * structure at the epoch the import rebuilds. */
    int qat = info.qat_active;
    if (st == ICS_OK && (sparsezoo_dir || (qat && format == ICS_EXPORT_PTH)))
        st = ics_checkpoint_get_text(r, "recipe", &recipe, err);
    ics_checkpoint_close(r);
    if (st != ICS_OK) {
        ics_model_destroy(model);
        return st;
    }

    st = ics_export_mkdirs(output_dir, err);
    if (st == ICS_OK) {
        if (format == ICS_EXPORT_ONNX)
            st = ics_export_onnx(model, opts, path, err);
        else if (format == ICS_EXPORT_TORCHSCRIPT)
            st = ics_export_torchscript(model, path, opts->force, err);
        else if (qat)
            st = ics_export_pth_qat(model, recipe, info.epoch, path, opts->force, err);
        else
            st = ics_export_pth(model, path, opts->force, err);
    }
    if (st == ICS_OK) ICS_INFO("exported %s (%s) to %s", checkpoint, ics_model_arch(model), path);
    if (st == ICS_OK && deployment_dir) {
        st = ics_export_deployment_dir(model, opts, deployment_dir, err);
        if (st == ICS_OK) ICS_INFO("deployment directory %s/deployment", deployment_dir);
    }
    if (st == ICS_OK && sparsezoo_dir) {
        st = ics_export_sparsezoo_dir(model, &info, recipe, opts, sparsezoo_dir, err);
        if (st == ICS_OK) ICS_INFO("SparseZoo directory %s", sparsezoo_dir);
    }
    if (st == ICS_OK && written) snprintf(written, written_size, "%s", path);
    free(recipe);
    ics_model_destroy(model);
    return st;
}
