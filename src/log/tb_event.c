/*
 * src/log/tb_event.c: protobuf wire format for the Event subset in
 * tb_event.h. A field is a varint key (field_number << 3 | wire_type)
 * followed by a varint (type 0), 8 bytes (type 1), a varint length and
 * bytes (type 2) or 4 bytes (type 5), little-endian.
 */
#include "ics_build_config.h"
#include "log/tb_event.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static size_t put_key(unsigned char *p, unsigned field, unsigned wire) { return put_varint(p, field << 3 | wire); }

static size_t put_fixed(unsigned char *p, uint64_t bits, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(bits >> (8 * i));
    return (size_t)bytes;
}

static size_t put_double(unsigned char *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return put_fixed(p, bits, 8);
}

/* Fields 1 and 2 of every Event. step is int64: negative values are
 * ten-byte varints (two's complement), as protobuf encodes them. */
static size_t put_header(unsigned char *p, double wall_time, int64_t step)
{
    size_t n = put_key(p, 1, WIRE_FIXED64);
    n += put_double(p + n, wall_time);
    n += put_key(p + n, 2, WIRE_VARINT);
    n += put_varint(p + n, (uint64_t)step);
    return n;
}

size_t ics_tb_encode_file_version(unsigned char *out, double wall_time, int64_t step, const char *version)
{
    size_t len = strlen(version);
    if (len > ICS_TB_TAG_MAX) return 0;
    size_t n = put_header(out, wall_time, step);
    n += put_key(out + n, 3, WIRE_BYTES);
    n += put_varint(out + n, len);
    memcpy(out + n, version, len);
    return n + len;
}

size_t ics_tb_encode_scalar(unsigned char *out, double wall_time, int64_t step, const char *tag, float value)
{
    size_t tag_len = strlen(tag);
    if (tag_len > ICS_TB_TAG_MAX) return 0;
    /* Value = tag (1) + simple_value (2); sizes known up front, so the
     * nested lengths are written before their contents. */
    unsigned char tmp[16];
    size_t value_len = put_key(tmp, 1, WIRE_BYTES) + put_varint(tmp, tag_len) + tag_len + 1 + 4;
    size_t summary_len = put_key(tmp, 1, WIRE_BYTES) + put_varint(tmp, value_len) + value_len;

    size_t n = put_header(out, wall_time, step);
    n += put_key(out + n, 5, WIRE_BYTES);
    n += put_varint(out + n, summary_len);
    n += put_key(out + n, 1, WIRE_BYTES);
    n += put_varint(out + n, value_len);
    n += put_key(out + n, 1, WIRE_BYTES);
    n += put_varint(out + n, tag_len);
    memcpy(out + n, tag, tag_len);
    n += tag_len;
    n += put_key(out + n, 2, WIRE_FIXED32);
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    n += put_fixed(out + n, bits, 4);
    return n;
}

/* A cursor over a message. */
typedef struct {
    const unsigned char *p, *end;
} cursor;

static int get_varint(cursor *c, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) return 0;
        unsigned char b = *c->p++;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

static int get_fixed(cursor *c, int bytes, uint64_t *v)
{
    if (c->end - c->p < bytes) return 0;
    uint64_t r = 0;
    for (int i = bytes - 1; i >= 0; i--) r = r << 8 | c->p[i];
    c->p += bytes;
    *v = r;
    return 1;
}

/* Reads one field's key and value; bytes fields give a sub-cursor. */
typedef struct {
    unsigned field, wire;
    uint64_t number;
    cursor bytes;
} field;

static int next_field(cursor *c, field *f)
{
    uint64_t key;
    if (!get_varint(c, &key)) return 0;
    f->field = (unsigned)(key >> 3);
    f->wire = (unsigned)(key & 7);
    switch (f->wire) {
    case WIRE_VARINT: return get_varint(c, &f->number);
    case WIRE_FIXED64: return get_fixed(c, 8, &f->number);
    case WIRE_FIXED32: return get_fixed(c, 4, &f->number);
    case WIRE_BYTES: {
        uint64_t len;
        if (!get_varint(c, &len) || len > (uint64_t)(c->end - c->p)) return 0;
        f->bytes.p = c->p;
        f->bytes.end = c->p + len;
        c->p += len;
        return 1;
    }
    default: return 0; /* groups (3, 4) are not used by these messages */
    }
}

static int decode_value(cursor c, ics_tb_event *ev)
{
    field f;
    const char *tag = NULL;
    size_t tag_len = 0;
    int has_simple = 0;
    float simple = 0;
    while (c.p < c.end) {
        if (!next_field(&c, &f)) return 0;
        if (f.field == 1 && f.wire == WIRE_BYTES) {
            tag = (const char *)f.bytes.p;
            tag_len = (size_t)(f.bytes.end - f.bytes.p);
        } else if (f.field == 2 && f.wire == WIRE_FIXED32) {
            uint32_t bits = (uint32_t)f.number;
            memcpy(&simple, &bits, sizeof simple);
            has_simple = 1;
        }
    }
    if (has_simple) {
        if (ev->n_values == 0) {
            ev->tag = tag;
            ev->tag_len = tag_len;
            ev->simple_value = simple;
        }
        ev->n_values++;
    }
    return 1;
}

ics_status ics_tb_decode(const unsigned char *payload, size_t len, ics_tb_event *ev, ics_error *err)
{
    memset(ev, 0, sizeof *ev);
    cursor c = {payload, payload + len};
    field f;
    while (c.p < c.end) {
        if (!next_field(&c, &f)) return ICS_FAIL(err, ICS_ERR_FORMAT, "event: malformed protobuf field");
        if (f.field == 1 && f.wire == WIRE_FIXED64) {
            memcpy(&ev->wall_time, &f.number, sizeof ev->wall_time);
        } else if (f.field == 2 && f.wire == WIRE_VARINT) {
            ev->step = (int64_t)f.number;
        } else if (f.field == 3 && f.wire == WIRE_BYTES) {
            ev->file_version = (const char *)f.bytes.p;
            ev->file_version_len = (size_t)(f.bytes.end - f.bytes.p);
        } else if (f.field == 5 && f.wire == WIRE_BYTES) {
            cursor s = f.bytes;
            field v;
            while (s.p < s.end) {
                if (!next_field(&s, &v)) return ICS_FAIL(err, ICS_ERR_FORMAT, "event: malformed summary");
                if (v.field == 1 && v.wire == WIRE_BYTES && !decode_value(v.bytes, ev))
                    return ICS_FAIL(err, ICS_ERR_FORMAT, "event: malformed summary value");
            }
        }
    }
    return ICS_OK;
}
