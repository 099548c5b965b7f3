/*
 * src/log/tb_event.h: the TensorBoard Event protobuf, hand-encoded (only
 * the fields icsparse writes):
 *   Event   { double wall_time = 1; int64 step = 2;
 *             oneof { string file_version = 3; Summary summary = 5; } }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 * simple_value is the legacy scalar form that the scalars dashboard and
 * EventAccumulator.Scalars() still read.
 */
#ifndef ICS_LOG_TB_EVENT_H
#define ICS_LOG_TB_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

#define ICS_TB_FILE_VERSION "brain.Event:2"
/* Longest tag accepted (TensorBoard has no limit; ours keeps buffers fixed). */
#define ICS_TB_TAG_MAX 1024
/* Room for any event icsparse encodes. */
#define ICS_TB_EVENT_MAX (ICS_TB_TAG_MAX + 64)

/* Encodes Event{wall_time, step, file_version} into out (ICS_TB_EVENT_MAX
 * bytes); returns the length. */
size_t ics_tb_encode_file_version(unsigned char *out, double wall_time, int64_t step, const char *version);
/* Encodes Event{wall_time, step, summary{value{tag, simple_value}}};
 * returns the length, or 0 when the tag is longer than ICS_TB_TAG_MAX. */
size_t ics_tb_encode_scalar(unsigned char *out, double wall_time, int64_t step, const char *tag, float value);

/* One decoded event. Strings point into the payload (not terminated). */
typedef struct ics_tb_event {
    double wall_time;
    int64_t step;
    const char *file_version;
    size_t file_version_len;
    int n_values; /* simple_value entries seen in the summary */
    /* The first simple_value entry (what icsparse writes: one per event). */
    const char *tag;
    size_t tag_len;
    float simple_value;
} ics_tb_event;

/* Decodes an Event payload, skipping fields it does not know (as protobuf
 * readers do). ICS_ERR_FORMAT when the bytes are not a valid message. */
ics_status ics_tb_decode(const unsigned char *payload, size_t len, ics_tb_event *ev, ics_error *err);

#endif
