/*
 * src/log/tb_reader.c: TensorBoard event file reader (see tb_reader.h).
 */
#include "ics_build_config.h"
#include "log/tb_reader.h"
#include "log/tb_event.h"
#include "log/tfrecord.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

ics_status ics_tb_read_scalars(const char *path, ics_tb_scalar_fn fn, void *ctx, long *n_scalars, ics_error *err)
{
    if (n_scalars) *n_scalars = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    ics_tfrecord_reader r;
    ics_tfrecord_reader_init(&r, f, path);
    ics_status st = ICS_OK;
    char tag[ICS_TB_TAG_MAX + 1];
    for (;;) {
        const unsigned char *payload;
        size_t len;
        int at_end;
        long index = r.record_index;
        st = ics_tfrecord_read(&r, &payload, &len, &at_end, err);
        if (st != ICS_OK) break;
        if (at_end) {
            if (index == 0) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: empty event file (no file_version record)", path);
            break;
        }
        ics_tb_event ev;
        st = ics_tb_decode(payload, len, &ev, err);
        if (st != ICS_OK) {
            ics_error_prefix(err, "%s: record %ld: ", path, index);
            break;
        }
        if (index == 0) {
            static const char prefix[] = "brain.Event:";
            if (!ev.file_version || ev.file_version_len < sizeof prefix - 1 ||
                memcmp(ev.file_version, prefix, sizeof prefix - 1) != 0) {
                st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: the first record is not a file_version event (brain.Event:N)", path);
                break;
            }
            continue;
        }
        if (ev.n_values == 0) continue; /* other event kinds: not scalars */
        size_t tl = ev.tag_len < ICS_TB_TAG_MAX ? ev.tag_len : ICS_TB_TAG_MAX;
        memcpy(tag, ev.tag ? ev.tag : "", tl);
        tag[tl] = '\0';
        if (fn) {
            st = fn(ctx, ev.step, ev.wall_time, tag, ev.simple_value, err);
            if (st != ICS_OK) break;
        }
        if (n_scalars) (*n_scalars)++;
    }
    ics_tfrecord_reader_free(&r);
    fclose(f);
    return st;
}
